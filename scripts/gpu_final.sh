#!/usr/bin/env bash
# The session's closing device call, everything at once on one GPU host (under 9 minutes):
#  - in the background, on the host's CPU cores: the 10,000-program differential fuzz run
#    (scripts/fuzz.py, sm_80 and sm_90a lowered and compiled with NVRTC, stages compared with the
#    interpreter where their CUDA differs);
#  - the GPU tests of the Hopper work (GEMM, attention, explicit control) and of the runtime;
#  - the attention benchmark (tsir vs torch SDPA), the 8192^3 GEMM configs, launch overhead;
#  - compute-sanitizer's four tools over every example kernel (scripts/gpu_sanitize.sh).
# Usage (GPU machine, repo root, .whl/ from `make device-wheels`): bash scripts/gpu_final.sh
set -uo pipefail
OUT="${OUT:-out}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
start=$(date +%s)
t() { echo "[$(( $(date +%s) - start )) s] $*"; }
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/site .whl/*.whl 2>&1 | tail -3
export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export TSIR_CACHE_DIR=/tmp/tsir_cache
FUZZ_PROGRAMS="${FUZZ_PROGRAMS:-10000}"
FUZZ_JOBS="${FUZZ_JOBS:-10}"
( timeout "${FUZZ_SECONDS:-480}" nice -n 5 python3 scripts/fuzz.py --programs "$FUZZ_PROGRAMS" \
    --seed 1000000 --jobs "$FUZZ_JOBS" --stages changed --out "$OUT/fuzz.json" \
    > "$OUT/fuzz.log" 2>&1; echo "fuzz exit $?" >> "$OUT/fuzz.log" ) &
fuzz=$!
tests=(tests/hopper tests/runtime/test_alloc_global.py)
for f in tests/hopper/test_attention_gpu.py tests/hopper/test_explicit_gpu.py tests/compat/test_explicit_gpu.py; do
  [ -f "$f" ] && tests+=("$f")
done
timeout 150 python3 -m pytest -v -p no:cacheprovider -m "gpu or multigpu" -rs "${tests[@]}" \
  > "$OUT/gpu_tests.log" 2>&1
t "gpu tests exit $?"; grep -E "FAILED|ERROR|passed|failed" "$OUT/gpu_tests.log" | tail -15
for s in benchmarks/flash_attention_hopper.py; do
  [ -f "$s" ] && { timeout 150 python3 "$s" > "$OUT/attention_bench.out" 2>&1; t "attention bench exit $?"; tail -25 "$OUT/attention_bench.out"; }
done
timeout 120 python3 benchmarks/gemm_hopper.py --out "$OUT" --only 16_8192/ --no-sanitize \
  > "$OUT/gemm_8192.out" 2>&1
t "gemm 8192 exit $?"; tail -16 "$OUT/gemm_8192.out"
timeout 60 python3 benchmarks/launch_overhead.py --iters 20000 --repeats 5 --json "$OUT/launch.json" \
  > "$OUT/launch.out" 2>&1
t "launch overhead exit $?"; tail -14 "$OUT/launch.out"
OUT="$OUT/sanitize" timeout 200 bash scripts/gpu_sanitize.sh
t "sanitize exit $?"
wait "$fuzz"
t "fuzz done"; tail -30 "$OUT/fuzz.log"
