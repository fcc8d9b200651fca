"""Tile programs for the TMA-store tests (tests/hopper/test_tma_store*.py), in the forms whose
waits ThreadSync places: a pipelined copy (each stage filled by a TMA load and read by a TMA store)
and one tensor stored twice."""

from __future__ import annotations

import tsir
from tsir import T


def pipelined_copy(
    M: int, N: int, bm: int, stages: int, warp_specialize: bool, blocks: int = 1
) -> tsir.PrimFunc:
    """Y = X, row block by row block through a staged tile; `blocks` blocks split the columns."""
    ws = {} if warp_specialize else {"warp_specialize": False}
    w = N // blocks
    with T.prim_func("pcopy") as f:
        X = T.param("X", (M, N), "float32")
        Y = T.param("Y", (M, N), "float32")
        with T.Kernel(blocks, threads=128) as bx:
            t = T.alloc_shared((bm, w), "float32")
            for k in T.Pipelined(M // bm, num_stages=stages, **ws):
                T.copy(X[k * bm, bx * w], t)
                T.copy(t, Y[k * bm, bx * w])
    return f.func


def stored_twice(M: int, N: int) -> tsir.PrimFunc:
    """Y = X, then Y = 2 X: two tiles stored to the same rows of Y one after the other."""
    with T.prim_func("twice") as f:
        X = T.param("X", (M, N), "float32")
        Y = T.param("Y", (M, N), "float32")
        with T.Kernel(1, threads=64):
            a = T.alloc_shared((M, N), "float32")
            b = T.alloc_shared((M, N), "float32")
            T.copy(X[0, 0], a)
            for i, j in T.Parallel(M, N):
                b[i, j] = a[i, j] * 2.0
            T.copy(a, Y[0, 0])
            T.copy(b, Y[0, 0])
    return f.func
