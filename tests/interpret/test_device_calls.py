"""The device-call table against the headers it mirrors: every entry names a function of
codegen/include/tsir (CPU), every device call the pipeline emits for the examples has an entry
(CPU), and on a GPU each entry computes what the compiled header computes (`-m gpu`)."""

from __future__ import annotations

import os
import re
import sys

import numpy as np
import pytest

import tsir
from tsir.expr import Call
from tsir.interpret.device_calls import DEVICE_CALLS, parse_device_call
from tsir.visitor import walk

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
HEADERS = os.path.join(ROOT, "codegen", "include", "tsir")


def test_every_tsir_entry_names_a_header_function() -> None:
    for name in DEVICE_CALLS:
        if not name.startswith("tsir."):
            continue
        _, header, fn = name.split(".", 2)
        path = os.path.join(HEADERS, f"{header}.h")
        assert os.path.isfile(path), f"{name}: no header {header}.h"
        with open(path) as fh:
            text = fh.read()
        assert re.search(rf"\b{re.escape(fn)}\s*\(", text), f"{name}: {header}.h defines no `{fn}`"


def _example_functions() -> list[tsir.PrimFunc]:
    sys.path.insert(0, os.path.join(ROOT, "examples", "distributed"))
    import collectives
    import gemm_rs
    import nvshmem_examples
    import put_get
    import ring_shift
    from flash_attention import flash_attention
    from gemm import matmul
    from softmax import column_sum_atomic, prefix_sum_rows, softmax, tile_sum_and_max

    return [
        matmul(64, 64, 64, bm=32, bn=32, bk=32, num_stages=3),
        softmax(256, 1),
        column_sum_atomic(256),
        prefix_sum_rows(64),
        tile_sum_and_max(),
        flash_attention(1, 64, 64),
        *list(put_get.kernels().values())[:4],
        ring_shift.ring_shift(1024, 4),
        collectives.all_gather(1000, 2, 3),
        gemm_rs.gemm_partial(256, 256, 64, 2),
        nvshmem_examples.put_get(64),
        nvshmem_examples.all_gather(64, 2),
    ]


def test_every_device_call_the_pipeline_emits_has_an_entry() -> None:
    missing = set()
    for func in _example_functions():
        for n in walk(tsir.lower(func, "sm_80").module):
            if isinstance(n, Call) and n.op.startswith(("tsir.", "nvshmem.", "extern:")):
                if parse_device_call(n.op)[0] not in DEVICE_CALLS:
                    missing.add(n.op)
    assert not missing, f"device calls with no reference semantics: {sorted(missing)}"


# -- on a GPU: the table against the compiled headers -------------------------------------------------


def _gpu_vs_interpreter(func: tsir.PrimFunc, args: list[np.ndarray], rtol: float) -> None:
    torch = pytest.importorskip("torch")
    kernel = tsir.compile(func, target="cuda")
    dev = [torch.from_numpy(a.copy()).cuda() for a in args]
    kernel(*dev)
    torch.cuda.synchronize()
    ref = [a.copy() for a in args]
    tsir.interpret(tsir.lower(func, kernel.target).module, *ref)
    for got, want in zip(dev, ref):
        np.testing.assert_allclose(
            got.cpu().float().numpy(), want.astype(np.float32), rtol=rtol, atol=rtol
        )


@pytest.mark.gpu
@pytest.mark.parametrize(
    "bk,stages,ta,tb",
    [(16, 2, False, False), (32, 3, True, False), (64, 2, False, True), (32, 3, True, True)],
)
def test_gemm_ss_matches_the_header(bk: int, stages: int, ta: bool, tb: bool) -> None:
    """Swizzles of 32/64/128 bytes, every transpose, cp.async pipelines: fp32 outputs agree."""
    from gemm import matmul

    M, N, K = 96, 64, 128
    rng = np.random.default_rng(5)
    a = rng.standard_normal((K, M) if ta else (M, K)).astype(np.float16)
    b = rng.standard_normal((N, K) if tb else (K, N)).astype(np.float16)
    func = matmul(
        M,
        N,
        K,
        bm=32,
        bn=64,
        bk=bk,
        num_stages=stages,
        transpose_A=ta,
        transpose_B=tb,
        out_dtype="float32",
    )
    _gpu_vs_interpreter(func, [a, b, np.full((M, N), np.nan, np.float32)], 1e-4)


@pytest.mark.gpu
def test_shuffles_atomics_and_scans_match_the_headers() -> None:
    from softmax import column_sum_atomic, prefix_sum_rows, softmax

    rng = np.random.default_rng(6)
    x = rng.standard_normal((37, 512)).astype(np.float32)
    _gpu_vs_interpreter(softmax(512, 2), [x, np.zeros_like(x)], 1e-5)
    _gpu_vs_interpreter(column_sum_atomic(512), [x, np.zeros(512, np.float32)], 1e-4)
    _gpu_vs_interpreter(prefix_sum_rows(512), [x, np.zeros_like(x)], 1e-4)
