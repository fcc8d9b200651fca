"""T.reduce_* with clear=False into a row fragment that a `T.Parallel(bm)` loop wrote: the
combine with the old values runs exactly in the threads holding each row (every replica of it),
never in a thread whose register for that row slot was never written (fuzz class
`reduce-reads-unheld-registers`: bm = 3 rows over 4 thread groups left the last slot of three
groups unheld). Every stage agrees with the interpreter and numpy."""

from __future__ import annotations

import numpy as np
import pytest

import tsir
from tsir import T
from tsir.interpret import check_stages


def accumulate_rows(bm: int, threads: int, kind: str, start: str, bn: int = 16) -> tsir.PrimFunc:
    """R = combine(start, reduce(X, dim=1)) per row, `start` written by a T.Parallel(bm) loop:
    from a row sum of X ("reduced") or from global memory ("loaded")."""
    with T.prim_func("accumulate_rows") as f:
        X = T.param("X", (2 * bm, bn), "float32")
        Init = T.param("Init", (2 * bm,), "float32")
        R = T.param("R", (2 * bm,), "float32")
        with T.Kernel(2, threads=threads) as bx:
            x = T.alloc_fragment((bm, bn), "float32")
            m = T.alloc_fragment((bm,), "float32")
            T.copy(X[bx * bm, 0], x)
            if start == "reduced":
                s = T.alloc_fragment((bm,), "float32")
                T.reduce_sum(x, s, dim=1)
                for i in T.Parallel(bm):
                    m[i] = s[i] * 0.5
            else:
                for i in T.Parallel(bm):
                    m[i] = Init[bx * bm + i]
            T.reduce(x, m, 1, kind, False)
            T.copy(m, R[bx * bm])
    return f.func


@pytest.mark.parametrize("bm", [1, 3, 4])
@pytest.mark.parametrize("threads", [64, 128, 96])
@pytest.mark.parametrize(("kind", "start"), [("max", "reduced"), ("sum", "loaded")])
def test_clear_false_into_a_parallel_written_row_fragment(
    bm: int, threads: int, kind: str, start: str
) -> None:
    rng = np.random.default_rng(bm * 1000 + threads)
    x = rng.integers(-9, 9, (2 * bm, 16)).astype(np.float32)  # exact in every order
    init = rng.integers(-9, 9, (2 * bm,)).astype(np.float32)
    func = accumulate_rows(bm, threads, kind, start)
    report = check_stages(func, [x, init, np.zeros(2 * bm, np.float32)], target="sm_80")
    assert report.ok, str(report)
    old = x.sum(axis=1) * 0.5 if start == "reduced" else init
    want = np.maximum(old, x.max(axis=1)) if kind == "max" else old + x.sum(axis=1)
    np.testing.assert_array_equal(report.reference[2], want)
