#!/usr/bin/env bash
# Issue 6 in one device call (2+ GPUs): the copy-engine and NVSHMEM multi-GPU tests, then a short
# benchmark (copy-engine all-gather vs SM all-gather vs NCCL, AG+GEMM overlapped vs SM/NCCL then
# GEMM; NVSHMEM put vs IPC put). Usage (repo root): bash scripts/gpu_cpengine_nvshmem_check.sh
# Logs under $OUT (./out when unset); every step has a timeout; prints PASS/FAIL lines and tables.
set -uo pipefail
OUT="${OUT:-out}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
export NVSHMEM_DISABLE_CUDA_VMM="${NVSHMEM_DISABLE_CUDA_VMM:-0}" NVSHMEM_SYMMETRIC_SIZE="${NVSHMEM_SYMMETRIC_SIZE:-1G}"
GPU_SITE="${GPU_SITE:-/tmp/site}"
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target "$GPU_SITE" .whl/*.whl
fi
export PYTHONPATH="$GPU_SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
ngpu=$(nvidia-smi -L | wc -l)
echo "GPUs: $ngpu"; [ "$ngpu" -ge 2 ] || { echo "FAIL: needs 2 GPUs"; exit 1; }
python3 -c "import nvshmem.core" 2>/dev/null && echo "nvshmem4py: yes" || echo "nvshmem4py: MISSING (NVSHMEM tests skip)"
status=0
L="python3 -m tsir.runtime.launch"

echo "== tests =="
timeout 200 python3 -m pytest -p no:cacheprovider -m multigpu -v -rs \
    tests/distributed/test_cpengine_nvshmem_multigpu.py > "$OUT/i6-tests.log" 2>&1 || status=1
grep -E "PASSED|FAILED|SKIPPED|ERROR" "$OUT/i6-tests.log" | grep "::" | tail -10
grep -E "(PASS|FAIL) (cpengine|nvshmem)|Error|error:" "$OUT/i6-tests.log" | sort | uniq | head -20

echo "== bench: copy engine (2 GPUs) =="
timeout 120 $L -n 2 --timeout 110 examples/distributed/cpengine_allgather.py --bench \
    > "$OUT/i6-bench-cp.log" 2>&1 || status=1
grep -E "^\[rank 0\]" "$OUT/i6-bench-cp.log" | tail -12
if python3 -c "import nvshmem.core" 2>/dev/null; then
    echo "== bench: NVSHMEM vs IPC put (2 GPUs) =="
    timeout 90 $L -n 2 --timeout 80 examples/distributed/nvshmem_examples.py --bench \
        > "$OUT/i6-bench-nvshmem.log" 2>&1 || status=1
    grep -E "^\[rank 0\]" "$OUT/i6-bench-nvshmem.log" | tail -6
fi
[ "$status" = 0 ] && echo "ALL PASS" || echo "SOMETHING FAILED (see $OUT/i6-*.log)"
exit $status
