"""TileLang's implicit dtype promotion in tsir.compat.tilelang (promotion.py), and DESIGN's explicit
rule kept in tsir's own builder."""

from __future__ import annotations

import numpy as np
import pytest
import tilelang_programs as P

import tsir
from tsir import T as TS
from tsir.compat.tilelang import language as T
from tsir.compat.tilelang.promotion import tilelang_promotion, tvm_promotion
from tsir.dtype import DataType
from tsir.errors import DTypeError
from tsir.expr import Cast
from tsir.interpret import check_stages
from tsir.stmt import BufferStore
from tsir.visitor import collect


@pytest.mark.parametrize(
    ("a", "b", "want"),
    [
        ("float16", "float32", "float32"),
        ("float32", "float64", "float64"),
        ("float16", "bfloat16", "float32"),
        ("int32", "float16", "float16"),
        ("bfloat16", "int64", "bfloat16"),
        ("int8", "int32", "int32"),
        ("int64", "int32", "int64"),
        ("int32", "uint32", "uint32"),
        ("uint8", "int32", "int32"),
        ("bool", "int32", "int32"),
        ("bool", "float16", "float16"),
        ("float8_e4m3", "float16", "float16"),
    ],
)
def test_tvm_rules(a: str, b: str, want: str) -> None:
    assert tvm_promotion(DataType(a), DataType(b)) == DataType(want)
    assert tvm_promotion(DataType(b), DataType(a)) == DataType(want)


def mixed(promote: bool) -> tsir.PrimFunc:
    """Y = X16 * 2.0 + X32 - I (float16, float32, int32 mixed) and Z = I * 0.5."""
    with TS.prim_func("mixed") as f:
        A = TS.param("A", (40,), "float16")
        B = TS.param("B", (40,), "float32")
        C = TS.param("C", (40,), "int32")
        Y = TS.param("Y", (40,), "float32")
        Z = TS.param("Z", (40,), "float32")
        with TS.Kernel(1, threads=64):
            for i in TS.Parallel(40):
                if promote:
                    with tilelang_promotion():
                        Y[i] = A[i] * 2.0 + B[i] - C[i]
                        Z[i] = C[i] * 0.5
                else:
                    Y[i] = A[i] * 2.0 + B[i] - C[i]
    return f.func


def test_promotion_computes_in_the_wider_dtype() -> None:
    func = mixed(True)
    stores = [s for s in collect(func.body, BufferStore) if s.buffer.name == "Y"]
    assert stores[0].value.dtype == DataType("float32")
    casts = [c for c in collect(stores[0].value, Cast)]
    assert {str(c.value.dtype) for c in casts} == {"float16", "int32"}
    rng = np.random.default_rng(0)
    a = rng.standard_normal(40).astype(np.float16)
    b = rng.standard_normal(40).astype(np.float32)
    c = rng.integers(-5, 5, 40).astype(np.int32)
    report = check_stages(func, [a, b, c, np.zeros(40, np.float32), np.zeros(40, np.float32)])
    assert report.ok, str(report)
    want = a.astype(np.float32) * 2 + b - c.astype(np.float32)
    np.testing.assert_allclose(report.reference[3], want, rtol=1e-6)
    np.testing.assert_allclose(report.reference[4], c * 0.5)


def test_the_builder_keeps_explicit_casts() -> None:
    with pytest.raises(DTypeError, match=r"mixes float16 .* and float32 .*T.cast") as e:
        mixed(False)
    assert e.value.loc is not None and e.value.loc.filename == __file__


def test_online_softmax_builds_with_tilelang_promotion() -> None:
    """The line that failed with a DTypeError (`lse[0] = max_x[0] * scale + T.log2(...)`, float16
    max_x with float32 lse) builds unchanged and computes in float32."""
    func = P.softmax_kernel.fn(8192, 8192)
    (store,) = [s for s in collect(func.body, BufferStore) if s.buffer.name == "lse"]
    assert store.value.dtype == DataType("float32")
    assert any(c.value.dtype == DataType("float16") for c in collect(store.value, Cast))


def test_online_softmax_runs_unchanged() -> None:
    """With the promotion (and the replicated fragments of branch ops2), the program's every
    pipeline stage computes the softmax, on a ragged row (300 of a 512-wide tile)."""
    func = P.softmax_kernel.fn(3, 300)
    x = np.random.default_rng(0).standard_normal((3, 300)).astype(np.float16)
    report = check_stages(func, [x, np.zeros_like(x)])
    assert report.ok, str(report)
    w = x.astype(np.float64)
    want = np.exp(w - w.max(1, keepdims=True))
    want /= want.sum(1, keepdims=True)
    np.testing.assert_allclose(report.reference[1].astype(np.float64), want, rtol=2e-2, atol=2e-3)


def test_compat_prim_func_promotes_and_builder_does_not() -> None:
    @T.prim_func
    def f(A: T.Tensor((8,), "float16"), B: T.Tensor((8,), "float32")):
        with T.Kernel(1, threads=32):
            for i in T.Parallel(8):
                B[i] = A[i] + B[i]

    (store,) = collect(f.body, BufferStore)
    assert store.value.dtype == DataType("float32")
