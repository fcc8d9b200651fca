#!/usr/bin/env bash
# Every multi-GPU check of tsir.runtime.dist in one device call: the multi-GPU tests (examples on 2
# GPUs, and on 4 when there are 4; bad input; a dead peer), then the distributed benchmarks on 2 GPUs.
# Usage (GPU machine, repo root): bash scripts/gpu_dist_check.sh     (SKIP_BENCH=1: tests only)
# Writes logs, JSON and a markdown table under $OUT (./out when unset). Every step has a timeout.
set -uo pipefail
OUT="${OUT:-out}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
GPU_SITE="${GPU_SITE:-/tmp/site}"
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target "$GPU_SITE" .whl/*.whl
fi
export PYTHONPATH="$GPU_SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
ngpu=$(nvidia-smi -L | wc -l)
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/dist-gpus.txt"
nvidia-smi topo -m > "$OUT/dist-topo.txt" 2>&1 || true
echo "GPUs: $ngpu"
if [ "$ngpu" -lt 2 ]; then echo "FAIL: needs 2 or more GPUs"; exit 1; fi
status=0

echo "== multi-GPU tests =="
timeout 600 python3 -m pytest -p no:cacheprovider -m multigpu tests/distributed -v -rs \
    --junitxml "$OUT/dist-tests.xml" > "$OUT/dist-tests.log" 2>&1 || status=1
grep -E "PASSED|FAILED|SKIPPED|ERROR|passed|failed" "$OUT/dist-tests.log" | grep -v "^\[rank" | tail -25
grep -E "^\[rank [0-9]+\] (PASS|FAIL) " "$OUT/dist-tests.log" | sort | uniq | tail -20

if [ "${SKIP_BENCH:-0}" != "1" ]; then
    echo "== benchmarks (2 GPUs) =="
    timeout 420 python3 -m tsir.runtime.launch -n 2 --timeout 400 benchmarks/distributed/bench_dist.py \
        --json "$OUT/dist-bench-2gpu.json" --markdown "$OUT/dist-bench-2gpu.md" > "$OUT/dist-bench.log" 2>&1 || status=1
    grep -v "^\[rank 1\]" "$OUT/dist-bench.log" | tail -60
fi
[ "$status" = 0 ] && echo "ALL PASS" || echo "SOMETHING FAILED (see $OUT/*.log)"
exit $status
