"""Class `reduce-reads-unheld-registers`, clear=False form (2 programs in 7097, first seed
1001942, sm_80): a row fragment written by a `T.Parallel(bm)` loop is the destination of
`T.reduce_*(..., clear=False)`. The row-group lowering combined the old value in every thread,
also in those whose last row slot is past the tile (bm rows over more thread groups), so
LowerTileOp read registers never written: "read of register `mean3` element 0 (local), which the
reading thread never wrote ... mean3[r] = mean3[r] + mean3_acc[0]". The combine now runs only in
the groups holding the row. Below: the shrunk program (`scripts/fuzz.py --shrink 1001942`)."""

from __future__ import annotations

import numpy as np
import pytest

import tsir
from tsir import T
from tsir.interpret import check_stages


def shrunk_1001942(bm: int = 1, bn: int = 8, threads: int = 32) -> tsir.PrimFunc:
    with T.prim_func("fz_tile") as f:
        M = T.dynamic("M")
        N = bn
        X = T.param("X", (M, N), "float32")
        Y = T.param("Y", (M, N), "float32")
        R = T.param("R", (M,), "float32")
        with T.Kernel(T.ceildiv(M, bm), threads=threads) as bx:
            f1 = T.alloc_fragment((bm, bn), "float32")
            T.copy(X[bx * bm, 0], f1)
            sum2 = T.alloc_fragment((bm,), "float32")
            mean3 = T.alloc_fragment((bm,), "float32")
            var4 = T.alloc_fragment((bm,), "float32")
            xc6 = T.alloc_fragment((bm, bn), "float32")
            T.reduce_sum(f1, sum2, dim=1)
            for i in T.Parallel(bm):
                mean3[i] = sum2[i] / N
            for i, j in T.Parallel(bm, bn):
                xc6[i, j] = f1[i, j] - mean3[i]
            T.reduce_sum(xc6, var4, dim=1)
            T.reduce_sum(f1, mean3, dim=1, clear=False)
            T.copy(f1, Y[bx * bm, 0])
            T.copy(mean3, R[bx * bm])
    return f.func


def reference(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = X.astype(np.float64).sum(axis=1)
    return X.copy(), s / X.shape[1] + s


@pytest.mark.parametrize(("bm", "threads"), [(1, 32), (3, 128)])
def test_clear_false_combines_only_where_the_row_is_held(bm: int, threads: int) -> None:
    x = np.random.default_rng(1001942).integers(-8, 8, (7, 8)).astype(np.float32)
    args = [x, np.zeros_like(x), np.zeros(7, np.float32)]
    report = check_stages(shrunk_1001942(bm, 8, threads), args, target="sm_80")
    assert report.ok, str(report)
    want_y, want_r = reference(x)
    np.testing.assert_array_equal(report.reference[1], want_y)
    np.testing.assert_array_equal(report.reference[2], want_r)
