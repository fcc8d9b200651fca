#!/usr/bin/env bash
# Every multi-GPU check in one device call (2 GPUs): all multi-GPU tests (IPC examples, bad input,
# dead peer, GEMM + communication, copy engines, NVSHMEM), then the all-gather + GEMM benchmark and
# the copy-engine / NVSHMEM benchmarks. Logs under $OUT. Every step has a timeout.
set -uo pipefail
OUT="${OUT:-out}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
export NVSHMEM_SYMMETRIC_SIZE="${NVSHMEM_SYMMETRIC_SIZE:-1G}"
python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH="/tmp/site:$PWD"
nvidia-smi --query-gpu=name --format=csv,noheader | tee "$OUT/gpus.txt"
status=0
L="python3 -m tsir.runtime.launch"
echo "== multi-GPU tests =="
timeout 330 python3 -m pytest -p no:cacheprovider -m multigpu -v -rs tests/distributed \
    > "$OUT/multi-tests.log" 2>&1 || status=1
grep -E "::.*(PASSED|FAILED|ERROR)|passed|failed" "$OUT/multi-tests.log" | tail -30
echo "== all-gather + GEMM (SM push, overlapped) =="
AG_GEMM_JSON="$OUT/ag_gemm.json" timeout 100 $L -n 2 --timeout 95 examples/distributed/ag_gemm.py --bench \
    > "$OUT/ag-gemm.log" 2>&1 || status=1
grep -E "^\[rank 0\]" "$OUT/ag-gemm.log" | tail -8
echo "== copy engine bench =="
timeout 100 $L -n 2 --timeout 95 examples/distributed/cpengine_allgather.py --bench > "$OUT/cp-bench.log" 2>&1 || status=1
grep -E "^\[rank 0\]" "$OUT/cp-bench.log" | tail -14
echo "== NVSHMEM bench =="
timeout 60 $L -n 2 --timeout 55 examples/distributed/nvshmem_examples.py --bench > "$OUT/nvshmem-bench.log" 2>&1 || status=1
grep -E "^\[rank 0\]" "$OUT/nvshmem-bench.log" | tail -8
[ "$status" = 0 ] && echo "ALL PASS" || echo "SOMETHING FAILED"
exit $status
