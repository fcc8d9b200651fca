"""The tile level: each tile operator by DESIGN's semantics, T.Parallel as array semantics,
checked against numpy on small shapes."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import tsir
from tsir import T
from tsir.interpret import TileSemanticsError

RNG = np.random.default_rng(3)


def test_copy_zero_fills_outside_the_source_and_skips_outside_the_destination() -> None:
    with T.prim_func("f") as f:
        A = T.param("A", (10, 6), "float32")
        B = T.param("B", (7, 9), "float16")
        with T.Kernel(1, threads=32):
            S = T.alloc_shared((8, 8), "float32")
            T.copy(A[4, 2], S)  # rows 4..11, cols 2..9 of a 10 x 6 matrix
            T.copy(S, B[2, 3])  # into rows 2..9, cols 3..10 of a 7 x 9 matrix
    a = RNG.standard_normal((10, 6)).astype(np.float32)
    b = np.full((7, 9), 5, np.float16)
    tsir.interpret(f.func, a, b)
    tile = np.zeros((8, 8), np.float32)
    tile[:6, :4] = a[4:10, 2:6]
    want = np.full((7, 9), 5, np.float16)
    want[2:7, 3:9] = tile[:5, :6].astype(np.float16)
    np.testing.assert_array_equal(b, want)


def test_fill_clear_and_casts() -> None:
    with T.prim_func("f") as f:
        A = T.param("A", (4, 4), "int32")
        B = T.param("B", (4, 4), "bfloat16")
        with T.Kernel(1, threads=32):
            x = T.alloc_fragment((4, 4), "float32")
            T.fill(x, 2.7)
            T.copy(x, A)  # float -> int truncates
            T.clear(x[1:3, 1:3])
            T.copy(x, B)
    a = np.zeros((4, 4), np.int32)
    b = np.zeros((4, 4), ml_dtypes.bfloat16)
    tsir.interpret(f.func, a, b)
    np.testing.assert_array_equal(a, np.full((4, 4), 2))
    want = np.full((4, 4), 2.7, np.float32)
    want[1:3, 1:3] = 0
    np.testing.assert_array_equal(b, want.astype(ml_dtypes.bfloat16))


@pytest.mark.parametrize(
    "ta,tb,clear",
    [(False, False, False), (True, False, False), (False, True, True), (True, True, False)],
)
def test_gemm(ta: bool, tb: bool, clear: bool) -> None:
    M, N, K = 32, 16, 48
    with T.prim_func("f") as f:
        A = T.param("A", (K, M) if ta else (M, K), "float16")
        B = T.param("B", (N, K) if tb else (K, N), "float16")
        C = T.param("C", (M, N), "float32")
        with T.Kernel(1, threads=64):
            A_s = T.alloc_shared((K, M) if ta else (M, K), "float16")
            B_s = T.alloc_shared((N, K) if tb else (K, N), "float16")
            C_f = T.alloc_fragment((M, N), "float32")
            T.fill(C_f, 1.0)
            T.copy(A, A_s)
            T.copy(B, B_s)
            T.gemm(A_s, B_s, C_f, transpose_A=ta, transpose_B=tb, clear_accum=clear)
            T.copy(C_f, C)
    a = RNG.standard_normal((K, M) if ta else (M, K)).astype(np.float16)
    b = RNG.standard_normal((N, K) if tb else (K, N)).astype(np.float16)
    c = np.zeros((M, N), np.float32)
    tsir.interpret(f.func, a, b, c)
    want = (a.T if ta else a).astype(np.float64) @ (b.T if tb else b).astype(np.float64) + (
        0 if clear else 1
    )
    np.testing.assert_allclose(c, want, rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("kind", ["sum", "max", "min", "absmax", "abssum"])
@pytest.mark.parametrize("dim", [0, 1])
def test_reduce(kind: str, dim: int) -> None:
    with T.prim_func("f") as f:
        X = T.param("X", (8, 16), "float32")
        Y = T.param("Y", (16 if dim == 0 else 8,), "float32")
        with T.Kernel(1, threads=64):
            x = T.alloc_fragment((8, 16), "float32")
            y = T.alloc_fragment((16 if dim == 0 else 8,), "float32")
            T.copy(X, x)
            T.fill(y, 0.5)
            T.reduce(x, y, dim, kind, clear=False)
            T.copy(y, Y)
    x = RNG.standard_normal((8, 16)).astype(np.float32)
    y = np.zeros(16 if dim == 0 else 8, np.float32)
    tsir.interpret(f.func, x, y)
    v = np.abs(x) if kind.startswith("abs") else x
    r = {"sum": v.sum, "abssum": v.sum, "max": v.max, "absmax": v.max, "min": v.min}[kind](axis=dim)
    comb = {
        "sum": np.add,
        "abssum": np.add,
        "max": np.maximum,
        "absmax": np.maximum,
        "min": np.minimum,
    }[kind]
    np.testing.assert_allclose(y, comb(r, 0.5), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("reverse", [False, True])
def test_cumsum(reverse: bool) -> None:
    with T.prim_func("f") as f:
        X = T.param("X", (4, 8), "int32")
        Y = T.param("Y", (4, 8), "int32")
        with T.Kernel(1, threads=32):
            S = T.alloc_shared((4, 8), "int32")
            D = T.alloc_shared((4, 8), "int32")
            T.copy(X, S)
            T.cumsum(S, D, dim=0, reverse=reverse)
            T.copy(D, Y)
    x = RNG.integers(-50, 50, (4, 8)).astype(np.int32)
    y = np.zeros((4, 8), np.int32)
    tsir.interpret(f.func, x, y)
    want = np.cumsum(x[::-1], axis=0)[::-1] if reverse else np.cumsum(x, axis=0)
    np.testing.assert_array_equal(y, want)


def test_atomic_add_tile_from_several_blocks() -> None:
    with T.prim_func("f") as f:
        X = T.param("X", (4, 8), "float32")
        Y = T.param("Y", (8,), "float32")
        with T.Kernel(4, threads=32) as bx:
            x = T.alloc_fragment((8,), "float32")
            T.copy(X[bx, 0], x)
            T.atomic_add(Y[0], x)
    x = RNG.standard_normal((4, 8)).astype(np.float32)
    y = np.ones(8, np.float32)
    tsir.interpret(f.func, x, y)
    np.testing.assert_allclose(y, 1 + x.sum(axis=0), rtol=1e-6)


def test_parallel_is_array_semantics_and_reductions_combine() -> None:
    with T.prim_func("f") as f:
        X = T.param("X", (4, 8), "float32")
        Y = T.param("Y", (4, 8), "float32")
        Z = T.param("Z", (2,), "float32")
        with T.Kernel(1, threads=32):
            x = T.alloc_fragment((4, 8), "float32")
            total = T.alloc_fragment((2,), "float32")
            T.copy(X, x)
            T.clear(total)
            for i, j in T.Parallel(4, 8):
                x[i, j] = x[i, j] * 2.0
                Y[i, j] = x[i, j] + x[3 - i, j]
                total[0] = total[0] + x[i, j]
                total[1] = T.max(total[1], x[i, j])
            T.copy(total, Z)
    x = RNG.standard_normal((4, 8)).astype(np.float32)
    y = np.zeros((4, 8), np.float32)
    z = np.zeros(2, np.float32)
    tsir.interpret(f.func, x, y, z)
    np.testing.assert_allclose(y, 2 * x + 2 * x[::-1], rtol=1e-6)
    np.testing.assert_allclose(z, [2 * x.sum(), max(0, 2 * x.max())], rtol=1e-5)


def test_parallel_iterations_writing_different_values_to_one_element_is_refused() -> None:
    with T.prim_func("f") as f:
        X = T.param("X", (8,), "float32")
        with T.Kernel(1, threads=32):
            x = T.alloc_fragment((1,), "float32")
            for i in T.Parallel(8):
                x[0] = X[i]
    with pytest.raises(TileSemanticsError, match="iterations of T.Parallel write different values"):
        tsir.interpret(f.func, np.arange(8, dtype=np.float32))


def test_out_of_bounds_parallel_global_accesses_are_guarded() -> None:
    with T.prim_func("f") as f:
        n = T.dynamic("n")
        X = T.param("X", (n,), "float32")
        Y = T.param("Y", (n,), "float32")
        with T.Kernel(T.ceildiv(n, 16), threads=32) as bx:
            for i in T.Parallel(16):
                Y[bx * 16 + i] = X[bx * 16 + i + 1] + 1.0
    x = np.arange(20, dtype=np.float32)
    y = np.zeros(20, np.float32)
    tsir.interpret(f.func, x, y)
    np.testing.assert_array_equal(y, np.append(x[1:], 0) + 1)


def test_tile_ops_in_a_thread_dependent_if_run_once_whole() -> None:
    with T.prim_func("f") as f:
        A = T.param("A", (64,), "float32")
        B = T.param("B", (64,), "float32")
        with T.Kernel(1, threads=128):
            tx = T.get_thread_binding()
            with T.If(tx < 32):
                T.copy(A, B)
            with T.If(tx > 1000):
                T.fill(B, 0.0)
    a = np.arange(64, dtype=np.float32)
    b = np.zeros(64, np.float32)
    tsir.interpret(f.func, a, b)
    np.testing.assert_array_equal(a, b)


def test_reducers_and_per_thread_statements() -> None:
    with T.prim_func("f") as f:
        X = T.param("X", (4, 16), "float32")
        out = T.param("out", (2,), "float32")
        with T.Kernel(1, threads=64):
            tx = T.get_thread_binding()
            S = T.alloc_shared((4, 16), "float32")
            total = T.alloc_reducer((1,), "float32", op="sum")
            T.copy(X, S)
            for i, j in T.Parallel(4, 16):
                total[0] = total[0] + S[i, j]
            T.finalize_reducer(total)
            with T.If(tx == 0):
                out[0] = total[0]
            with T.If(tx == 5):
                out[1] = T.cast(tx, "float32")
    x = RNG.standard_normal((4, 16)).astype(np.float32)
    o = np.zeros(2, np.float32)
    tsir.interpret(f.func, x, o)
    np.testing.assert_allclose(o, [x.sum(), 5.0], rtol=1e-5)


def test_grid_runs_only_the_given_blocks() -> None:
    with T.prim_func("f") as f:
        Y = T.param("Y", (4, 3), "int32")
        with T.Kernel(3, 4, threads=32) as (bx, by):
            Y[by, bx] = bx + 10 * by
    y = np.full((4, 3), -1, np.int32)
    tsir.interpret(f.func, y, grid=[(1, 2), (0, 3)])
    want = np.full((4, 3), -1, np.int32)
    want[2, 1], want[3, 0] = 21, 30
    np.testing.assert_array_equal(y, want)
    with pytest.raises(tsir.TSIRError, match=r"grid= block \(3, 0\) is not a block"):
        tsir.interpret(f.func, y, grid=[(3, 0)])
