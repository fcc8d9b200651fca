#!/usr/bin/env bash
# One device call for the compiled Hopper GEMM (issue 11, phase 2): (a) the GPU tests of the tile
# program against torch, (b) benchmarks/gemm_hopper.py -- the cold compile time of the Hopper
# GEMM, (c) compute-sanitizer racecheck/synccheck on a small compiled GEMM, then tsir's compiled
# matmul (several tile/stage configs) beside cuBLAS, Triton and the phase-1 hand kernel. Under 6
# minutes; the table comes last, everything else under $OUT.
# Usage (GPU machine, repo root): bash scripts/gpu_hopper_gemm.sh
set -uo pipefail
OUT="${OUT:-out}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
start=$(date +%s)
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader | tee "$OUT/gpu.txt"
# tsir imports z3 and apache-tvm-ffi, which the image lacks: install them from .whl/ (make
# device-wheels) the way `make gpu-test` does, without the rest of the wheel set.
site=/tmp/site
wheels=$(ls .whl/z3_solver-*.whl .whl/apache_tvm_ffi-*.whl .whl/typing_extensions-*.whl 2>/dev/null)
if [ -n "$wheels" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target "$site" $wheels 2>&1 | tail -3
else
  echo "warning: no .whl/ (run 'make device-wheels' where PyPI is reachable); using what is installed"
fi
export PYTHONPATH="$site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export TSIR_CACHE_DIR="$OUT/tsir_cache"
python3 -c "import tsir, tsir.runtime.nvrtc as n; print('tsir from', tsir.__file__, '| NVRTC', n.nvrtc_version())"
timeout 70 python3 -m pytest -q -p no:cacheprovider -m gpu tests/hopper/test_gemm_wgmma_gpu.py 2>&1 \
  | tee "$OUT/gemm_gpu_tests.log" | tail -15
status=${PIPESTATUS[0]}
timeout 280 python3 benchmarks/gemm_hopper.py --out "$OUT" 2>&1 | tee "$OUT/gemm_hopper.out" | tail -75
bench=${PIPESTATUS[0]}
echo "gpu_hopper_gemm.sh: tests exit $status, benchmark exit $bench, $(( $(date +%s) - start )) s"
[ "$status" = 0 ] && [ "$bench" = 0 ]
