"""Class `vectorize-drops-lane-condition` (found once in the 10,000-program run, seed 1475, and
then reduced by scripts/fuzz.py --shrink).

A T.Parallel nest with a per-element condition on the loop index, `with T.If(j != 1):`, reading a
shared tile: VectorizeLoop splits the vectorised loop into an all-lanes-true fast path and a
per-lane slow path, and decides the fast path's predicate for `tx * 4 + i_v != 1` is `True`, so
element 1 is updated although its condition is false. `j == 3` and `j < 5` are handled right.
First diverging stage: VectorizeLoop ("argument 1 (float32): 1 of 128 elements differ ... first
at (0, 1): expected 1.0, got 2.0"), no detector. In the IR: `with T.If(True): ... vectorised
body ... with T.Else(): per-lane body`.
"""

from __future__ import annotations

import numpy as np
from fuzzlib.program import ParamSpec
from fuzzlib.regress import assert_ok, check

import tsir
from tsir import T


def skip_one_column(N: int = 128, threads: int = 32) -> tsir.PrimFunc:
    with T.prim_func("skip_one_column") as f:
        X = T.param("X", (1, N), "float32")
        Y = T.param("Y", (1, N), "float32")
        with T.Kernel(1, threads=threads):
            s = T.alloc_shared((1, N), "float32")
            x = T.alloc_fragment((1, N), "float32")
            T.copy(X[0, 0], s)
            T.copy(s, x)
            for i, j in T.Parallel(1, N):
                with T.If(j != 1):
                    x[i, j] = s[i, j] * 2.0
            T.copy(x, Y[0, 0])
    return f.func


def skip_one_reference(X: np.ndarray, Y: np.ndarray) -> None:
    Y[...] = np.where(np.arange(X.shape[1]) != 1, 2.0 * X, X)


def test_vectorized_loop_keeps_a_lane_condition() -> None:
    params = [ParamSpec("X", "float32", (1, 128)), ParamSpec("Y", "float32", (1, 128), output=True)]
    assert_ok(check(skip_one_column, skip_one_reference, params))
