"""1-D row fragments written by a `T.Parallel(blk_m)` loop and read back in a 2-D nest (the layer
norm pattern of TileLang: `mean[i] = s[i] / n`, then `y[i, j] = (x[i, j] - mean[i]) * rstd[i]`).

Class `refused-row-fragment-blk_m-1` (found by the `tile` family, whole-row kernels): with
blk_m = 1 the row fragment gets a layout held by thread 0 only, and the 2-D nest that reads it is
refused by LowerTileOp ("`r[i]` is not held by the threads that hold `y`"), for every thread count.
"""

from __future__ import annotations

import numpy as np
import pytest

import tsir
from tsir import T

from fuzzlib.program import ParamSpec
from fuzzlib.regress import assert_ok, check


def row_vector_broadcast(blk_m: int, N: int = 32, threads: int = 128) -> tsir.PrimFunc:
    with T.prim_func("row_vector_broadcast") as f:
        Y = T.param("Y", (2 * blk_m, N), "float32")
        with T.Kernel(2, threads=threads) as bx:
            r = T.alloc_fragment((blk_m,), "float32")
            y = T.alloc_fragment((blk_m, N), "float32")
            for i in T.Parallel(blk_m):
                r[i] = T.cast(bx * blk_m + i, "float32")
            for i, j in T.Parallel(blk_m, N):
                y[i, j] = r[i] * 2.0
            T.copy(y, Y[bx * blk_m, 0])
    return f.func


def row_vector_reference(Y: np.ndarray) -> None:
    Y[...] = 2.0 * np.arange(Y.shape[0])[:, None]


@pytest.mark.xfail(strict=True, reason="refused-row-fragment-blk_m-1: fixed by the lead")
@pytest.mark.parametrize("threads", [32, 128, 256])
def test_row_fragment_of_one_row_is_accepted(threads: int) -> None:
    params = [ParamSpec("Y", "float32", (2, 32), output=True)]
    assert_ok(check(lambda: row_vector_broadcast(1, 32, threads), row_vector_reference, params))


# Class `refused-fragment-layout-mismatch` (found by the `loop` family, about 1% of its programs):
# a row fragment `r` from a reduction is read in a 2-D nest over fragments whose free layout was
# chosen from a 16-bit copy (8 elements per thread); with 32 threads the two layouts disagree and
# LowerTileOp refuses ("`r[i]` is not held by the threads that hold `y`") instead of choosing the
# nest's layout from `r` or moving the data. float32 operands, or 128 threads, are accepted.


def row_max_plus_bf16_tile(threads: int = 32, bm: int = 8, bk: int = 32) -> tsir.PrimFunc:
    with T.prim_func("row_max_plus_tile") as f:
        X = T.param("X", (2 * bm, bk), "bfloat16")
        Y = T.param("Y", (2 * bm, bk), "float32")
        with T.Kernel(2, threads=threads) as bx:
            a = T.alloc_fragment((bm, bk), "float32")
            r = T.alloc_fragment((bm,), "float32")
            x = T.alloc_fragment((bm, bk), "bfloat16")
            y = T.alloc_fragment((bm, bk), "float32")
            T.copy(X[bx * bm, 0], a)
            T.reduce_max(a, r, dim=1)
            T.copy(X[bx * bm, 0], x)
            for i, j in T.Parallel(bm, bk):
                y[i, j] = T.cast(x[i, j], "float32") + r[i]
            T.copy(y, Y[bx * bm, 0])
    return f.func


def row_max_plus_reference(X: np.ndarray, Y: np.ndarray) -> None:
    Y[...] = X + X.max(axis=1, keepdims=True)


@pytest.mark.xfail(strict=True, reason="refused-fragment-layout-mismatch: fixed by the lead")
def test_row_fragment_with_16bit_tile_is_accepted() -> None:
    params = [ParamSpec("X", "bfloat16", (16, 32)), ParamSpec("Y", "float32", (16, 32), output=True)]
    assert_ok(check(row_max_plus_bf16_tile, row_max_plus_reference, params))
