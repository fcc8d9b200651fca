#!/usr/bin/env bash
# One device call for a lead's session check: every gpu/multigpu test (verbose, so a timeout still
# leaves the per-test lines), then the Hopper GEMM benchmark (benchmarks/gemm_hopper.py: tsir's
# compiled tile program beside cuBLAS, Triton and the phase-1 hand kernel, plus its sanitizer
# cases). Usage (GPU machine, repo root, .whl/ from `make device-wheels`):
#   bash scripts/gpu_session.sh [TEST_SECONDS] [BENCH_SECONDS]
set -uo pipefail
source scripts/gpu_env.sh
start=$(date +%s)
timeout "${1:-240}" python3 -m pytest -v -p no:cacheprovider -m "gpu or multigpu" -rs --durations=15 tests \
  > "$OUT/gpu_tests.log" 2>&1
echo "gpu tests exit $? after $(( $(date +%s) - start )) s"
grep -E "FAILED|ERROR|passed|failed" "$OUT/gpu_tests.log" | tail -40
timeout "${2:-260}" python3 benchmarks/gemm_hopper.py --out "$OUT" > "$OUT/gemm_hopper.out" 2>&1
echo "benchmark exit $? after $(( $(date +%s) - start )) s"
tail -45 "$OUT/gemm_hopper.out"
