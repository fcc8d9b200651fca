"""Flash attention forward on the Hopper path (sm_90a), causal or not, from the tile program users
write: O = softmax(Q K^T / sqrt(d)) V with one pass over K and V.

Per block of `bm` queries (one 64-row piece per consumer warpgroup: threads = 2 * bm for bm = 128):
the query tile sits in shared memory; for each key tile, S = Q K^T runs on wgmma with both operands
in shared memory into a cleared accumulator; only the key tiles that cross the diagonal (causal) or
the sequence's end are masked afterwards (-inf where the key does not count), under a condition
uniform over the block; the online softmax keeps the running row max `m` and row sum `l` in
registers on wgmma's accumulator layout; P = exp2(S * scale - m * scale) is cast to fp16 in
registers and P V runs on wgmma's register-A form with V in shared memory. On sm_90a the K/V tiles
arrive by TMA on an mbarrier ring that a producer warpgroup fills
(tests/hopper/test_attention_tile_program.py checks each of these).

Causal blocks are launched heaviest first: the query blocks near the sequence's end have the most
key tiles, and a grid whose last blocks are the light ones leaves the GPU no long tail.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import tsir
from tsir import T

# Blocks that run at once on an H100 SXM (132 SMs, one attention block each): causal blocks are
# ordered heaviest first within groups of heads that span at least this many blocks (a GPU with
# other counts gets the same order, only less evenly finished).
WAVE = 132


def heads_per_group(BH: int, query_blocks: int) -> int:
    """The smallest divisor G of BH with G * query_blocks >= WAVE (BH when none): the causal grid
    walks the query blocks heaviest first over G heads at a time, so the blocks running together
    read the K/V of a few heads (L2) while the last blocks launched are the lightest."""
    return next((g for g in range(1, BH + 1) if BH % g == 0 and g * query_blocks >= WAVE), BH)


def grid(BH: int, query_blocks: int, causal: bool) -> tuple[int, int]:
    """The launch grid: (query tiles, heads), or causal (G * query tiles, heads / G)."""
    g = heads_per_group(BH, query_blocks) if causal else 1
    return query_blocks * g, BH // g


def block_of(b0: Any, b1: Any, BH: int, query_blocks: int, causal: bool) -> tuple[Any, Any]:
    """(query tile, batch*head) of grid block (b0, b1) (ints or the kernel's block indices): b0
    is launched fastest. Causal: within a group of G heads, the last query tile (the most key
    tiles) of each head first, then the one before it, and so on."""
    if not causal:
        return b0, b1
    g = heads_per_group(BH, query_blocks)
    return query_blocks - 1 - b0 // g, b1 * g + b0 % g


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
    fast_math: bool | str = False,
    pingpong: bool = False,
) -> tsir.PrimFunc:
    """Q, K, V, O of shape (BH, S, D); a block per (query tile, batch*head).

    `overlap=True` writes the loop one tile ahead (FlashAttention-3's intra-warpgroup overlap,
    which TileLang schedules with T.Pipelined's order/stage/group): iteration j issues S(j+1) =
    Q K(j+1)^T and then O += P(j) V(j), and the softmax of S(j+1) runs while P(j) V(j) is still on
    the tensor cores (its wgmma group stays in flight until O is rescaled). K(0)'s scores come
    before the loop, from a tile of their own; the last iteration's K(j+1) lies past the sequence
    (TMA fills it with zeros) or, causal, past the block's last query: its scores are masked whole.

    `pingpong=True` (bm = 128: two consumer warpgroups) makes the two warpgroups issue their
    gemms in turns (FlashAttention-3's ping-pong: one's softmax runs while the other's gemms hold
    the tensor cores); it pays with `overlap=True`, where each turn issues S(j+1) and P(j) V(j)
    and waits for neither.

    `fast_math` is the function's float math mode (`T.func_attr({"fast_math": ...})`: False, "ftz"
    or True). "ftz" makes each exp2 one MUFU.EX2 instead of four instructions and cannot change
    O: what it flushes to zero, exp2 results below 2^-126, is below what P keeps in fp16 (2^-24)
    and below the rounding of the row sum `l`, which is at least 1 (the row's maximum adds
    exp2(0))."""
    scale = 1.0 / math.sqrt(D) * math.log2(math.e)  # softmax via exp2
    acc = "float32"
    query_blocks = T.ceildiv(S, bm)
    with T.prim_func("flash_attention_hopper") as f:
        Q = T.param("Q", (BH, S, D), dtype)
        K = T.param("K", (BH, S, D), dtype)
        V = T.param("V", (BH, S, D), dtype)
        O = T.param("O", (BH, S, D), dtype)
        if fast_math:
            T.func_attr({"fast_math": fast_math})
        with T.Kernel(*grid(BH, query_blocks, causal), threads=threads) as (b0, b1):
            bx, bz = block_of(b0, b1, BH, query_blocks, causal)
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

            def partial(t: Any) -> Any:
                """Whether key tile t has keys that do not count: it reaches past the sequence's
                end, or (causal) past the block's first query. False: none has; True: it has."""
                conds = []
                if S % bn:
                    conds.append((t + 1) * bn > S)
                if causal:
                    conds.append(t * bn + bn - 1 > bx * bm)
                if any(c is True for c in conds):
                    return True
                conds = [c for c in conds if c is not False]
                return T.any(*conds) if conds else False

            def scores(t: Any, K_tile: Any) -> None:
                """S = Q K(t)^T."""
                T.gemm(Q_s, K_tile, S_f, transpose_B=True, clear_accum=True, policy="full_row")

            def mask(t: Any, past_end: Any = None) -> None:
                """-inf in S where a key past the sequence or the diagonal sits, on the key tiles
                that have one (a condition uniform over the block: the others run no mask);
                `past_end`: a condition under which tile t lies wholly past them (masked whole)."""
                cond = partial(t)
                if past_end is not None:
                    cond = (
                        past_end
                        if cond is False
                        else cond
                        if cond is True
                        else T.any(cond, past_end)
                    )
                if cond is False:
                    return
                with T.If(cond) if cond is not True else contextlib.nullcontext():
                    for i, j in T.Parallel(bm, bn):
                        keep = t * bn + j < S
                        if causal:
                            keep = T.all(keep, bx * bm + i >= t * bn + j)
                        S_f[i, j] = T.if_then_else(keep, S_f[i, j], -T.infinity(acc))

            def softmax(keep_prev: bool = True) -> None:
                """The running max and sum over S's rows; S becomes exp2(S * scale - m * scale)
                and `alpha` the factor that rescales what was accumulated before (`keep_prev`:
                m_prev = m here; False: the caller did it)."""
                if keep_prev:
                    T.copy(m, m_prev)
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
                for k in T.Pipelined(tiles, num_stages=num_stages, pingpong=pingpong):
                    T.copy(K[bz, k * bn, 0], K_s)
                    T.copy(V[bz, k * bn, 0], V_s)
                    scores(k, K_s)
                    mask(k)
                    softmax()
                    for i, j in T.Parallel(bm, D):
                        O_f[i, j] = O_f[i, j] * alpha[i]
                    T.copy(S_f, P_f)
                    T.gemm(P_f, V_s, O_f, policy="full_row")
            else:
                K0_s = T.alloc_shared((bn, D), dtype)
                T.copy(K[bz, 0, 0], K0_s)
                scores(0, K0_s)
                mask(0)
                softmax()
                T.copy(S_f, P_f)
                for k in T.Pipelined(tiles, num_stages=num_stages, pingpong=pingpong):
                    T.copy(K[bz, (k + 1) * bn, 0], K_s)
                    T.copy(V[bz, k * bn, 0], V_s)
                    # The last iteration's K(k+1) lies past the sequence's end (TMA zero-fills it)
                    # or, causal, past the block's last query: its scores are masked whole, and
                    # its softmax leaves m, l and O as they are. No branch around the gemms:
                    # a straight loop keeps S(k+1) and P(k) V(k) in flight together (measured:
                    # the same loop with both under T.If(k + 1 < tiles) ran 20% slower).
                    scores(k + 1, K_s)
                    T.copy(m, m_prev)  # between the gemms: S's and P V's wgmma groups are separate
                    T.gemm(P_f, V_s, O_f, policy="full_row")
                    mask(k + 1, past_end=k + 1 >= tiles)
                    softmax(keep_prev=False)
                    for i, j in T.Parallel(bm, D):
                        O_f[i, j] = O_f[i, j] * alpha[i]
                    T.copy(S_f, P_f)
            for i, j in T.Parallel(bm, D):
                O_f[i, j] = O_f[i, j] / l[i]
            T.copy(O_f, O[bz, bx * bm, 0])
    return f.func
