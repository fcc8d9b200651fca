"""Classes found on the sm_90a path by the 3000-program run from seed 7000000, fixed since.

`detector WgmmaHazardError @InjectWgmmaSync` (6 programs, first seed 7000693): a gemm on two
warpgroups whose A tile is staged, rewritten in shared memory and fed to wgmma in each of several
k-steps. InjectWgmmaSync's `wgmma_wait` at the top of the k-loop sits between tile ops; before
ThreadSync the interpreter made the warpgroups (run as strands) meet only at a tile op's end, so
warpgroup 0 passed its own wait and wrote `A_s` while warpgroup 1's wgmma was still pending. The
generated code was right (ThreadSync's barrier follows both waits); the interpreter was wrong: a
statement completes in every thread before the next starts, so strands now also meet at a tile
op's start.

`detector AsyncCopyHazardError @WarpSpecialize` (seed 7000369) and `shared-waw-no-barrier`
(seed 7001068): a staging tile used by a serial loop and then by a pipelined loop with TMA copies.
WarpSpecialize's producer warpgroup starts filling the ring at once, while the consumers still
run the serial loop on the same tile: a real race (a TMA load, or its landing, under the
consumers' generic accesses). WarpSpecialize now keeps such a kernel unsplit (TSIR_EXPLAIN says
why): the ring then runs in the original threads, after the serial loop.
"""

from __future__ import annotations

import numpy as np
import pytest

import tsir
from tsir import T


def rewritten_a_gemm(M: int = 100, N: int = 21, K: int = 22) -> tsir.PrimFunc:
    bm, bn, bk = 64, 64, 16
    with T.prim_func("rewritten_a") as f:
        A = T.param("A", (M, K), "float16")
        B = T.param("B", (N, K), "float16")
        C = T.param("C", (M, N), "float16")
        with T.Kernel(T.ceildiv(N, bn), T.ceildiv(M, bm), threads=256) as (bx, by):
            A_s = T.alloc_shared((bm, bk), "float16")
            B_s = T.alloc_shared((bn, bk), "float16")
            C_f = T.alloc_fragment((bm, bn), "float32")
            for ko in T.Pipelined(T.ceildiv(K, bk), num_stages=1):
                T.copy(A[by * bm, ko * bk], A_s)
                for i, kk in T.Parallel(bm, bk):
                    A_s[i, kk] = A_s[i, kk] - 1
                T.copy(B[bx * bn, ko * bk], B_s)
                T.gemm(A_s, B_s, C_f, transpose_B=True, clear_accum=True)
            T.copy(C_f, C[by * bm, bx * bn])
    return f.func


def test_rewritten_wgmma_operand_on_two_warpgroups() -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(-3, 4, (100, 22)).astype(np.float16)
    b = rng.integers(-3, 4, (21, 22)).astype(np.float16)
    report = tsir.interpret.check_stages(
        rewritten_a_gemm(), [a, b, np.zeros((100, 21), np.float16)], target="sm_90a"
    )
    assert report.ok, report.first_failure
    # clear_accum: the last k-step (columns 16..21, zero-padded to 32 by the ragged copy) only.
    last = (a[:, 16:].astype(np.float32) - 1) @ b[:, 16:].astype(np.float32).T
    np.testing.assert_array_equal(report.reference[2].astype(np.float32), last)


