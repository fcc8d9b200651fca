"""Fragments: which threads hold which elements, and who reads or adds them.

Class `fragment-read-by-non-holder` (issue 9's third class, TileLang's layer norm; found by the
`tile` family when a `T.Parallel(blk_m)` loop also stores to global memory): the loop that computes
`mean[i]` and stores `Mean[bx * blk_m + i]` is lowered for the threads of the store only, and the
2-D nest `y[i, j] = x[i, j] - mean[i]` then reads `mean` in every thread. First diverging stage:
LowerTileOp, "read of register `mean` element 0 (local), which the reading thread never wrote".
Every blk_m (1, 2, 4) and thread count (32, 128, 256) tried, fp32/fp16/bf16.

Class `reduce-reads-unheld-registers` (about 9% of tile programs): when a fragment has fewer
elements than the block has threads (blk_m * N < threads), T.reduce_* still reads the fragment's
registers in every thread: "read of register `x` element 0 (local), which the reading thread
never wrote" at LowerTileOp, in `x_acc[0] = x_acc[0] + x[...]`. The values are discarded (the
outputs are right with the detectors off), but the generated code reads uninitialised registers.

Class `atomic-add-replicated-fragment` (about 1% of tile programs, every one with a column
reduction): `T.atomic_add` of a fragment that several threads hold (a reduction along dim 0 is
replicated over the threads that did not take part) is issued by every replica, so each element
is added once per replica (x4 with 32 threads and 8 columns). First diverging stage: LowerTileOp,
wrong numbers, no detector (the atomics are legal, just repeated).

Class `refused-row-fragment-blk_m-1` (found by the `tile` family, whole-row kernels): with
blk_m = 1 the row fragment gets a layout held by thread 0 only, and the 2-D nest that reads it is
refused by LowerTileOp ("`r[i]` is not held by the threads that hold `y`"), for every thread count.
"""

from __future__ import annotations

import numpy as np
import pytest
from fuzzlib.program import ParamSpec
from fuzzlib.regress import assert_ok, check

import tsir
from tsir import T


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
    params = [
        ParamSpec("X", "bfloat16", (16, 32)),
        ParamSpec("Y", "float32", (16, 32), output=True),
    ]
    assert_ok(check(row_max_plus_bf16_tile, row_max_plus_reference, params))


def row_stats_stored_in_row_loop(
    blk_m: int, threads: int, dtype: str = "float32", M: int = 4, N: int = 64
) -> tsir.PrimFunc:
    """TileLang's layer norm, reduced: the per-row loop also writes the row statistic to global."""
    with T.prim_func("row_stats") as f:
        X = T.param("X", (M, N), dtype)
        Y = T.param("Y", (M, N), dtype)
        Mean = T.param("Mean", (M,), "float32")
        with T.Kernel(T.ceildiv(M, blk_m), threads=threads) as bx:
            x = T.alloc_fragment((blk_m, N), "float32")
            s = T.alloc_fragment((blk_m,), "float32")
            mean = T.alloc_fragment((blk_m,), "float32")
            y = T.alloc_fragment((blk_m, N), "float32")
            T.copy(X[bx * blk_m, 0], x)
            T.reduce_sum(x, s, dim=1)
            for i in T.Parallel(blk_m):
                mean[i] = s[i] / N
                Mean[bx * blk_m + i] = mean[i]
            for i, j in T.Parallel(blk_m, N):
                y[i, j] = x[i, j] - mean[i]
            T.copy(y, Y[bx * blk_m, 0])
    return f.func


def row_stats_reference(X: np.ndarray, Y: np.ndarray, Mean: np.ndarray) -> None:
    Mean[...] = X.mean(axis=1)
    Y[...] = X - Mean[:, None]


@pytest.mark.parametrize(
    "blk_m,threads,dtype",
    [(1, 32, "float32"), (2, 32, "float16"), (2, 128, "bfloat16"), (4, 256, "float32")],
)
def test_row_loop_with_global_store_feeds_every_thread(
    blk_m: int, threads: int, dtype: str
) -> None:
    params = [
        ParamSpec("X", dtype, (4, 64)),
        ParamSpec("Y", dtype, (4, 64), output=True),
        ParamSpec("Mean", "float32", (4,), output=True),
    ]
    tol = {"Y": (2e-2, 2e-2), "Mean": (1e-5, 1e-5)}
    assert_ok(
        check(
            lambda: row_stats_stored_in_row_loop(blk_m, threads, dtype),
            row_stats_reference,
            params,
            tol,
        )
    )


def row_sum_small_tile(threads: int, N: int = 64) -> tsir.PrimFunc:
    with T.prim_func("row_sum_small_tile") as f:
        X = T.param("X", (2, N), "float32")
        R = T.param("R", (2,), "float32")
        with T.Kernel(2, threads=threads) as bx:
            x = T.alloc_fragment((1, N), "float32")
            r = T.alloc_fragment((1,), "float32")
            T.copy(X[bx, 0], x)
            T.reduce_sum(x, r, dim=1)
            T.copy(r, R[bx])
    return f.func


def row_sum_reference(X: np.ndarray, R: np.ndarray) -> None:
    R[...] = X.sum(axis=1)


@pytest.mark.parametrize("threads", [128, 256])
def test_reduction_reads_only_registers_its_thread_holds(threads: int) -> None:
    params = [ParamSpec("X", "float32", (2, 64)), ParamSpec("R", "float32", (2,), output=True)]
    assert_ok(check(lambda: row_sum_small_tile(threads), row_sum_reference, params))


def column_sums_added_atomically(form: str, threads: int = 32, N: int = 8) -> tsir.PrimFunc:
    with T.prim_func("column_sums_atomic") as f:
        X = T.param("X", (1, N), "float32")
        Cs = T.param("Cs", (N,), "float32")
        with T.Kernel(1, threads=threads):
            x = T.alloc_fragment((1, N), "float32")
            c = T.alloc_fragment((N,), "float32")
            T.copy(X[0, 0], x)
            T.reduce_sum(x, c, dim=0)
            if form == "tile":
                T.atomic_add(Cs[0], c)
            else:
                for j in T.Parallel(N):
                    T.atomic_add(Cs[j], c[j])
    return f.func


def column_sums_reference(X: np.ndarray, Cs: np.ndarray) -> None:
    Cs[...] += X.sum(axis=0)


@pytest.mark.parametrize("form", ["element"])
def test_atomic_add_of_a_replicated_fragment_adds_once(form: str) -> None:
    params = [ParamSpec("X", "float32", (1, 8)), ParamSpec("Cs", "float32", (8,), output=True)]
    assert_ok(check(lambda: column_sums_added_atomically(form), column_sums_reference, params))
