"""Kernels in the forms TileLang users write them, which the first wave of tsir miscompiled.

Each one is a class of silent wrong answer from issue 9, kept as an example so that CI compiles it
and `make gpu-test` runs it against torch (and under compute-sanitizer):

- `layer_norm_rows`: per-row mean and rstd computed in a 1-D `T.Parallel(blk_m)` from reduction
  results and stored to global memory, then read by every thread in a 2-D nest (blk_m = 1, 2);
- `gemm_loop`: a gemm over shared tiles in a plain `T.serial` loop or `T.Pipelined` with
  num_stages 0 or 1 (no software pipeline, so every barrier comes from ThreadSync);
- `gemm_scaled_a`: a shared tile written by a `T.Parallel` (A scaled per row) and fed to a gemm;
- `histogram`: shared-memory atomics after a plain initialisation of the bins;
- `split_roles`: tile ops under `T.If(tx < half)` / `T.Else()`, each half of the block copying
  its own tile (the warp-role shape).
"""

from __future__ import annotations

import tsir
from tsir import T


def layer_norm_rows(
    N: int, D: int, blk_m: int = 1, threads: int = 256, dtype: str = "bfloat16", eps: float = 1e-5
) -> tsir.PrimFunc:
    """Y = (X - mean) * rstd * gamma + beta, with Mean and Rstd written out (TileLang's form)."""
    acc = "float32"
    with T.prim_func("layer_norm_rows") as f:
        X = T.param("X", (N, D), dtype)
        gamma = T.param("gamma", (D,), dtype)
        beta = T.param("beta", (D,), dtype)
        Y = T.param("Y", (N, D), dtype)
        Mean = T.param("Mean", (N,), acc)
        Rstd = T.param("Rstd", (N,), acc)
        with T.Kernel(T.ceildiv(N, blk_m), threads=threads) as bx:
            X_s = T.alloc_shared((blk_m, D), dtype)
            G_s = T.alloc_shared((D,), dtype)
            B_s = T.alloc_shared((D,), dtype)
            x = T.alloc_fragment((blk_m, D), acc)
            sq = T.alloc_fragment((blk_m, D), acc)
            s = T.alloc_fragment((blk_m,), acc)
            s2 = T.alloc_fragment((blk_m,), acc)
            mean = T.alloc_fragment((blk_m,), acc)
            rstd = T.alloc_fragment((blk_m,), acc)
            T.copy(X[bx * blk_m, 0], X_s)
            T.copy(gamma, G_s)
            T.copy(beta, B_s)
            for i, j in T.Parallel(blk_m, D):
                x[i, j] = T.cast(X_s[i, j], acc)
            for i, j in T.Parallel(blk_m, D):
                sq[i, j] = x[i, j] * x[i, j]
            T.reduce_sum(x, s, dim=1)
            T.reduce_sum(sq, s2, dim=1)
            for i in T.Parallel(blk_m):
                mean[i] = s[i] * (1.0 / D)
                rstd[i] = T.rsqrt(s2[i] * (1.0 / D) - mean[i] * mean[i] + eps)
                Mean[bx * blk_m + i] = mean[i]
                Rstd[bx * blk_m + i] = rstd[i]
            for i, j in T.Parallel(blk_m, D):
                norm = (x[i, j] - mean[i]) * rstd[i]
                X_s[i, j] = T.cast(norm * T.cast(G_s[j], acc) + T.cast(B_s[j], acc), dtype)
            T.copy(X_s, Y[bx * blk_m, 0])
    return f.func


