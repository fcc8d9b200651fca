#!/usr/bin/env bash
# One device call for the Hopper path (issue 11, phase 1): the GPU tests of tests/hopper, then
# benchmarks/hopper_gemm.py (correctness against torch, timings side by side with cuBLAS and Triton,
# compute-sanitizer racecheck/synccheck). Under 6 minutes; the table comes last.
# Usage (GPU machine, repo root): bash scripts/gpu_hopper.sh     -- writes everything under $OUT.
set -uo pipefail
source scripts/gpu_env.sh
start=$(date +%s)
python3 -c "import tsir, tsir.runtime.nvrtc as n; print('tsir from', tsir.__file__, '| NVRTC', n.nvrtc_version())"
timeout 60 python3 -m pytest -q -p no:cacheprovider -m gpu tests/hopper 2>&1 | tail -4 | tee "$OUT/hopper_tests.log"
status=${PIPESTATUS[0]}
timeout 340 python3 benchmarks/hopper_gemm.py --out "$OUT" 2>&1 | tee "$OUT/hopper_gemm.out" | tail -70
bench=${PIPESTATUS[0]}
echo "gpu_hopper.sh: tests exit $status, benchmark exit $bench, $(( $(date +%s) - start )) s"
[ "$status" = 0 ] && [ "$bench" = 0 ]
