#!/usr/bin/env bash
# One device call for issue 12's ops (branch ops1): every GPU test of the new ops against torch --
# element math, warp shuffles and reductions, atomics (memory orders, return_prev, vector adds),
# reductions of any fragment layout and of shared tiles, parallel scans, the CUDA escape hatch and
# T.print -- then the TileLang programs they completed. Under 3 minutes on an H100 (the kernels
# are small; NVRTC dominates).
# Usage (GPU machine, repo root): bash scripts/gpu_ops1.sh      -- the log goes under $OUT.
set -uo pipefail
OUT="${OUT:-out}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
start=$(date +%s)
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
# tsir imports z3 and apache-tvm-ffi, which the image lacks: install them from .whl/ (make
# device-wheels) as `make gpu-test` does.
site=/tmp/site
wheels=$(ls .whl/*.whl 2>/dev/null)
if [ -n "$wheels" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target "$site" $wheels 2>&1 | tail -3
else
  echo "warning: no .whl/ (run 'make device-wheels' where PyPI is reachable); using what is installed"
fi
export PYTHONPATH="$site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
python3 -c "import tsir, tsir.runtime.nvrtc as n; print('tsir from', tsir.__file__, '| NVRTC', n.nvrtc_version())"
timeout 120 python3 -m pytest -q -p no:cacheprovider -m gpu -rs \
  tests/builder/test_math_ext.py tests/builder/test_warp_ops.py tests/tileop/test_atomics.py \
  tests/tileop/test_reduce_layouts.py tests/tileop/test_scan_parallel.py tests/tileop/test_scan_ops.py \
  tests/codegen/test_extern_and_print.py 2>&1 | tee "$OUT/gpu_ops1.log" | tail -40
status=${PIPESTATUS[0]}
# TileLang's programs that these ops completed (online softmax, flash attention, GQA decoding).
timeout 90 python3 -m pytest -q -p no:cacheprovider -m gpu -rs tests/compat/test_tilelang_programs_gpu.py \
  -k "online_softmax or flash_attention or gqa_decode" 2>&1 | tee "$OUT/gpu_ops1_programs.log" | tail -12
[ "${PIPESTATUS[0]}" = 0 ] || status=1
echo "gpu_ops1.sh: exit $status, $(( $(date +%s) - start )) s"
exit "$status"
