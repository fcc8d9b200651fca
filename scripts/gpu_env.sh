# Sourced by the gpu_*.sh scripts on the GPU machine (repo root): $OUT, the carried wheels
# (.whl/, from `make device-wheels`) installed without network into $GPU_SITE, PYTHONPATH with
# tsir from this checkout, tsir's kernel cache, unbuffered output, the GPU's name in
# $OUT/gpu.txt, and `t MESSAGE` (prints the seconds since sourcing).
OUT="${OUT:-out}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
GPU_SITE="${GPU_SITE:-/tmp/site}"
_gpu_env_start=$(date +%s)
t() { echo "[$(( $(date +%s) - _gpu_env_start )) s] $*"; }
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader \
  | tee "$OUT/gpu.txt"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target "$GPU_SITE" \
    .whl/*.whl 2>&1 | tail -3
else
  echo "warning: no .whl/ (run 'make device-wheels' where PyPI is reachable)"
fi
export PYTHONPATH="$GPU_SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export TSIR_CACHE_DIR="${TSIR_CACHE_DIR:-/tmp/tsir_cache}"