def reused_staging_tile(
    dtype: str, threads: int, num_stages: int, blk_m: int, bk: int, N: int
) -> tsir.PrimFunc:
    """Split-k row sums over `X` in a serial loop, then a pipelined loop that stages the same
    chunks in the same tile and adds the sums: Y = X + rowsum(X)."""
    nk = N // bk
    with T.prim_func("reused_stage") as f:
        M = T.dynamic("M")
        X = T.param("X", (M, N), dtype)
        Y = T.param("Y", (M, N), "float32")
        with T.Kernel(T.ceildiv(M, blk_m), threads=threads) as bx:
            x_s = T.alloc_shared((blk_m, bk), dtype)
            acc = T.alloc_fragment((blk_m, bk), "float32")
            r = T.alloc_fragment((blk_m,), "float32")
            y = T.alloc_fragment((blk_m, bk), "float32")
            T.clear(acc)
            for ko in T.serial(nk):
                T.copy(X[bx * blk_m, ko * bk], x_s)
                for i, j in T.Parallel(blk_m, bk):
                    acc[i, j] = acc[i, j] + T.cast(x_s[i, j], "float32")
            T.reduce_sum(acc, r, dim=1)
            for ko in T.Pipelined(nk, num_stages=num_stages):
                T.copy(X[bx * blk_m, ko * bk], x_s)
                for i, j in T.Parallel(blk_m, bk):
                    y[i, j] = T.cast(x_s[i, j], "float32") + r[i]
                T.copy(y, Y[bx * blk_m, ko * bk])
    return f.func


@pytest.mark.parametrize(
    "dtype, threads, num_stages, blk_m, bk, N",
    [("float32", 256, 2, 4, 32, 96), ("bfloat16", 128, 3, 8, 16, 16)],
    ids=["seed7000369", "seed7001068"],
)
def test_staging_tile_reused_before_a_pipelined_loop(
    dtype: str, threads: int, num_stages: int, blk_m: int, bk: int, N: int
) -> None:
    rng = np.random.default_rng(1)
    M = 2 * blk_m - 1
    x = rng.integers(-4, 5, (M, N)).astype(np.float32)
    if dtype == "bfloat16":
        import ml_dtypes

        x = x.astype(ml_dtypes.bfloat16)
    lowered = tsir.lower(reused_staging_tile(dtype, threads, num_stages, blk_m, bk, N), "sm_90a")
    report = tsir.interpret.check_stages(
        lowered, [x, np.zeros((M, N), np.float32)], target="sm_90a"
    )
    assert report.ok, report.first_failure
    xf = x.astype(np.float32)
    np.testing.assert_array_equal(report.reference[1], xf + xf.sum(axis=1, keepdims=True))
    # Unsplit, and the report says why.
    assert "thread_range" not in str(lowered["WarpSpecialize"])
    assert any("`x_s`, which the ring's copies use" in d.message for d in lowered.report)


def tile_used_after_the_ring(num_stages: int) -> tsir.PrimFunc:
    """The staged tile read (the last chunk) and rewritten after the pipelined loop."""
    with T.prim_func("after_ring") as f:
        X = T.param("X", (8, 128), "float32")
        L = T.param("L", (8, 32), "float32")
        S = T.param("S", (8, 32), "float32")
        with T.Kernel(1, threads=128):
            x_s = T.alloc_shared((8, 32), "float32")
            acc = T.alloc_fragment((8, 32), "float32")
            T.clear(acc)
            for ko in T.Pipelined(4, num_stages=num_stages):
                T.copy(X[0, ko * 32], x_s)
                for i, j in T.Parallel(8, 32):
                    acc[i, j] = acc[i, j] + x_s[i, j]
            T.copy(x_s, L)
            for i, j in T.Parallel(8, 32):
                x_s[i, j] = acc[i, j]
            T.copy(x_s, S)
    return f.func


@pytest.mark.parametrize("num_stages", [2, 3])
def test_a_ring_tile_used_after_the_pipelined_loop_keeps_the_split(num_stages: int) -> None:
    """After the loop every copy has landed (the consumers waited for each): the kernel is still
    warp-specialized, and correct at every stage."""
    x = np.random.default_rng(2).integers(-4, 5, (8, 128)).astype(np.float32)
    lowered = tsir.lower(tile_used_after_the_ring(num_stages), "sm_90a")
    assert "thread_range" in str(lowered["WarpSpecialize"]), lowered.report
    out = [np.zeros((8, 32), np.float32), np.zeros((8, 32), np.float32)]
    report = tsir.interpret.check_stages(lowered, [x, *out], target="sm_90a")
    assert report.ok, report.first_failure
    np.testing.assert_array_equal(report.reference[1], x[:, -32:])
    np.testing.assert_array_equal(report.reference[2], x.reshape(8, 4, 32).sum(axis=1))
