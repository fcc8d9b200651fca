#!/usr/bin/env bash
# TileLang's example programs (tsir's transcriptions in tests/compat/tilelang_programs.py) through
# tsir.compat.tilelang on one GPU, checked against torch; then the CPU compile/fail checks.
# Usage (GPU machine, repo root): bash scripts/gpu_tilelang_examples.sh     Logs under $OUT (./out).
set -uo pipefail
OUT="${OUT:-out}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
GPU_SITE="${GPU_SITE:-/tmp/site}"
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target "$GPU_SITE" .whl/*.whl
fi
export PYTHONPATH="$GPU_SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/tilelang-gpu.txt"
status=0
echo "== TileLang programs on the GPU (vs torch) =="
timeout 540 python3 -m pytest -p no:cacheprovider -m gpu tests/compat -v -rs \
    --junitxml "$OUT/tilelang-gpu.xml" > "$OUT/tilelang-gpu.log" 2>&1 || status=1
grep -E "PASSED|FAILED|SKIPPED|ERROR|passed|failed" "$OUT/tilelang-gpu.log" | tail -30
echo "== compile / expected-failure checks =="
TSIR_TILELANG_TARGET=sm_90a timeout 300 python3 -m pytest -p no:cacheprovider -q tests/compat/test_tilelang_programs.py \
    > "$OUT/tilelang-cpu.log" 2>&1 || status=1
tail -3 "$OUT/tilelang-cpu.log"
[ "$status" = 0 ] && echo "ALL PASS" || echo "SOMETHING FAILED (see $OUT/tilelang-*.log)"
exit $status
