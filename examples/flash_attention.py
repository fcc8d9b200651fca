"""Flash attention forward (non-causal): O = softmax(Q K^T / sqrt(d)) V, one pass over K and V.

Per block: a tile of queries stays in shared memory; for each K/V tile, S = Q K^T on tensor cores
(the accumulator's rows each live in one warp: policy="full_row"), an online softmax keeps the
running row max m and sum l in registers, P = exp2(S - m) goes to shared memory as fp16, and O is
rescaled and accumulated with P V. K and V tiles are double-buffered with cp.async.
"""

from __future__ import annotations

import math

import tsir
from tsir import T


def flash_attention(
    BH: int,
    S: int,
    D: int,
    bm: int = 64,
    bn: int = 64,
    dtype: str = "float16",
    threads: int = 128,
    num_stages: int = 2,
) -> tsir.PrimFunc:
    scale = 1.0 / math.sqrt(D) * math.log2(math.e)  # softmax via exp2
    with T.prim_func("flash_attention") as f:
        Q = T.param("Q", (BH, S, D), dtype)
        K = T.param("K", (BH, S, D), dtype)
        V = T.param("V", (BH, S, D), dtype)
        O = T.param("O", (BH, S, D), dtype)
        with T.Kernel(T.ceildiv(S, bm), BH, threads=threads) as (bx, bz):
            Q_s = T.alloc_shared((bm, D), dtype)
            K_s = T.alloc_shared((bn, D), dtype)
            V_s = T.alloc_shared((bn, D), dtype)
            P_s = T.alloc_shared((bm, bn), dtype)
            S_f = T.alloc_fragment((bm, bn), "float32")
            O_f = T.alloc_fragment((bm, D), "float32")
            m = T.alloc_fragment((bm,), "float32")
            m_prev = T.alloc_fragment((bm,), "float32")
            m_cur = T.alloc_fragment((bm,), "float32")
            alpha = T.alloc_fragment((bm,), "float32")
            row_sum = T.alloc_fragment((bm,), "float32")
            l = T.alloc_fragment((bm,), "float32")
            T.copy(Q[bz, bx * bm, 0], Q_s)
            T.clear(O_f)
            T.clear(l)
            T.fill(m, -T.infinity("float32"))
            for k in T.Pipelined(T.ceildiv(S, bn), num_stages=num_stages):
                T.copy(K[bz, k * bn, 0], K_s)
                T.copy(V[bz, k * bn, 0], V_s)
                T.gemm(Q_s, K_s, S_f, transpose_B=True, clear_accum=True, policy="full_row")
                for i, j in T.Parallel(bm, bn):  # keys past the end of the sequence do not count
                    S_f[i, j] = T.if_then_else(k * bn + j < S, S_f[i, j], -T.infinity("float32"))
                T.reduce_max(S_f, m_cur, dim=1)
                for i in T.Parallel(bm):
                    m_prev[i] = m[i]
                    m[i] = T.max(m_prev[i], m_cur[i])
                    alpha[i] = T.exp2((m_prev[i] - m[i]) * scale)
                for i, j in T.Parallel(bm, bn):
                    S_f[i, j] = T.exp2((S_f[i, j] - m[i]) * scale)
                T.reduce_sum(S_f, row_sum, dim=1)
                for i in T.Parallel(bm):
                    l[i] = l[i] * alpha[i] + row_sum[i]
                for i, j in T.Parallel(bm, D):
                    O_f[i, j] = O_f[i, j] * alpha[i]
                T.copy(S_f, P_s)
                T.gemm(P_s, V_s, O_f, policy="full_row")
            for i, j in T.Parallel(bm, D):
                O_f[i, j] = O_f[i, j] / l[i]
            T.copy(O_f, O[bz, bx * bm, 0])
    return f.func
