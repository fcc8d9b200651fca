"""Row softmax, layer norm and column sum on register tiles: reductions across threads.

Each block loads a tile of rows into a fragment (16-byte vector loads), reduces along rows with
`T.reduce_max` / `T.reduce_sum` (warp shuffles, then shared memory across warps), and writes back.
"""

from __future__ import annotations

import tsir
from tsir import T


def softmax(
    N: int, rows_per_block: int = 1, dtype: str = "float32", threads: int = 256
) -> tsir.PrimFunc:
    bm = rows_per_block
    with T.prim_func("softmax") as f:
        M = T.dynamic("M")
        X = T.param("X", (M, N), dtype)
        Y = T.param("Y", (M, N), dtype)
        with T.Kernel(T.ceildiv(M, bm), threads=threads) as bx:
            x = T.alloc_fragment((bm, N), "float32")
            mx = T.alloc_fragment((bm,), "float32")
            s = T.alloc_fragment((bm,), "float32")
            T.copy(X[bx * bm, 0], x)
            T.reduce_max(x, mx, dim=1)
            for i, j in T.Parallel(bm, N):
                x[i, j] = T.exp(x[i, j] - mx[i])
            T.reduce_sum(x, s, dim=1)
            for i, j in T.Parallel(bm, N):
                x[i, j] = x[i, j] / s[i]
            T.copy(x, Y[bx * bm, 0])
    return f.func


def layer_norm(
    N: int, rows_per_block: int = 1, dtype: str = "float32", threads: int = 256, eps: float = 1e-5
) -> tsir.PrimFunc:
    bm = rows_per_block
    with T.prim_func("layer_norm") as f:
        M = T.dynamic("M")
        X = T.param("X", (M, N), dtype)
        W = T.param("W", (N,), dtype)
        B = T.param("B", (N,), dtype)
        Y = T.param("Y", (M, N), dtype)
        with T.Kernel(T.ceildiv(M, bm), threads=threads) as bx:
            x = T.alloc_fragment((bm, N), "float32")
            sq = T.alloc_fragment((bm, N), "float32")
            mean = T.alloc_fragment((bm,), "float32")
            var = T.alloc_fragment((bm,), "float32")
            T.copy(X[bx * bm, 0], x)
            T.reduce_sum(x, mean, dim=1)
            for i, j in T.Parallel(bm, N):
                x[i, j] = x[i, j] - mean[i] / N
                sq[i, j] = x[i, j] * x[i, j]
            T.reduce_sum(sq, var, dim=1)
            for i, j in T.Parallel(bm, N):
                x[i, j] = x[i, j] * T.rsqrt(var[i] / N + eps) * T.cast(W[j], "float32") + T.cast(
                    B[j], "float32"
                )
            T.copy(x, Y[bx * bm, 0])
    return f.func


def column_sum(N: int, bm: int = 64, bn: int = 256, threads: int = 256) -> tsir.PrimFunc:
    """out[j] = sum_i X[i, j], one block per (column tile, row tile), accumulated with atomics."""
    with T.prim_func("column_sum") as f:
        M = T.dynamic("M")
        X = T.param("X", (M, N), "float32")
        out = T.param("out", (N,), "float32")
        with T.Kernel(T.ceildiv(N, bn), threads=threads) as bx:
            x = T.alloc_fragment((bm, bn), "float32")
            part = T.alloc_fragment((bn,), "float32")
            acc = T.alloc_fragment((bn,), "float32")
            T.clear(acc)
            for ko in T.serial(T.ceildiv(M, bm)):
                T.copy(X[ko * bm, bx * bn], x)
                T.reduce_sum(x, part, dim=0)
                for j in T.Parallel(bn):
                    acc[j] = acc[j] + part[j]
            T.copy(acc, out[bx * bn])
    return f.func


def column_sum_atomic(N: int, bm: int = 64, bn: int = 256, threads: int = 256) -> tsir.PrimFunc:
    """out[j] += sum over a block's rows of X[i, j]: row tiles in parallel blocks, added atomically."""
    with T.prim_func("column_sum_atomic") as f:
        M = T.dynamic("M")
        X = T.param("X", (M, N), "float32")
        out = T.param("out", (N,), "float32")
        with T.Kernel(T.ceildiv(N, bn), T.ceildiv(M, bm), threads=threads) as (bx, by):
            x = T.alloc_fragment((bm, bn), "float32")
            part = T.alloc_fragment((bn,), "float32")
            T.copy(X[by * bm, bx * bn], x)
            T.reduce_sum(x, part, dim=0)
            T.atomic_add(out[bx * bn], part)
    return f.func


def prefix_sum_rows(N: int, bm: int = 16, threads: int = 128) -> tsir.PrimFunc:
    """Y[i, :] = cumsum(X[i, :]) through a shared tile (T.cumsum)."""
    with T.prim_func("prefix_sum_rows") as f:
        M = T.dynamic("M")
        X = T.param("X", (M, N), "float32")
        Y = T.param("Y", (M, N), "float32")
        with T.Kernel(T.ceildiv(M, bm), threads=threads) as bx:
            S = T.alloc_shared((bm, N), "float32")
            T.copy(X[bx * bm, 0], S)
            T.cumsum(S, dim=1)
            T.copy(S, Y[bx * bm, 0])
    return f.func


def tile_sum_and_max(N: int = 4096, bm: int = 8, threads: int = 256) -> tsir.PrimFunc:
    """out[b] = (sum, max) of a tile of X, through reducers every thread accumulates into."""
    with T.prim_func("tile_sum_and_max") as f:
        M = T.dynamic("M")
        X = T.param("X", (M, N), "float32")
        NB = T.dynamic("NB")  # ceil(M / bm) blocks
        out = T.param("out", (NB, 2), "float32")
        with T.Kernel(T.ceildiv(M, bm), threads=threads) as bx:
            S = T.alloc_shared((bm, N), "float32")
            total = T.alloc_reducer((1,), "float32", op="sum")
            peak = T.alloc_reducer((1,), "float32", op="max")
            T.copy(X[bx * bm, 0], S)
            for i, j in T.Parallel(bm, N):
                total[0] = total[0] + S[i, j]
                peak[0] = T.max(peak[0], S[i, j])
            T.finalize_reducer(total)
            T.finalize_reducer(peak)
            with T.If(T.get_thread_binding() == 0):
                out[bx, 0] = total[0]
                out[bx, 1] = peak[0]
    return f.func
