"""Frozen copies of earlier tsir code, kept only to be measured beside the current code in one
process on one GPU (issue 10: "launch overhead before and after, in one run on one card").

`launch_main/`: runtime/{launch,launch_codegen,binder,dlpack,driver,host_program}.py exactly as on
main at a0ebd2f (before NVRTC moved onto cuda.core, the driver layers merged and tensor-map
parameters joined the launcher), with `from ..errors` turned into `from tsir.errors`. Used by
benchmarks/launch_overhead.py (`--baseline`, on by default); not part of tsir, never imported by
it or by the tests. Delete it once the comparison is recorded in benchmarks/RESULTS.md.
"""
