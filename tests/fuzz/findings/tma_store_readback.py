"""The kernel reads back a tensor it stored by TMA: nothing orders the readers after the store.

tests/hopper/test_tma_store.py::test_a_store_into_a_tensor_the_kernel_reads_keeps_its_wait
(this program with 64 threads) says the store completes where it is issued "before the barrier
that orders the readers after them"; the generated code has the wait (`tma_store_wait<0>` in the
storing thread) but no barrier after it, so the other threads may read Y before the store
lands. With one warpgroup the interpreter runs the block in lockstep and agrees; with two, the
store is split between the warpgroups' first threads and check_stages (sm_90a) reports:
  ThreadSync mismatch argument 2 (float32): 256 of 1024 elements differ beyond rtol 0.0001;
  first at (8, 0): expected 0.27162256836891174, got nan
No detector fires (the interpreter has no detector for global memory). ThreadSync's contract
covers shared memory only, but the tile level orders the two copies, and so does every stage
with a `T.sync_threads()` of the user's between them. The classifier names these
`global-hazard-between-tile-ops` (programs with the feature `async-global-no-sync`).

Found by the async family (`async-after-readback` with `async-global-no-sync`, first seeds
5000010, 9200067).
"""

from __future__ import annotations

import numpy as np
from tsir.codegen.cuda import generate_cuda

import tsir
from tsir import T


def kernel(threads: int = 256, M: int = 16, N: int = 64) -> tsir.PrimFunc:
    with T.prim_func("readback") as f:
        X = T.param("X", (M, N), "float32")
        Y = T.param("Y", (M, N), "float32")
        Z = T.param("Z", (M, N), "float32")
        with T.Kernel(1, threads=threads):
            t = T.alloc_shared((M, N), "float32")
            r = T.alloc_fragment((M, N), "float32")
            T.copy(X[0, 0], t)
            T.copy(t, Y[0, 0])
            T.copy(Y[0, 0], r)
            T.copy(r, Z[0, 0])
    return f.func


def main() -> None:
    x = np.random.default_rng(3).standard_normal((16, 64)).astype(np.float32)
    for threads in (64, 256):
        for target in ("sm_80", "sm_90a"):
            low = tsir.lower(kernel(threads), target)
            args = [x, *(np.full((16, 64), np.nan, np.float32) for _ in range(2))]
            bad = tsir.interpret.check_stages(low, args, target=target).first_failure
            print(
                threads, target, "all stages agree" if bad is None else f"{bad.stage} {bad.message}"
            )
    src = str(generate_cuda(tsir.lower(kernel(64), "sm_90a").module))
    wait = src.index("tma_store_wait<0>")
    print(
        "barrier between the wait and the readers:", "__syncthreads" in src[wait : src.index("Z +")]
    )


if __name__ == "__main__":
    main()