def gemm_loop(
    M: int,
    N: int,
    K: int,
    bm: int = 64,
    bn: int = 64,
    bk: int = 32,
    num_stages: int | None = None,
    threads: int = 128,
    dtype: str = "float16",
) -> tsir.PrimFunc:
    """C = A @ B with the K loop written `T.serial` (num_stages=None) or `T.Pipelined(n, s)`."""
    with T.prim_func("gemm_loop") as f:
        A = T.param("A", (M, K), dtype)
        B = T.param("B", (K, N), dtype)
        C = T.param("C", (M, N), "float32")
        with T.Kernel(T.ceildiv(N, bn), T.ceildiv(M, bm), threads=threads) as (bx, by):
            A_s = T.alloc_shared((bm, bk), dtype)
            B_s = T.alloc_shared((bk, bn), dtype)
            C_f = T.alloc_fragment((bm, bn), "float32")
            T.clear(C_f)
            loop = (
                T.serial(T.ceildiv(K, bk))
                if num_stages is None
                else T.Pipelined(T.ceildiv(K, bk), num_stages=num_stages)
            )
            for ko in loop:
                T.copy(A[by * bm, ko * bk], A_s)
                T.copy(B[ko * bk, bx * bn], B_s)
                T.gemm(A_s, B_s, C_f)
            T.copy(C_f, C[by * bm, bx * bn])
    return f.func


def gemm_scaled_a(
    M: int, N: int, K: int, bm: int = 64, bn: int = 64, bk: int = 32
) -> tsir.PrimFunc:
    """C = (diag(s) A) @ B: each A tile is scaled by rows in shared memory by a T.Parallel."""
    with T.prim_func("gemm_scaled_a") as f:
        A = T.param("A", (M, K), "float16")
        S = T.param("S", (M,), "float32")
        B = T.param("B", (K, N), "float16")
        C = T.param("C", (M, N), "float32")
        with T.Kernel(T.ceildiv(N, bn), T.ceildiv(M, bm), threads=128) as (bx, by):
            A_s = T.alloc_shared((bm, bk), "float16")
            B_s = T.alloc_shared((bk, bn), "float16")
            C_f = T.alloc_fragment((bm, bn), "float32")
            T.clear(C_f)
            for ko in T.serial(T.ceildiv(K, bk)):
                for i, j in T.Parallel(bm, bk):
                    row = by * bm + i
                    col = ko * bk + j
                    A_s[i, j] = T.if_then_else(
                        T.all(row < M, col < K),
                        T.cast(T.cast(A[row, col], "float32") * S[row], "float16"),
                        T.cast(0.0, "float16"),
                    )
                T.copy(B[ko * bk, bx * bn], B_s)
                T.gemm(A_s, B_s, C_f)
            T.copy(C_f, C[by * bm, bx * bn])
    return f.func


def histogram(n: int, bins: int = 64, threads: int = 256, per_block: int = 4096) -> tsir.PrimFunc:
    """H[b] += number of X elements equal to b (mod bins), per block in shared memory."""
    with T.prim_func("histogram") as f:
        X = T.param("X", (n,), "int32")
        H = T.param("H", (bins,), "int32")
        with T.Kernel(T.ceildiv(n, per_block), threads=threads) as bx:
            tx = T.get_thread_binding(0)
            hist = T.alloc_shared((bins,), "int32")
            T.clear(hist)
            for it in T.serial(per_block // threads):
                idx = bx * per_block + it * threads + tx
                with T.If(idx < n):
                    T.atomic_add(hist[X[idx] % bins], 1)
            T.atomic_add(H, hist)
    return f.func


def split_roles(n: int, threads: int = 256) -> tsir.PrimFunc:
    """Threads [0, half) copy X into Y through shared memory, threads [half, threads) fill Z."""
    half = threads // 2
    with T.prim_func("split_roles") as f:
        X = T.param("X", (n,), "float32")
        Y = T.param("Y", (n,), "float32")
        Z = T.param("Z", (n,), "float32")
        with T.Kernel(1, threads=threads):
            tx = T.get_thread_binding(0)
            S = T.alloc_shared((n,), "float32")
            with T.If(tx < half):
                T.copy(X, S)
                for i in T.Parallel(n):
                    Y[i] = S[n - 1 - i] + 1.0
            with T.Else():
                T.fill(Z, 7.0)
    return f.func
