"""The mbarrier / TMA / wgmma protocol on hand-written thread-level IR: a producer warp fills a
2-stage ring by TMA (expect_tx on `full[s]`, waiting `empty[s]` with parity `round ^ 1`), a
consumer warpgroup waits `full[s]`, runs the stage's wgmma batch and releases the stage after its
`wgmma_wait`. The correct kernel computes A @ B; each protocol bug is caught by its detector, and
a wait nothing can satisfy is a DeadlockError naming the barrier, the parity and the waiters."""

from __future__ import annotations

import numpy as np
import pytest
from irkit import addr, call, desc, mb, tensor_map, tma, u32, wg

import tsir
from tsir import T
from tsir.interpret import (
    AsyncCopyHazardError,
    DeadlockError,
    MbarrierError,
    WgmmaHazardError,
)
from tsir.layout.swizzle import SwizzleMode
from tsir.layout.wgmma_layouts import descriptor

N, K, BK, STAGES = 64, 256, 64, 2
A_STAGE, B_STAGE = 64 * BK, N * BK  # elements per stage
STAGE_BYTES = 2 * (A_STAGE + B_STAGE)
B128 = SwizzleMode.B128


def ring(bug: str | None = None, consumers_first: bool = False) -> tsir.PrimFunc:
    with T.prim_func("ring") as f:
        A = T.param("A", (64, K), "float16")
        B = T.param("B", (N, K), "float16")
        C = T.param("C", (64, N), "float32")
        with T.Kernel(1, threads=160):
            tx = T.get_thread_binding()
            A_s = T.alloc_shared((STAGES * A_STAGE,), "float16")
            B_s = T.alloc_shared((STAGES * B_STAGE,), "float16")
            full = T.alloc_shared((STAGES,), "uint64")
            empty = T.alloc_shared((STAGES,), "uint64")
            acc = T.alloc_local((N // 2,), "float32")
            with T.If(tx == 0):
                for s in range(STAGES):
                    mb("mbarrier_init", u32(full[s]), 1)
                    mb("mbarrier_init", u32(empty[s]), 1)
                if bug != "no_init_fence":
                    mb("mbarrier_init_fence")
            if bug != "no_syncthreads":
                T.sync_threads()
            with T.If(tx >= 128):  # the producer warp
                with T.If(tx == 128):
                    for kb in T.serial(K // BK):
                        s, ph = kb % STAGES, (kb // STAGES) % 2
                        mb(
                            "mbarrier_wait",
                            u32(empty[s]),
                            ph if bug == "producer_parity" else ph ^ 1,
                        )
                        if bug == "no_expect_tx":
                            mb("mbarrier_arrive", u32(full[s]))
                        else:
                            nbytes = STAGE_BYTES // 2 if bug == "small_expect_tx" else STAGE_BYTES
                            mb("mbarrier_arrive_expect_tx", u32(full[s]), nbytes)
                        ta = tensor_map(A, (64, BK), 128)
                        tb = tensor_map(B, (N, BK), 128)
                        tma("tma_load_2d", u32(A_s[s * A_STAGE]), ta, u32(full[s]), kb * BK, 0)
                        tma("tma_load_2d", u32(B_s[s * B_STAGE]), tb, u32(full[s]), kb * BK, 0)
            with T.Else():  # the consumer warpgroup
                for kb in T.serial(K // BK):
                    s, ph = kb % STAGES, (kb // STAGES) % 2
                    if bug != "no_wait":
                        mb("mbarrier_wait", u32(full[s]), ph)
                    wg("wgmma_fence")
                    for kk in range(BK // 16):
                        da = descriptor((64, BK), "float16", B128, k_major=True, mn0=0, k0=kk * 16)
                        db = descriptor((N, BK), "float16", B128, k_major=True, mn0=0, k0=kk * 16)
                        d_a = desc(u32(A_s[s * A_STAGE]) + da.start, da.lbo, da.sbo, 1)
                        d_b = desc(u32(B_s[s * B_STAGE]) + db.start, db.lbo, db.sbo, 1)
                        scale = T.if_then_else(kb + kk > 0, 1, 0)
                        wg(f"wgmma_ss<tsir::kWgmmaF16, {N}, 0, 0>", addr(acc[0]), d_a, d_b, scale)
                    wg("wgmma_commit")
                    if bug == "early_release":
                        with T.If(tx == 0):
                            mb("mbarrier_arrive", u32(empty[s]))
                        wg("wgmma_wait<0>")
                    else:
                        wg("wgmma_wait<0>")
                        with T.If(tx == 0):
                            mb("mbarrier_arrive", u32(empty[s]))
                if bug == "no_wgmma_wait_at_end":
                    C[0, 0] = acc[0]
                for i in T.serial(N // 2):
                    row = 16 * (tx // 32) + (tx % 32) // 4 + 8 * ((i % 4) // 2)
                    col = 8 * (i // 4) + 2 * (tx % 4) + i % 2
                    C[row, col] = acc[i]
    return f.func


def _run(func: tsir.PrimFunc) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    a = rng.standard_normal((64, K)).astype(np.float16)
    b = rng.standard_normal((N, K)).astype(np.float16)
    c = np.full((64, N), np.nan, np.float32)
    tsir.interpret(func, a, b, c)
    return c, a.astype(np.float64) @ b.astype(np.float64).T


def test_a_two_stage_ring_computes_a_times_b() -> None:
    c, want = _run(ring())
    np.testing.assert_allclose(c, want, rtol=1e-5, atol=1e-3)


def test_every_stage_of_the_pipeline_keeps_the_ring_correct() -> None:
    """The passes run over hand-written Hopper IR (ThreadSync reads the calls' declared effects)
    and every stage still computes A @ B with no hazard."""
    rng = np.random.default_rng(3)
    a = rng.standard_normal((64, K)).astype(np.float16)
    b = rng.standard_normal((N, K)).astype(np.float16)
    c = np.full((64, N), np.nan, np.float32)
    tsir.interpret.check_stages(ring(), [a, b, c], target="sm_90a").raise_for_failure()


def test_consumer_without_the_full_wait_reads_a_load_in_flight() -> None:
    with pytest.raises(AsyncCopyHazardError, match="destination of a TMA load that has not landed"):
        _run(ring("no_wait"))


def test_a_missing_expect_tx_completes_the_phase_before_the_data() -> None:
    with pytest.raises(MbarrierError, match="announced no transaction bytes") as info:
        _run(ring("no_expect_tx"))
    assert "tma_load_2d completes on mbarrier `full[0]`, whose phase 0" in str(info.value)
    assert "by thread (128,)" in str(info.value)


def test_a_too_small_expect_tx_lets_readers_see_a_load_in_flight() -> None:
    with pytest.raises(AsyncCopyHazardError, match="no, or a too small, expect_tx") as info:
        _run(ring("small_expect_tx"))
    assert "TMA load issued by thread (128,)" in str(info.value)
    assert "wgmma_ss" in str(info.value)


def test_releasing_a_stage_before_wgmma_wait_is_caught_when_it_is_refilled() -> None:
    with pytest.raises(WgmmaHazardError, match="operand of a wgmma that no wgmma_wait has retired"):
        _run(ring("early_release"))


def test_a_producer_waiting_with_the_wrong_parity_deadlocks() -> None:
    with pytest.raises(DeadlockError) as info:
        _run(ring("producer_parity"))
    msg = str(info.value)
    assert "every thread of block (0,) waits" in msg
    assert "mbarrier_wait on mbarrier `empty[0]` for the phase of parity 0" in msg
    assert "by thread (128,) of block (0,)" in msg
    assert "in phase 0 (parity 0), 1 of 1 arrivals and 0 transaction bytes pending" in msg
    assert "mbarrier_wait on mbarrier `full[0]` for the phase of parity 0" in msg
    assert "by threads 0..127 of block (0,)" in msg


def test_a_missing_init_fence_is_reported_when_tma_completes_on_the_barrier() -> None:
    with pytest.raises(MbarrierError, match="never fenced for the async proxy"):
        _run(ring("no_init_fence"))


def test_a_barrier_used_before_its_init_is_ordered_is_reported() -> None:
    with pytest.raises(MbarrierError, match="initialisation is not yet ordered before"):
        _run(ring("no_syncthreads"))


def test_a_wait_on_a_barrier_nobody_arrives_at_deadlocks() -> None:
    with T.prim_func("stuck") as f:
        A = T.param("A", (128,), "float32")
        with T.Kernel(2, threads=256) as bx:
            tx = T.get_thread_binding()
            bar = T.alloc_shared((2,), "uint64")
            with T.If(tx == 0):
                mb("mbarrier_init", u32(bar[1]), 256)  # warpgroup 1 never arrives
                mb("mbarrier_init_fence")
            T.sync_threads()
            with T.If(tx < 128):
                mb("mbarrier_arrive", u32(bar[1]))
                mb("mbarrier_wait", u32(bar[1]), 0)
            A[tx % 128] = T.cast(bx, "float32")
    with pytest.raises(DeadlockError) as info:
        tsir.interpret(f.func, np.zeros(128, np.float32))
    msg = str(info.value)
    assert "mbarrier_wait on mbarrier `bar[1]` for the phase of parity 0" in msg
    assert (
        "by threads 0..127 of block (0,): the barrier is in phase 0 (parity 0), 128 of 256" in msg
    )
    assert "warpgroup 1 (threads 128..255): has finished the kernel" in msg


def test_more_arrivals_than_the_count_are_reported() -> None:
    with T.prim_func("over") as f:
        T.param("A", (1,), "float32")
        with T.Kernel(1, threads=64):
            tx = T.get_thread_binding()
            bar = T.alloc_shared((1,), "uint64")
            with T.If(tx == 0):
                mb("mbarrier_init", u32(bar[0]), 2)
                mb("mbarrier_expect_tx", u32(bar[0]), 16)
            T.sync_threads()
            mb("mbarrier_arrive", u32(bar[0]))
    with pytest.raises(
        MbarrierError, match="more arrivals on mbarrier `bar\\[0\\]` than its count"
    ):
        tsir.interpret(f.func, np.zeros(1, np.float32))


# -- one TMA load, its mbarrier, the read ----------------------------------------------------------


@pytest.mark.parametrize("swizzle,c0,c1", [(0, 8, -4), (32, 88, 24), (64, 80, 16), (128, 64, -20)])
def test_a_tma_load_lands_the_box_through_the_swizzle(swizzle: int, c0: int, c1: int) -> None:
    """The box's bytes where the TMA reference (tests/hopper/ptx_wgmma_reference.py) puts them,
    zero outside the tensor, readable after the mbarrier wait."""
    import os
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "hopper"))
    from ptx_wgmma_reference import tma_swizzled_box_address
    from test_hopper_gpu import _tma_box_case

    case = _tma_box_case(swizzle, c0, c1)
    a, out, x0, x1 = case.inputs(np.random.default_rng(1))
    tsir.interpret(case.ir(), a, out, x0, x1)
    (rows, inner), _ = case.maps[0]
    want = np.zeros_like(out)
    for r in range(rows):
        for c in range(inner):
            inside = 0 <= x1 + r < a.shape[0] and 0 <= x0 + c < a.shape[1]
            v = a[x1 + r, x0 + c] if inside else np.float16(0)
            at = tma_swizzled_box_address(1024, r, c, inner * 2, 2, swizzle) - 1024
            want[at : at + 2] = np.array([v], np.float16).view(np.uint8)
    np.testing.assert_array_equal(out, want)


def test_tma_loads_of_rank_1_and_3() -> None:
    with T.prim_func("ranks") as f:
        V = T.param("V", (100,), "int32")
        X = T.param("X", (3, 10, 8), "float32")
        out = T.param("out", (32 + 2 * 4 * 8,), "int32")
        with T.Kernel(1, threads=32):
            tx = T.get_thread_binding()
            S = T.alloc_shared((32,), "int32")
            R = T.alloc_shared((64,), "float32")
            bar = T.alloc_shared((1,), "uint64")
            with T.If(tx == 0):
                mb("mbarrier_init", u32(bar[0]), 1)
                mb("mbarrier_init_fence")
            T.sync_threads()
            with T.If(tx == 0):
                mb("mbarrier_arrive_expect_tx", u32(bar[0]), 128 + 256)
                tma("tma_load_1d", u32(S[0]), tensor_map(V, (32,), 0), u32(bar[0]), 80)
                tma("tma_load_3d", u32(R[0]), tensor_map(X, (2, 4, 8), 0), u32(bar[0]), 0, 7, 2)
            mb("mbarrier_wait", u32(bar[0]), 0)
            out[tx] = S[tx]
            out[32 + tx] = T.cast(R[tx], "int32")
            out[64 + tx] = T.cast(R[32 + tx], "int32")
    v = np.arange(100, dtype=np.int32)
    x = np.arange(240, dtype=np.float32).reshape(3, 10, 8)
    o = np.zeros(96, np.int32)
    tsir.interpret(f.func, v, x, o)
    np.testing.assert_array_equal(o[:32], np.r_[v[80:], np.zeros(12, np.int32)])
    box = np.zeros((2, 4, 8), np.float32)  # rows 7..10 of planes 2..3: (2, 7..9) inside
    box[0, :3] = x[2, 7:10]
    np.testing.assert_array_equal(o[32:], box.reshape(-1).astype(np.int32))


def test_try_wait_lets_the_other_warpgroups_run_once() -> None:
    """try_wait answers false on a phase nobody completes (no deadlock), and true on one another
    warpgroup completes while the asking one is suspended."""
    with T.prim_func("poll") as f:
        A = T.param("A", (256,), "int32")
        with T.Kernel(1, threads=256):
            tx = T.get_thread_binding()
            bar = T.alloc_shared((2,), "uint64")
            with T.If(tx == 0):
                mb("mbarrier_init", u32(bar[0]), 1)
                mb("mbarrier_init", u32(bar[1]), 1)
                mb("mbarrier_init_fence")
            T.sync_threads()
            with T.If(tx < 128):
                done = T.alloc_local((2,), "int32")
                for b in range(2):
                    poll = call("bool", "tsir.mbarrier.mbarrier_try_wait", u32(bar[b]), 0)
                    done[b] = T.cast(poll, "int32")
                A[tx] = done[0] * 2 + done[1]
            with T.Else():
                with T.If(tx == 128):
                    mb("mbarrier_arrive", u32(bar[0]))
                A[tx] = 7
    a = np.zeros(256, np.int32)
    tsir.interpret(f.func, a)
    np.testing.assert_array_equal(a, np.r_[np.full(128, 2), np.full(128, 7)])
