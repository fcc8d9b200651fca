"""Scalar semantics at the thread level (C's, as the generated CUDA has them), arguments, and the
errors for IR the interpreter cannot run."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from irkit import call, evaluate

import tsir
from tsir import T
from tsir.expr import Let, Var
from tsir.interpret import ArgumentError, UnknownDeviceCallError
from tsir.stmt import LetStmt


def elementwise(n: int, src: str, dst: str, fn) -> tsir.PrimFunc:
    with T.prim_func("f") as f:
        X = T.param("X", (n,), src)
        Y = T.param("Y", (n,), dst)
        with T.Kernel(1, threads=n):
            tx = T.get_thread_binding()
            Y[tx] = fn(X[tx], tx)
    return f.func


def run(fn, x: np.ndarray, dst: str) -> np.ndarray:
    y = np.zeros(x.shape, dtype=tsir.interpret.values.np_dtype(tsir.dtype(dst)))
    tsir.interpret(
        elementwise(
            x.size,
            str(tsir.dtype(str(x.dtype))) if x.dtype != ml_dtypes.bfloat16 else "bfloat16",
            dst,
            fn,
        ),
        x,
        y,
    )
    return y


def test_int32_wraparound_and_uint32() -> None:
    x = np.array([2**31 - 1, -(2**31), 123456789, -7], np.int32)
    np.testing.assert_array_equal(
        run(lambda v, t: v + 1, x, "int32"), (x.astype(np.int64) + 1).astype(np.int32)
    )
    np.testing.assert_array_equal(
        run(lambda v, t: v * 3, x, "int32"), (x.astype(np.int64) * 3).astype(np.int32)
    )
    u = np.array([0, 1, 2**32 - 1, 5], np.uint32)
    np.testing.assert_array_equal(
        run(lambda v, t: v - 2, u, "uint32"), (u.astype(np.int64) - 2).astype(np.uint32)
    )


def test_floor_division_and_modulo() -> None:
    x = np.array([-7, 7, -8, 0], np.int32)
    np.testing.assert_array_equal(run(lambda v, t: v // 2, x, "int32"), [-4, 3, -4, 0])
    np.testing.assert_array_equal(run(lambda v, t: v % 3, x, "int32"), [2, 1, 1, 0])
    np.testing.assert_array_equal(run(lambda v, t: v % -3, x, "int32"), [-1, -2, -2, 0])


def test_casts_truncate_and_round() -> None:
    x = np.array([2.7, -2.7, 1e10, -0.5], np.float32)
    np.testing.assert_array_equal(
        run(lambda v, t: T.cast(v, "int32"), x, "int32"), [2, -2, 2**31 - 1, 0]
    )
    h = np.array([1 / 3, 65504.0, 70000.0, 1e-8], np.float32)
    with np.errstate(over="ignore"):
        want = h.astype(np.float16)  # 70000 -> inf
    np.testing.assert_array_equal(run(lambda v, t: T.cast(v, "float16"), h, "float16"), want)
    np.testing.assert_array_equal(
        run(lambda v, t: T.cast(v, "bfloat16"), h, "bfloat16"), h.astype(ml_dtypes.bfloat16)
    )


def test_half_arithmetic_rounds_every_result() -> None:
    x = np.array([2048, 1, 0.1, 3], np.float16)
    got = run(lambda v, t: v + T.float16(1.0), x, "float16")
    np.testing.assert_array_equal(got, (x.astype(np.float32) + 1).astype(np.float16))
    b = np.array([1.0, 256.0, 3.0, 0.01], ml_dtypes.bfloat16)
    got = run(lambda v, t: v * T.bfloat16(1.01), b, "bfloat16")
    np.testing.assert_array_equal(
        got,
        (b.astype(np.float32) * np.float32(ml_dtypes.bfloat16(1.01))).astype(ml_dtypes.bfloat16),
    )


def test_float_min_max_ignore_nan_and_math() -> None:
    x = np.array([np.nan, -1.0, 4.0, 0.25], np.float32)
    np.testing.assert_array_equal(
        run(lambda v, t: T.max(v, 0.0), x, "float32"), [0.0, 0.0, 4.0, 0.25]
    )
    x = np.array([1.0, 4.0, 0.5, 2.5], np.float32)
    np.testing.assert_allclose(
        run(lambda v, t: T.rsqrt(v), x, "float32"), 1 / np.sqrt(x), rtol=1e-6
    )
    np.testing.assert_allclose(
        run(lambda v, t: T.exp2(v) + T.log(v), x, "float32"), np.exp2(x) + np.log(x), rtol=1e-6
    )
    np.testing.assert_array_equal(
        run(lambda v, t: T.round(v), x, "float32"), [1.0, 4.0, 1.0, 3.0]
    )  # halves away from 0


def test_select_evaluates_only_the_taken_side() -> None:
    x = np.arange(8, dtype=np.int32)
    # X[tx + 1] would be out of bounds for the last thread; `tx < 7` guards it.
    with T.prim_func("f") as f:
        X = T.param("X", (8,), "int32")
        Y = T.param("Y", (8,), "int32")
        with T.Kernel(1, threads=8):
            tx = T.get_thread_binding()
            Y[tx] = T.if_then_else(tx < 7, X[tx + 1], X[0] // 0 + 1 if False else -1)
            with T.If(T.all(tx < 7, X[tx + 1] > 3)):
                Y[tx] = Y[tx] * 10
    y = np.zeros(8, np.int32)
    tsir.interpret(f.func, x, y)
    np.testing.assert_array_equal(y, [1, 2, 3, 40, 50, 60, 70, -1])


def test_shifts_and_bitwise() -> None:
    x = np.array([-16, 16, 5, 1], np.int32)
    np.testing.assert_array_equal(
        run(lambda v, t: (v >> 2) ^ (v << 1), x, "int32"), (x >> 2) ^ (x << 1)
    )
    np.testing.assert_array_equal(run(lambda v, t: ~v & 7, x, "int32"), ~x & 7)


def test_let_statement_and_expression() -> None:
    with T.prim_func("f") as f:
        X = T.param("X", (4,), "int32")
        Y = T.param("Y", (4,), "int32")
        with T.Kernel(1, threads=4):
            tx = T.get_thread_binding()
            v = Var("v", tsir.dtype("int32"))
            w = Var("w", tsir.dtype("int32"))
            from irkit import emit

            emit(LetStmt(v, X[tx] * 2, tsir.BufferStore(Y, Let(w, v + 1, w * w), (tx,))))
    y = np.zeros(4, np.int32)
    tsir.interpret(f.func, np.arange(4, dtype=np.int32), y)
    np.testing.assert_array_equal(y, (2 * np.arange(4) + 1) ** 2)


def test_module_after_split_host_device_with_scalars_and_dynamic_dims() -> None:
    with T.prim_func("axpy") as f:
        n = T.dynamic("n")
        X = T.param("X", (n,), "float32")
        Y = T.param("Y", (n,), "float32")
        a = T.scalar("a", "float32")
        with T.Kernel(T.ceildiv(n, 64), threads=64) as bx:
            for i in T.Parallel(64):
                Y[bx * 64 + i] = a * X[bx * 64 + i] + Y[bx * 64 + i]
    mod = tsir.lower(f.func, "sm_80").module
    x = np.arange(100, dtype=np.float32)
    y = np.ones(100, np.float32)
    tsir.interpret(mod, x, y, 3.0)
    np.testing.assert_array_equal(y, 3 * x + 1)


def test_argument_errors() -> None:
    func = elementwise(4, "float32", "float32", lambda v, t: v)
    with pytest.raises(ArgumentError, match="takes 2 arguments"):
        tsir.interpret(func, np.zeros(4, np.float32))
    with pytest.raises(ArgumentError, match=r"`X` is float32 \(float32\), the array is float64"):
        tsir.interpret(func, np.zeros(4), np.zeros(4, np.float32))
    with pytest.raises(ArgumentError, match=r"`X` has shape \[4\], the array has \[5\]"):
        tsir.interpret(func, np.zeros(5, np.float32), np.zeros(4, np.float32))
    with T.prim_func("g") as g:
        n = T.dynamic("n")
        A = T.param("A", (n,), "float32")
        B = T.param("B", (n,), "float32")
        with T.Kernel(1, threads=32):
            B[0] = A[0]
    with pytest.raises(ArgumentError, match="is `n` = 4"):
        tsir.interpret(g.func, np.zeros(4, np.float32), np.zeros(5, np.float32))


def test_non_contiguous_arrays_are_written_back() -> None:
    func = elementwise(4, "float32", "float32", lambda v, t: v + 1.0)
    base = np.zeros((4, 2), np.float32)
    y = base[:, 0]
    tsir.interpret(func, np.arange(4, dtype=np.float32), y)
    np.testing.assert_array_equal(base[:, 0], np.arange(4) + 1)


def test_unknown_device_call_is_named() -> None:
    def body() -> tsir.PrimFunc:
        with T.prim_func("f") as f:
            X = T.param("X", (32,), "float32")
            with T.Kernel(1, threads=32):
                evaluate("int32", "tsir.mystery.frobnicate<3>", 1)
                X[0] = call("float32", "tsir.reduce.shfl_xor", X[0], 1)
        return f.func

    with pytest.raises(UnknownDeviceCallError, match=r"`tsir.mystery.frobnicate<3>`"):
        tsir.interpret(body(), np.zeros(32, np.float32))


def test_unsupported_ir_is_refused_with_its_name() -> None:
    from tsir.interpret.device_calls import parse_device_call

    assert parse_device_call("tsir.gemm_sm80.gemm_ss<64, 32, true, a<1, 2>>") == (
        "tsir.gemm_sm80.gemm_ss",
        ("64", "32", "true", "a<1, 2>"),
    )
    with pytest.raises(ArgumentError, match="PrimFunc or a Module"):
        tsir.interpret("not a function")


def test_the_host_evaluates_a_launch_grid_the_kernel_does_not_take() -> None:
    """SplitHostDevice passes a kernel only the values its body uses; its grid may need others."""
    with T.prim_func("f") as f:
        n = T.dynamic("n")
        X = T.param("X", (n,), "float32")
        Y = T.param("Y", (4,), "float32")
        with T.Kernel(T.ceildiv(n, 32), threads=32):
            tx = T.get_thread_binding()
            with T.If(tx == 0):
                T.atomic_add(Y[0], 1.0)
        _ = X
    y = np.zeros(4, np.float32)
    tsir.interpret(tsir.lower(f.func, "sm_80").module, np.zeros(100, np.float32), y)
    assert y[0] == 4


def test_narrow_float_atomics() -> None:
    with T.prim_func("f") as f:
        Y = T.param("Y", (2,), "bfloat16")
        with T.Kernel(3, threads=32):
            tx = T.get_thread_binding()
            T.atomic_add(Y[tx % 2], T.bfloat16(0.5))
    y = np.ones(2, ml_dtypes.bfloat16)
    tsir.interpret(f.func, y)
    np.testing.assert_array_equal(y.astype(np.float32), [1 + 24, 1 + 24])
