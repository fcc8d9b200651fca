#!/usr/bin/env bash
# One device call for flash attention on the Hopper path (issue 11, deliverable 5): the GPU tests of
# the tile program against torch SDPA, then benchmarks/flash_attention_hopper.py (tsir beside torch
# SDPA's flash backend and tsir's Ampere-path kernel; BH=32, S=4096, D=64/128, causal and not).
# Under 8 minutes; the table comes last, everything else under $OUT.
# Usage (GPU machine, repo root): bash scripts/gpu_attention.sh [--quick]
set -uo pipefail
OUT="${OUT:-out}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
start=$(date +%s)
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader | tee "$OUT/gpu.txt"
# tsir imports z3 and apache-tvm-ffi, which the image lacks: install them from .whl/ (make
# device-wheels) as scripts/gpu_hopper_gemm.sh does.
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
timeout 240 python3 -m pytest -q -p no:cacheprovider -m gpu tests/hopper/test_attention_gpu.py \
  tests/runtime/test_fast_math.py 2>&1 \
  | tee "$OUT/attention_gpu_tests.log" | tail -15
status=${PIPESTATUS[0]}
timeout 240 python3 benchmarks/flash_attention_hopper.py --out "$OUT" "$@" 2>&1 \
  | tee "$OUT/flash_attention_hopper.out" | tail -30
bench=${PIPESTATUS[0]}
echo "gpu_attention.sh: tests exit $status, benchmark exit $bench, $(( $(date +%s) - start )) s"
[ "$status" = 0 ] && [ "$bench" = 0 ]
