"""Legitimate TileLang programs that tsir refuses (found by the `tile` family).

Class `refused-tilelang-slice` (about 4% of tile programs): TileLang's own spelling of a block's
rows, `A[bx * blk_m:(bx + 1) * blk_m, :]` (its rms_norm example), is refused by T.copy with a false
"shape mismatch": the slice extent `(bx + 1) * blk_m - bx * blk_m` is never simplified to blk_m.

Class `refused-parallel-broadcast-fragment` (about 0.3%): a T.Parallel(bm, bn) nest whose only
fragment operand is a 1-D row fragment `r[i]` (and that writes a shared tile) is refused by
LowerTileOp: "reads fragments but indexes none of them with exactly its loop variables".

Class `refused-fragment-odd-rows` (about 3% of tile programs once bm in {3, 6, 12} is drawn): a
fragment whose row count is not a power of two and that spreads over more than one row per
thread, e.g. (3, 16) with 32 threads or (6, 32) with 128, is refused when it is lowered, with a
message meant for the compiler's own code: "the fragment does not fill its physical box (2, 32);
use inverse_with_guard() and test the guard `local * 2 + thread // 16 < 3`" (UnsupportedError).
"""

from __future__ import annotations

import numpy as np
import pytest
from fuzzlib.numerics import load_tile, store_tile
from fuzzlib.program import ParamSpec
from fuzzlib.regress import assert_ok, check

import tsir
from tsir import T


def rms_norm_tilelang_slices(M: int = 10, N: int = 64, blk_m: int = 4) -> tsir.PrimFunc:
    with T.prim_func("rms_norm") as f:
        A = T.param("A", (M, N), "float32")
        B = T.param("B", (M, N), "float32")
        with T.Kernel(T.ceildiv(M, blk_m), threads=128) as bx:
            A_shared = T.alloc_shared((blk_m, N), "float32")
            A_local = T.alloc_fragment((blk_m, N), "float32")
            A_pow = T.alloc_fragment((blk_m, N), "float32")
            A_powsum = T.alloc_fragment((blk_m,), "float32")
            T.copy(A[bx * blk_m : (bx + 1) * blk_m, :], A_shared)  # refused today
            T.copy(A_shared, A_local)
            for i, j in T.Parallel(blk_m, N):
                A_pow[i, j] = A_local[i, j] * A_local[i, j]
            T.reduce_sum(A_pow, A_powsum, dim=1)
            for i in T.Parallel(blk_m):
                A_powsum[i] = T.rsqrt(A_powsum[i] / N) + 1e-12
            for i, j in T.Parallel(blk_m, N):
                A_local[i, j] = A_local[i, j] * A_powsum[i]
            T.copy(A_local, B[bx * blk_m : (bx + 1) * blk_m, :])
    return f.func


def rms_norm_reference(A: np.ndarray, B: np.ndarray) -> None:
    B[...] = A * (1.0 / np.sqrt((A * A).mean(axis=1, keepdims=True)) + 1e-12)


def row_max_broadcast_to_shared(M: int = 16, bm: int = 8, bn: int = 8) -> tsir.PrimFunc:
    with T.prim_func("bcast_shared") as f:
        X = T.param("X", (M, bn), "float32")
        Y = T.param("Y", (M, bn), "float32")
        with T.Kernel(T.ceildiv(M, bm), threads=128) as bx:
            x = T.alloc_fragment((bm, bn), "float32")
            r = T.alloc_fragment((bm,), "float32")
            s = T.alloc_shared((bm, bn), "float32")
            T.copy(X[bx * bm, 0], x)
            T.reduce_max(x, r, dim=1)
            for i, j in T.Parallel(bm, bn):  # refused today: only `r[i]` is a fragment here
                s[i, j] = r[i]
            T.copy(s, Y[bx * bm, 0])
    return f.func


def row_max_reference(X: np.ndarray, Y: np.ndarray) -> None:
    Y[...] = np.broadcast_to(X.max(axis=1, keepdims=True), X.shape)


def test_tilelang_row_slices_are_accepted() -> None:
    params = [ParamSpec("A", "float32", (10, 64)), ParamSpec("B", "float32", (10, 64), output=True)]
    assert_ok(check(rms_norm_tilelang_slices, rms_norm_reference, params, {"B": (1e-4, 1e-4)}))


@pytest.mark.xfail(strict=True, reason="refused-parallel-broadcast-fragment: fixed by the lead")
def test_row_fragment_broadcast_into_shared_is_accepted() -> None:
    params = [ParamSpec("X", "float32", (16, 8)), ParamSpec("Y", "float32", (16, 8), output=True)]
    assert_ok(check(row_max_broadcast_to_shared, row_max_reference, params))


def odd_rows_copy(bm: int, bn: int, threads: int) -> tsir.PrimFunc:
    with T.prim_func("odd_rows") as f:
        X = T.param("X", (bm, bn), "float32")
        Y = T.param("Y", (bm, bn), "float32")
        with T.Kernel(1, threads=threads):
            x = T.alloc_fragment((bm, bn), "float32")
            T.copy(X[0, 0], x)
            for i, j in T.Parallel(bm, bn):
                x[i, j] = x[i, j] * 2.0
            T.copy(x, Y[0, 0])
    return f.func


def twice_reference(X: np.ndarray, Y: np.ndarray) -> None:
    Y[...] = 2.0 * X


@pytest.mark.parametrize("bm,bn,threads", [(3, 16, 32), (6, 32, 128), (12, 64, 128)])
def test_fragment_with_odd_row_count_is_accepted(bm: int, bn: int, threads: int) -> None:
    params = [ParamSpec("X", "float32", (bm, bn)), ParamSpec("Y", "float32", (bm, bn), output=True)]
    assert_ok(check(lambda: odd_rows_copy(bm, bn, threads), twice_reference, params))


_ = (load_tile, store_tile)
