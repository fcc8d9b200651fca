#!/usr/bin/env bash
# One device call for explicit Hopper control (issue 11, deliverable 4): the hand-specialized
# programs (examples/hopper_ws_gemm.py, examples/tilelang_ws_gemm.py: warp roles, mbarriers,
# T.tma_copy, setmaxnreg) against torch (tests/hopper/test_explicit_gpu.py), then both example
# scripts, then compute-sanitizer racecheck and synccheck on two of them. Under 3 minutes.
# Usage (GPU machine, repo root): bash scripts/gpu_explicit.sh
set -uo pipefail
source scripts/gpu_env.sh
start=$(date +%s)
timeout 100 python3 -m pytest -q -p no:cacheprovider -m gpu tests/hopper/test_explicit_gpu.py 2>&1 \
  | tee "$OUT/explicit_gpu_tests.log" | tail -15
status=${PIPESTATUS[0]}
timeout 40 python3 examples/hopper_ws_gemm.py 2>&1 | tee "$OUT/hopper_ws_gemm.out" | tail -8
ex1=${PIPESTATUS[0]}
timeout 30 python3 examples/tilelang_ws_gemm.py 2>&1 | tee "$OUT/tilelang_ws_gemm.out" | tail -5
ex2=${PIPESTATUS[0]}
# compute-sanitizer on one block's worth of the mbarrier protocols (plain stores and TMA).
cat > "$OUT/sanitize_explicit.py" <<'PY'
import sys
sys.path.insert(0, "examples")
import torch, tsir
import hopper_ws_gemm as H
for func in (H.ws_gemm_barrier(128, 128, 256), H.ws_gemm_loops(128, 128, 256, stages=2)):
    k = tsir.compile(func, target="cuda")
    a = torch.randn(128, 256, device="cuda", dtype=torch.float16)
    b = torch.randn(256, 128, device="cuda", dtype=torch.float16)
    c = torch.empty(128, 128, device="cuda", dtype=torch.float16)
    k(a, b, c)
    torch.cuda.synchronize()
    torch.testing.assert_close(c, a @ b, rtol=2e-2, atol=2e-2)
print("sanitized kernels ran")
PY
san=0
if command -v compute-sanitizer >/dev/null; then
  for tool in racecheck synccheck; do
    timeout 60 compute-sanitizer --tool "$tool" --error-exitcode 9 python3 "$OUT/sanitize_explicit.py" \
      2>&1 | tee "$OUT/sanitize_$tool.log" | tail -4
    [ "${PIPESTATUS[0]}" = 0 ] || san=1
  done
else
  echo "compute-sanitizer not found: sanitizer runs skipped"
fi
echo "gpu_explicit.sh: tests $status, examples $ex1/$ex2, sanitizer $san, $(( $(date +%s) - start )) s"
[ "$status" = 0 ] && [ "$ex1" = 0 ] && [ "$ex2" = 0 ] && [ "$san" = 0 ]
