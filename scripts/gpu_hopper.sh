#!/usr/bin/env bash
# One device call for the Hopper path (issue 11, phase 1): the GPU tests of tests/hopper, then
# benchmarks/hopper_gemm.py (correctness against torch, timings side by side with cuBLAS and Triton,
# compute-sanitizer racecheck/synccheck). Under 6 minutes; the table comes last.
# Usage (GPU machine, repo root): bash scripts/gpu_hopper.sh     -- writes everything under $OUT.
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
python3 -c "import tsir, tsir.runtime.nvrtc as n; print('tsir from', tsir.__file__, '| NVRTC', n.nvrtc_version())"
timeout 60 python3 -m pytest -q -p no:cacheprovider -m gpu tests/hopper 2>&1 | tail -4 | tee "$OUT/hopper_tests.log"
status=${PIPESTATUS[0]}
timeout 340 python3 benchmarks/hopper_gemm.py --out "$OUT" 2>&1 | tee "$OUT/hopper_gemm.out" | tail -70
bench=${PIPESTATUS[0]}
echo "gpu_hopper.sh: tests exit $status, benchmark exit $bench, $(( $(date +%s) - start )) s"
[ "$status" = 0 ] && [ "$bench" = 0 ]
