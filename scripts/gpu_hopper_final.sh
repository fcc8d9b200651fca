#!/usr/bin/env bash
# Issue 11's closing device call (one GPU, under 8 minutes):
#  A. correctness at once: the GPU tests of the Hopper work (attention incl. ping-pong and the
#     float math modes, the TMA-store epilogue, the hand GEMM with clusters and TMA stores, the
#     interpreter's device-call twins), with compute-sanitizer initcheck on two small kernels
#     beside them (with and without the `_kernel` filter, to see whose writes it misses);
#  B. timings one after another: attention (every config beside every SDPA backend), the
#     tile-program GEMM at 8192^3 and 4096^3 (cuBLAS, Triton, the hand kernel, tsir incl. TMA
#     stores), the hand kernel's cluster / TMA-store variants.
# Usage (GPU machine, repo root): bash scripts/gpu_hopper_final.sh
set -uo pipefail
source scripts/gpu_env.sh
( compute-sanitizer --tool initcheck --kernel-name kns=_kernel --print-limit 4 \
    python3 scripts/sanitize_kernels.py vector_add gemm_loop > "$OUT/initcheck_filtered.log" 2>&1
  compute-sanitizer --tool initcheck --print-limit 4 \
    python3 scripts/sanitize_kernels.py vector_add gemm_loop > "$OUT/initcheck_all.log" 2>&1 ) &
san=$!
timeout 180 python3 -m pytest -q -p no:cacheprovider -m gpu tests/hopper/test_attention_gpu.py \
  tests/hopper/test_ping_pong_gpu.py tests/hopper/test_gemm_wgmma_gpu.py \
  tests/hopper/test_hand_gemm_gpu.py tests/runtime/test_fast_math.py \
  tests/interpret/test_hopper_gpu.py > "$OUT/gpu_tests.log" 2>&1
t "gpu tests exit $?"; grep -E "FAILED|ERROR|passed|failed" "$OUT/gpu_tests.log" | tail -12
wait "$san"
for f in initcheck_filtered initcheck_all; do
  echo "$f: $(grep -E 'ERROR SUMMARY' "$OUT/$f.log" | tail -1)"
  grep -E "^=========  *(Uninit|Host API)|^=========     at .*(_kernel|vectorized|copy)" \
    "$OUT/$f.log" | sort | uniq -c | sort -rn | head -4
done
timeout 140 python3 benchmarks/flash_attention_hopper.py --out "$OUT" > "$OUT/attention.out" 2>&1
t "attention bench exit $?"; grep -E "SDPA|best|overlap_pp|overlap_ftz|overlap_fast" \
  "$OUT/attention.out" | tail -34
GEMM_CASES=f16_4096/cublas,f16_4096/triton,f16_4096/tsir:128x256x64_s4_p,f16_4096/tsir:128x256x64_s3_p_s
GEMM_CASES=$GEMM_CASES,f16_8192/triton,f16_8192/hand,f16_8192/tsir:128x256x64_s4_p
GEMM_CASES=$GEMM_CASES,16_8192/cublas,16_8192/tsir:128x256x64_s3_p_shared,16_8192/tsir:128x256x64_s3_p_smem_w4
timeout 130 python3 benchmarks/gemm_hopper.py --out "$OUT" --no-sanitize \
  --only "$GEMM_CASES" \
  > "$OUT/gemm_tile.out" 2>&1
t "gemm (tile program) exit $?"; grep -E "^(f16|bf16)_" "$OUT/gemm_tile.out" | tail -26
timeout 70 python3 benchmarks/hopper_gemm.py --out "$OUT/hand" --no-sanitize \
  --only f16_8192/cublas,f16_8192/tsir:f16_128x256x64_s > "$OUT/gemm_hand.out" 2>&1
t "gemm (hand) exit $?"; grep -E "^f16_8192" "$OUT/gemm_hand.out" | tail -10
rm -rf "$OUT/hand/hopper_gemm.log" "$OUT/gemm_hopper.log"
