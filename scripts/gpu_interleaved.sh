#!/usr/bin/env bash
# Issue 11's GEMM figures without drift: benchmarks/gemm_interleaved.py on the 8192^3 and 4096^3
# problems (cuBLAS, Triton, the hand kernel and tsir's tile program, rotated rounds, paired
# ratios). Results: $OUT/interleaved.txt (tables) and $OUT/interleaved.jsonl (samples).
# Environment: ROUNDS (default 25), PROBLEMS (default "f16_8192 bf16_8192 f16_4096 bf16_4096"),
# TSIR and HAND (comma lists; set and empty: none of that kind).
set -uo pipefail
source scripts/gpu_env.sh
ROUNDS="${ROUNDS:-25}"
tmp=$(mktemp -d)
for p in ${PROBLEMS:-f16_8192 bf16_8192 f16_4096 bf16_4096}; do
  case "$p" in
    *_8192) tsir="128x256x64_s4_p,128x256x64_s4_p_w4,128x256x64_s4_p_w16,128x256x64_s3_p_shared"
            hand="128x256x64_s4_c2_p,128x256x64_s3_c2_p_tmastore" ;;
    *) tsir="128x256x64_s4_p,128x256x64_s3_p_shared"
       hand="128x256x64_s4_c2_p,128x256x64_s3_c2_p_tmastore" ;;
  esac
  t "interleaved $p"
  timeout 300 python3 benchmarks/gemm_interleaved.py --problem "$p" --tsir "${TSIR-$tsir}" \
    --hand "${HAND-$hand}" --rounds "$ROUNDS" --out "$tmp" 2>&1 | tee -a "$OUT/interleaved.txt"
done
cat "$tmp"/*.json > "$OUT/interleaved.jsonl" 2>/dev/null
t "interleaved done"
