#!/usr/bin/env bash
# The session's closing device call, everything at once on one GPU host (under 10 minutes):
#  - in the background, on the host's CPU cores: the 10,000-program differential fuzz run
#    (scripts/fuzz.py: sm_80 and sm_90a lowered and compiled with NVRTC, stages compared with
#    the interpreter where their CUDA differs; stops at FUZZ_SECONDS and reports what finished);
#  - phase A, correctness at once: every GPU test (`pytest -m "gpu or multigpu"`), beside
#    compute-sanitizer's four tools over every example kernel (scripts/gpu_sanitize.sh)
#    and racecheck/synccheck on the explicit mbarrier kernels;
#  - phase B, timings one after another: attention (tsir vs torch SDPA), the 8192^3 GEMM
#    configurations, launch overhead (against the frozen pre-issue-10 launcher).
# Usage (GPU machine, repo root, .whl/ from `make device-wheels`): bash scripts/gpu_final.sh
set -uo pipefail
source scripts/gpu_env.sh
( nice -n 5 python3 scripts/fuzz.py --programs "${FUZZ_PROGRAMS:-10000}" --seed 1000000 \
    --jobs "${FUZZ_JOBS:-10}" --stages changed --seconds "${FUZZ_SECONDS:-420}" \
    --out "$OUT/fuzz.json" > "$OUT/fuzz.log" 2>&1; echo "fuzz exit $?" >> "$OUT/fuzz.log" ) &
fuzz=$!
# Phase A
( OUT="$OUT/sanitize" timeout 240 bash scripts/gpu_sanitize.sh > "$OUT/sanitize.out" 2>&1
  echo "sanitize exit $?" >> "$OUT/sanitize.out" ) &
san=$!
timeout 240 python3 -m pytest -v -p no:cacheprovider -m "gpu or multigpu" -rs tests \
  > "$OUT/gpu_tests.log" 2>&1
t "gpu tests exit $?"; grep -E "FAILED|ERROR|passed|failed" "$OUT/gpu_tests.log" | tail -15
wait "$san"; t "sanitizers:"; cat "$OUT/sanitize.out"
# Phase B
timeout 150 python3 benchmarks/flash_attention_hopper.py --out "$OUT" > "$OUT/attention_bench.out" 2>&1
t "attention bench exit $?"; tail -28 "$OUT/attention_bench.out"
timeout 100 python3 benchmarks/gemm_hopper.py --out "$OUT" --only 16_8192/ --no-sanitize \
  > "$OUT/gemm_8192.out" 2>&1
t "gemm 8192 exit $?"; tail -22 "$OUT/gemm_8192.out"
timeout 50 python3 benchmarks/launch_overhead.py --iters 20000 --repeats 5 --json "$OUT/launch.json" \
  > "$OUT/launch.out" 2>&1
t "launch overhead exit $?"; tail -14 "$OUT/launch.out"
wait "$fuzz"
t "fuzz done"; grep -vE "^  [0-9]+ programs," "$OUT/fuzz.log" | head -40
