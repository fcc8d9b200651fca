"""Class `tile-op-in-thread-if` (issue 9's fifth class; found by the `thread` family in about 60%
of its `thread_if` programs).

A tile op (T.copy, T.fill, a T.Parallel nest) inside a thread-dependent `with T.If(tx < k):` (the
shape of a warp-specialised producer) must be done in full by the threads that take the branch.
LowerTileOp still spreads it over all the block's threads, so the threads that skip the branch
leave their part undone (and `tx >= k` puts the op on threads that do not exist in its mapping).
First diverging stage: LowerTileOp (wrong numbers, no detector: the untouched shared elements are
the interpreter's uninitialised NaN).
"""

from __future__ import annotations

import numpy as np
import pytest
from fuzzlib.numerics import load_tile, store_tile
from fuzzlib.program import ParamSpec
from fuzzlib.regress import assert_ok, check

import tsir
from tsir import T

OPS = ["copy", "fill", "parallel"]


def op_in_thread_if(
    op: str, cond: str, M: int = 8, N: int = 64, bm: int = 4, threads: int = 256
) -> tsir.PrimFunc:
    with T.prim_func("op_in_thread_if") as f:
        X = T.param("X", (M, N), "float32")
        Y = T.param("Y", (M, N), "float32")
        with T.Kernel(T.ceildiv(M, bm), threads=threads) as bx:
            tx = T.get_thread_binding()
            s = T.alloc_shared((bm, N), "float32")
            y = T.alloc_fragment((bm, N), "float32")
            with T.If(tx < 128 if cond == "lt" else tx >= 128):
                if op == "copy":
                    T.copy(X[bx * bm, 0], s)
                elif op == "fill":
                    T.fill(s, 2.0)
                else:
                    for i, j in T.Parallel(bm, N):
                        s[i, j] = X[bx * bm + i, j] + 1.0
            for i, j in T.Parallel(bm, N):
                y[i, j] = s[i, j] * 2.0
            T.copy(y, Y[bx * bm, 0])
    return f.func


def reference(op: str):
    def ref(X: np.ndarray, Y: np.ndarray) -> None:
        s = {"copy": X, "fill": np.full_like(X, 2.0), "parallel": X + 1.0}[op]
        Y[...] = 2.0 * s

    return ref


@pytest.mark.parametrize("cond", ["lt", "ge"])
@pytest.mark.parametrize("op", OPS)
def test_tile_op_in_thread_dependent_if_is_done_in_full(op: str, cond: str) -> None:
    params = [ParamSpec("X", "float32", (8, 64)), ParamSpec("Y", "float32", (8, 64), output=True)]
    assert_ok(check(lambda: op_in_thread_if(op, cond), reference(op), params))


_ = (load_tile, store_tile)


@pytest.mark.xfail(strict=True, reason="refused-fragment-in-thread-range: fixed by the lead")
def test_fragment_copy_in_a_thread_range_is_accepted() -> None:
    """A fragment loaded and stored only by threads [0, 128) of a 256-thread block: legitimate
    (TileLang lays such fragments out over the range), refused by tsir with a clear error."""
    with T.prim_func("frag_range") as f:
        X = T.param("X", (16, 64), "float32")
        Y = T.param("Y", (16, 64), "float32")
        with T.Kernel(1, threads=256):
            tx = T.get_thread_binding(0)
            g = T.alloc_fragment((16, 64), "float32")
            with T.If(tx < 128):
                T.copy(X, g)
                T.copy(g, Y)
    x = np.arange(16 * 64, dtype=np.float32).reshape(16, 64)
    report = tsir.interpret.check_stages(f.func, [x, np.zeros_like(x)], target="sm_80")
    report.raise_for_failure()
    np.testing.assert_array_equal(report.reference[1], x)
