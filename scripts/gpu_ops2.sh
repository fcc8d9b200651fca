#!/usr/bin/env bash
# The GPU tests of issue 12's views / im2col / fragment copies / replication / register-A gemm /
# T.Fragment / T.alloc_global work (branch ops2), and the three TileLang programs they unlock, in
# one call (about a minute on an H100). Run from the repository root on a GPU machine:
#     scripts/gpu_ops2.sh            (uses .venv/bin/python, else python3)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
exec "$PY" -m pytest -q -m gpu -p no:cacheprovider \
    tests/builder/test_views.py \
    tests/tileop/test_im2col.py \
    tests/tileop/test_fragment_copy.py \
    tests/tileop/test_replicated_fragments.py \
    tests/tileop/test_gemm_rs.py \
    tests/compat/test_fragment_layouts.py \
    tests/runtime/test_alloc_global.py \
    "tests/compat/test_tilelang_programs_gpu.py::test_convolution" \
    "tests/compat/test_tilelang_programs_gpu.py::test_flash_attention" \
    "tests/compat/test_tilelang_programs_gpu.py::test_gqa_decode" \
    "$@"
