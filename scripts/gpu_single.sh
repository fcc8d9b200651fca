#!/usr/bin/env bash
# One device call for single-GPU work: the GPU test suite, the demo, and the benchmarks.
# Usage (on the GPU machine, from the repo root): bash scripts/gpu_single.sh
# Writes logs and JSON under $OUT (or ./out when unset).
set -uo pipefail
OUT="${OUT:-out}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
status=0
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
make gpu-test PYTEST_ARGS="-q -p no:cacheprovider ${PYTEST_EXTRA:-}" 2>&1 | tee "$OUT/gpu-test.log" | tail -40 || status=1
[ "${PIPESTATUS[0]}" = 0 ] || status=1
export PYTHONPATH=/tmp/site:$PWD
python3 examples/demo.py 2>&1 | tail -6 | tee "$OUT/demo.log"
python3 benchmarks/bandwidth.py --json "$OUT/bandwidth.json" 2>&1 | tee "$OUT/bandwidth.log" | tail -12
python3 benchmarks/tile_ops.py --sizes 4096,8192 --json "$OUT/tile_ops.json" 2>&1 | tee "$OUT/tile_ops.log" | tail -8
python3 benchmarks/launch_overhead.py --json "$OUT/launch_overhead.json" 2>&1 | tee "$OUT/launch.log" | tail -12
python3 benchmarks/compile_time.py --target sm_90a --json "$OUT/compile_time_gpu_host.json" 2>&1 | tail -6
exit $status
