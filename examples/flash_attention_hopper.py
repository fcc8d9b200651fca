"""Flash attention forward on the Hopper path (sm_90a), causal or not, from the tile program users
write: O = softmax(Q K^T / sqrt(d)) V with one pass over K and V.

Per block of `bm` queries (one 64-row piece per consumer warpgroup: threads = 2 * bm for bm = 128):
the query tile sits in shared memory; for each key tile, S = Q K^T runs on wgmma with both operands
in shared memory, into an accumulator pre-filled with the mask (0 where the key counts, -inf past
the sequence's end or above the diagonal; cleared when nothing is masked); the online softmax
keeps the running row max `m` and row sum `l` in registers on wgmma's accumulator layout;
P = exp2(S * scale - m * scale) is cast to fp16 in registers and P V runs on wgmma's register-A
form with V in shared memory. On sm_90a the K/V tiles arrive by TMA on an mbarrier ring that a
producer warpgroup fills (tests/hopper/test_attention_tile_program.py checks each of these).
"""

from __future__ import annotations

import math

import tsir
from tsir import T


def flash_attention_hopper(
    BH: int,
    S: int,
    D: int,
    causal: bool = False,
    bm: int = 128,
    bn: int = 128,
    threads: int = 256,
    num_stages: int = 2,
    dtype: str = "float16",
    overlap: bool = False,
) -> tsir.PrimFunc:
    """Q, K, V, O of shape (BH, S, D); a block per (query tile, batch*head).

    `overlap=True` writes the loop one tile ahead (FlashAttention-3's intra-warpgroup overlap,
    which TileLang schedules with T.Pipelined's order/stage/group): iteration j issues S(j+1) =
    Q K(j+1)^T and then O += P(j) V(j), and the softmax of S(j+1) runs while P(j) V(j) is still on
    the tensor cores (its wgmma group stays in flight until O is rescaled). K(0)'s scores come
    before the loop, from a tile of their own; the last iteration's K(j+1) lies past the sequence
    (TMA fills it with zeros) or, causal, past the block's last query: the mask drops it."""
    scale = 1.0 / math.sqrt(D) * math.log2(math.e)  # softmax via exp2
    acc = "float32"
    with T.prim_func("flash_attention_hopper") as f:
        Q = T.param("Q", (BH, S, D), dtype)
        K = T.param("K", (BH, S, D), dtype)
        V = T.param("V", (BH, S, D), dtype)
        O = T.param("O", (BH, S, D), dtype)
        with T.Kernel(T.ceildiv(S, bm), BH, threads=threads) as (bx, bz):
            Q_s = T.alloc_shared((bm, D), dtype)
            K_s = T.alloc_shared((bn, D), dtype)
            V_s = T.alloc_shared((bn, D), dtype)
            S_f = T.alloc_fragment((bm, bn), acc)
            P_f = T.alloc_fragment((bm, bn), dtype)
            O_f = T.alloc_fragment((bm, D), acc)
            m = T.alloc_fragment((bm,), acc)
            m_prev = T.alloc_fragment((bm,), acc)
            alpha = T.alloc_fragment((bm,), acc)
            row_sum = T.alloc_fragment((bm,), acc)
            l = T.alloc_fragment((bm,), acc)

            def scores(t: object, K_tile: object, masked: bool) -> None:
                """S = Q K(t)^T, into an accumulator pre-filled with key tile t's mask."""
                if masked:
                    for i, j in T.Parallel(bm, bn):
                        keep = t * bn + j < S
                        if causal:
                            keep = T.all(keep, bx * bm + i >= t * bn + j)
                        S_f[i, j] = T.if_then_else(keep, 0.0, -T.infinity(acc))
                    T.gemm(Q_s, K_tile, S_f, transpose_B=True, policy="full_row")
                else:
                    T.gemm(Q_s, K_tile, S_f, transpose_B=True, clear_accum=True, policy="full_row")

            def softmax() -> None:
                """The running max and sum over S's rows; S becomes exp2(S * scale - m * scale)
                and `alpha` the factor that rescales what was accumulated before."""
                T.reduce_max(S_f, m, dim=1, clear=False)
                for i in T.Parallel(bm):
                    alpha[i] = T.exp2(m_prev[i] * scale - m[i] * scale)
                for i, j in T.Parallel(bm, bn):
                    S_f[i, j] = T.exp2(S_f[i, j] * scale - m[i] * scale)
                T.reduce_sum(S_f, row_sum, dim=1)
                for i in T.Parallel(bm):
                    l[i] = l[i] * alpha[i] + row_sum[i]

            T.copy(Q[bz, bx * bm, 0], Q_s)
            T.clear(O_f)
            T.clear(l)
            T.fill(m, -T.infinity(acc))
            tiles = T.ceildiv(S, bn)
            if causal:  # key tiles past the block's last query are all masked
                tiles = T.min(tiles, T.ceildiv((bx + 1) * bm, bn))
            if not overlap:
                for k in T.Pipelined(tiles, num_stages=num_stages):
                    T.copy(K[bz, k * bn, 0], K_s)
                    T.copy(V[bz, k * bn, 0], V_s)
                    scores(k, K_s, bool(causal or S % bn))
                    T.copy(m, m_prev)
                    softmax()
                    for i, j in T.Parallel(bm, D):
                        O_f[i, j] = O_f[i, j] * alpha[i]
                    T.copy(S_f, P_f)
                    T.gemm(P_f, V_s, O_f, policy="full_row")
            else:
                K0_s = T.alloc_shared((bn, D), dtype)
                T.copy(K[bz, 0, 0], K0_s)
                scores(0, K0_s, bool(causal or S % bn))
                T.copy(m, m_prev)
                softmax()
                T.copy(S_f, P_f)
                for k in T.Pipelined(tiles, num_stages=num_stages):
                    T.copy(K[bz, (k + 1) * bn, 0], K_s)
                    T.copy(V[bz, k * bn, 0], V_s)
                    scores(k + 1, K_s, True)  # the last one lies past the sequence
                    T.copy(m, m_prev)  # (also: S's and P V's wgmma groups are separate)
                    T.gemm(P_f, V_s, O_f, policy="full_row")
                    softmax()
                    for i, j in T.Parallel(bm, D):
                        O_f[i, j] = O_f[i, j] * alpha[i]
                    T.copy(S_f, P_f)
            for i, j in T.Parallel(bm, D):
                O_f[i, j] = O_f[i, j] / l[i]
            T.copy(O_f, O[bz, bx * bm, 0])
    return f.func
