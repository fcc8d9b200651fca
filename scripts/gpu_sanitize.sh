#!/usr/bin/env bash
# compute-sanitizer over every example kernel at a small shape (scripts/sanitize_kernels.py):
# racecheck, synccheck, memcheck and initcheck, checking tsir's kernels only (names end in _kernel).
# Any hazard, error or wrong result fails. Run from the repo root with tsir importable
# (make gpu-test sets PYTHONPATH). Logs go to $OUT (default out/).
set -uo pipefail
OUT="${OUT:-out}"
mkdir -p "$OUT"
tool=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
[ -x "$tool" ] || { echo "compute-sanitizer not found" >&2; exit 1; }
# The four tools run at once (each in its own process on the one GPU); summaries print in order.
run_check() {
  local check=$1; shift
  local extra=()
  [ "$check" = racecheck ] && extra=(--racecheck-report all)
  # API errors are the host libraries probing optional driver entry points, not kernel faults.
  [ "$check" = memcheck ] && extra=(--report-api-errors no)
  # initcheck: tsir's kernels' reads only. cudaMemcpy of buffers that torch's kernels (outside the
  # filter) wrote is reported as uninitialized otherwise (160,640 such reports on an H100).
  [ "$check" = initcheck ] && extra=(--check-api-memory-access no)
  local log="$OUT/sanitize_$check.log" start rc summary wrong
  start=$(date +%s)
  "$tool" --tool "$check" "${extra[@]}" --kernel-name kns=_kernel --error-exitcode 9 \
    --print-limit 20 python3 scripts/sanitize_kernels.py "$@" >"$log" 2>&1
  rc=$?
  summary=$(grep -E "ERROR SUMMARY|RACECHECK SUMMARY|hazard" "$log" | tail -2 | tr '\n' ' ')
  wrong=$(grep -cE ": (WRONG|error)" "$log")
  {
    echo "$check: exit $rc, $wrong wrong case(s), $(( $(date +%s) - start )) s; $summary"
    [ "$rc" = 0 ] && [ "$wrong" = 0 ] || grep -E "WRONG|error|Race|Hazard|Invalid|Uninitialized|Barrier" "$log" | head -20
  } >"$OUT/sanitize_$check.summary"
  [ "$rc" = 0 ] && [ "$wrong" = 0 ]
}
checks=(racecheck synccheck memcheck initcheck)
pids=()
for check in "${checks[@]}"; do
  run_check "$check" "$@" &
  pids+=($!)
done
fail=0
for i in "${!checks[@]}"; do
  wait "${pids[$i]}" || fail=1
  cat "$OUT/sanitize_${checks[$i]}.summary"
done
exit $fail
