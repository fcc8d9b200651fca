"""Tile programs for the ping-pong tests (tests/hopper/test_ping_pong*.py): flash attention forward
and a GEMM whose loop is `T.Pipelined(..., pingpong=...)`, with bm = 128 over two consumer
warpgroups (threads = 256, plus the producer WarpSpecialize adds)."""

from __future__ import annotations

import math

import numpy as np

import tsir
from tsir import T


def attention(
    BH: int,
    S: int,
    D: int,
    *,
    causal: bool = False,
    bn: int = 64,
    overlap: bool = True,
    pingpong: bool = True,
    num_stages: int = 2,
) -> tsir.PrimFunc:
    """O = softmax(Q K^T / sqrt(D)) V per (query tile of 128, batch*head). `overlap`: the loop
    issues S(j+1) = Q K(j+1)^T and then O += P(j) V(j) back to back and runs the softmax of
    S(j+1) while P(j) V(j) is in flight (the order ping-pong pays off with); else S(j), softmax,
    P(j) V(j) in turn."""
    bm = 128
    scale = 1.0 / math.sqrt(D) * math.log2(math.e)
    acc, dtype = "float32", "float16"
    with T.prim_func("attention_pingpong") as f:
        Q = T.param("Q", (BH, S, D), dtype)
        K = T.param("K", (BH, S, D), dtype)
        V = T.param("V", (BH, S, D), dtype)
        O = T.param("O", (BH, S, D), dtype)
        with T.Kernel(T.ceildiv(S, bm), BH, threads=256) as (bx, bz):
            Q_s = T.alloc_shared((bm, D), dtype)
            K_s = T.alloc_shared((bn, D), dtype)
            V_s = T.alloc_shared((bn, D), dtype)
            S_f = T.alloc_fragment((bm, bn), acc)
            P_f = T.alloc_fragment((bm, bn), dtype)
            O_f = T.alloc_fragment((bm, D), acc)
            m = T.alloc_fragment((bm,), acc)
            m_prev = T.alloc_fragment((bm,), acc)
            alpha = T.alloc_fragment((bm,), acc)
            tile_sum = T.alloc_fragment((bm,), acc)
            l = T.alloc_fragment((bm,), acc)

            def scores(t: object, keys: object) -> None:
                for i, j in T.Parallel(bm, bn):
                    keep = t * bn + j < S  # type: ignore[operator]
                    if causal:
                        keep = T.all(keep, bx * bm + i >= t * bn + j)  # type: ignore[operator]
                    S_f[i, j] = T.if_then_else(keep, 0.0, -T.infinity(acc))
                T.gemm(Q_s, keys, S_f, transpose_B=True, policy="full_row")

            def softmax() -> None:
                T.reduce_max(S_f, m, dim=1, clear=False)
                for i in T.Parallel(bm):
                    alpha[i] = T.exp2(m_prev[i] * scale - m[i] * scale)
                for i, j in T.Parallel(bm, bn):
                    S_f[i, j] = T.exp2(S_f[i, j] * scale - m[i] * scale)
                T.reduce_sum(S_f, tile_sum, dim=1)
                for i in T.Parallel(bm):
                    l[i] = l[i] * alpha[i] + tile_sum[i]

            def rescale() -> None:
                for i, j in T.Parallel(bm, D):
                    O_f[i, j] = O_f[i, j] * alpha[i]

            T.copy(Q[bz, bx * bm, 0], Q_s)
            T.clear(O_f)
            T.clear(l)
            T.fill(m, -T.infinity(acc))
            tiles = T.ceildiv(S, bn)
            if causal:
                tiles = T.min(tiles, T.ceildiv((bx + 1) * bm, bn))
            if overlap:
                K0_s = T.alloc_shared((bn, D), dtype)
                T.copy(K[bz, 0, 0], K0_s)
                scores(0, K0_s)
                T.copy(m, m_prev)
                softmax()
                T.copy(S_f, P_f)
                for k in T.Pipelined(tiles, num_stages=num_stages, pingpong=pingpong):
                    T.copy(K[bz, (k + 1) * bn, 0], K_s)
                    T.copy(V[bz, k * bn, 0], V_s)
                    scores(k + 1, K_s)  # past the keys for the last k: all masked
                    T.copy(m, m_prev)  # (between the gemms: two wgmma groups, not one)
                    T.gemm(P_f, V_s, O_f, policy="full_row")
                    softmax()
                    rescale()
                    T.copy(S_f, P_f)
            else:
                for k in T.Pipelined(tiles, num_stages=num_stages, pingpong=pingpong):
                    T.copy(K[bz, k * bn, 0], K_s)
                    T.copy(V[bz, k * bn, 0], V_s)
                    scores(k, K_s)
                    T.copy(m, m_prev)
                    softmax()
                    rescale()
                    T.copy(S_f, P_f)
                    T.gemm(P_f, V_s, O_f, policy="full_row")
            for i, j in T.Parallel(bm, D):
                O_f[i, j] = O_f[i, j] / l[i]
            T.copy(O_f, O[bz, bx * bm, 0])
    return f.func


def attention_reference(q: np.ndarray, k: np.ndarray, v: np.ndarray, causal: bool) -> np.ndarray:
    s = np.einsum("bqd,bkd->bqk", q.astype(np.float64), k.astype(np.float64)) / np.sqrt(q.shape[-1])
    if causal:
        n = q.shape[1]
        s = np.where(np.tril(np.ones((n, n), bool)), s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return np.einsum("bqk,bkd->bqd", p, v.astype(np.float64))


def gemm(
    M: int,
    N: int,
    K: int,
    *,
    bn: int = 128,
    bk: int = 64,
    num_stages: int = 3,
    pingpong: bool = True,
    persistent: bool = False,
    policy: str | None = None,
    threads: int = 256,
) -> tsir.PrimFunc:
    """C = A @ B in fp16 with fp32 accumulation, a 128 x bn tile per block: each consumer
    warpgroup owns 64 rows, and with ping-pong they take turns issuing each k-block's wgmma.
    `policy`: T.gemm's (None: its default); `threads` = 128: one consumer warpgroup."""
    bm = 128
    with T.prim_func("gemm_pingpong") as f:
        A = T.param("A", (M, K), "float16")
        B = T.param("B", (K, N), "float16")
        C = T.param("C", (M, N), "float16")
        with T.Kernel(
            T.ceildiv(N, bn), T.ceildiv(M, bm), threads=threads, persistent=persistent
        ) as (
            bx,
            by,
        ):
            A_s = T.alloc_shared((bm, bk), "float16")
            B_s = T.alloc_shared((bk, bn), "float16")
            C_f = T.alloc_fragment((bm, bn), "float32")
            T.clear(C_f)
            for ko in T.Pipelined(T.ceildiv(K, bk), num_stages=num_stages, pingpong=pingpong):
                T.copy(A[by * bm, ko * bk], A_s)
                T.copy(B[ko * bk, bx * bn], B_s)
                T.gemm(A_s, B_s, C_f, **({} if policy is None else {"policy": policy}))
            T.copy(C_f, C[by * bm, bx * bn])
    return f.func
