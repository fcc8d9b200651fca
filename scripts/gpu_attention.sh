#!/usr/bin/env bash
# One device call for flash attention on the Hopper path (issue 11, deliverable 5): the GPU tests of
# the tile program against torch SDPA, then benchmarks/flash_attention_hopper.py (tsir beside torch
# SDPA's flash backend and tsir's Ampere-path kernel; BH=32, S=4096, D=64/128, causal and not).
# Under 8 minutes; the table comes last, everything else under $OUT.
# Usage (GPU machine, repo root): bash scripts/gpu_attention.sh [--quick]
set -uo pipefail
source scripts/gpu_env.sh
start=$(date +%s)
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
