#!/usr/bin/env bash
# One device call for the compiled Hopper GEMM (issue 11, phase 2): (a) the GPU tests of the tile
# program against torch, (b) benchmarks/gemm_hopper.py -- the cold compile time of the Hopper
# GEMM, (c) compute-sanitizer racecheck/synccheck on a small compiled GEMM, then tsir's compiled
# matmul (several tile/stage configs) beside cuBLAS, Triton and the phase-1 hand kernel. Under 6
# minutes; the table comes last, everything else under $OUT.
# Usage (GPU machine, repo root): bash scripts/gpu_hopper_gemm.sh
set -uo pipefail
source scripts/gpu_env.sh
start=$(date +%s)
python3 -c "import tsir, tsir.runtime.nvrtc as n; print('tsir from', tsir.__file__, '| NVRTC', n.nvrtc_version())"
timeout 70 python3 -m pytest -q -p no:cacheprovider -m gpu tests/hopper/test_gemm_wgmma_gpu.py 2>&1 \
  | tee "$OUT/gemm_gpu_tests.log" | tail -15
status=${PIPESTATUS[0]}
timeout 280 python3 benchmarks/gemm_hopper.py --out "$OUT" 2>&1 | tee "$OUT/gemm_hopper.out" | tail -75
bench=${PIPESTATUS[0]}
echo "gpu_hopper_gemm.sh: tests exit $status, benchmark exit $bench, $(( $(date +%s) - start )) s"
[ "$status" = 0 ] && [ "$bench" = 0 ]
