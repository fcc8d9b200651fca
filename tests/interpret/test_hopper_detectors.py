"""The Hopper detectors on hand-written thread-level IR, each with a hazard-free twin: the proxy
fence between generic shared writes and async-proxy reads (wgmma, TMA store), wgmma's pending
accumulator / A registers / operand tiles, wgmma.fence, warpgroup-collective calls, TMA stores
and their waits, mbarrier objects as memory, elect, setmaxnreg, and named barriers."""

from __future__ import annotations

import numpy as np
import pytest
from irkit import addr, call, desc, mb, tensor_map, tma, u32, wg

import tsir
from tsir import T
from tsir.interpret import (
    AsyncCopyHazardError,
    DataRaceError,
    DeadlockError,
    DivergentBarrierError,
    DivergentWarpError,
    MbarrierError,
    ProxyFenceError,
    RegisterBudgetError,
    TmaError,
    UninitializedReadError,
    WgmmaHazardError,
)
from tsir.layout.swizzle import SwizzleMode
from tsir.layout.wgmma_layouts import descriptor, make_wgmma_smem_layout

B32 = SwizzleMode.B32
A_SHAPE, B_SHAPE = (64, 16), (16, 16)  # A 64 x K, B N x K (K-major), one m64n16k16 instruction
F16 = "tsir::kWgmmaF16"


def generic_mma(bug: str | None = None) -> tsir.PrimFunc:
    """Operands stored by ordinary stores through the 32-byte swizzle, one wgmma, D stored out."""
    la = make_wgmma_smem_layout(A_SHAPE, "float16", B32)
    lb = make_wgmma_smem_layout(B_SHAPE, "float16", B32)
    with T.prim_func("generic_mma") as f:
        A = T.param("A", A_SHAPE, "float16")
        B = T.param("B", B_SHAPE, "float16")
        C = T.param("C", (64, 16), "float32")
        with T.Kernel(1, threads=128):
            tx = T.get_thread_binding()
            A_s = T.alloc_shared((64 * 16,), "float16")
            B_s = T.alloc_shared((16 * 16,), "float16")
            acc = T.alloc_local((8,), "float32")
            for e in T.serial(8):
                i = tx * 8 + e
                A_s[la.linear_forward((i // 16, i % 16))] = A[i // 16, i % 16]
            for e in T.serial(2):
                i = tx * 2 + e
                B_s[lb.linear_forward((i // 16, i % 16))] = B[i // 16, i % 16]
            if bug != "no_proxy_fence":
                mb("fence_proxy_async_shared")
            if bug != "no_barrier":
                T.sync_threads()
            if bug in ("acc_init_unfenced", "acc_init_no_fence"):
                for i in T.serial(8):
                    acc[i] = 0.0
            if bug != "acc_init_no_fence":
                wg("wgmma_fence")
            if bug == "acc_init_unfenced_after":
                for i in T.serial(8):
                    acc[i] = 0.0
            da = descriptor(A_SHAPE, "float16", B32, k_major=True, mn0=0, k0=0)
            db = descriptor(B_SHAPE, "float16", B32, k_major=True, mn0=0, k0=0)
            d_a = desc(u32(A_s[0]) + da.start, da.lbo, da.sbo, 3)
            d_b = desc(u32(B_s[0]) + db.start, db.lbo, db.sbo, 3)
            accumulate = (
                "acc_init_unfenced",
                "acc_init_unfenced_after",
                "acc_init_no_fence",
                "uninit",
            )
            scale = 1 if bug in accumulate else 0
            with T.If(tx < 64 if bug == "partial_warpgroup" else tx >= 0):
                wg(f"wgmma_ss<{F16}, 16, 0, 0>", addr(acc[0]), d_a, d_b, scale)
            wg("wgmma_commit")
            if bug == "read_pending":
                C[0, 0] = acc[1]
            if bug == "overwrite_operand":
                A_s[tx] = A[0, 0]
            if bug != "no_wait":
                wg("wgmma_wait<0>")
            for i in T.serial(8):
                row = 16 * (tx // 32) + (tx % 32) // 4 + 8 * ((i % 4) // 2)
                col = 8 * (i // 4) + 2 * (tx % 4) + i % 2
                if bug != "no_wait":
                    C[row, col] = acc[i]
    return f.func


def _mma(bug: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    a = rng.standard_normal(A_SHAPE).astype(np.float16)
    b = rng.standard_normal(B_SHAPE).astype(np.float16)
    c = np.full((64, 16), np.nan, np.float32)
    tsir.interpret(generic_mma(bug), a, b, c)
    return c, a.astype(np.float64) @ b.astype(np.float64).T


def test_generic_stores_fenced_and_synced_feed_wgmma() -> None:
    c, want = _mma()
    np.testing.assert_allclose(c, want, rtol=1e-5, atol=1e-4)


def test_a_missing_proxy_fence_is_reported_despite_the_barrier() -> None:
    with pytest.raises(ProxyFenceError) as info:
        _mma("no_proxy_fence")
    msg = str(info.value)
    assert "read by the async proxy (wgmma_ss<tsir::kWgmmaF16, 16, 0, 0> operand A)" in msg
    assert "generic write (no fence.proxy.async after it) by thread" in msg
    assert "A_s[" in msg and "fence_proxy_async_shared" in msg


def test_a_missing_barrier_before_wgmma_is_a_race() -> None:
    with pytest.raises(DataRaceError, match="`A_s`"):
        _mma("no_barrier")


def test_reading_a_pending_accumulator() -> None:
    with pytest.raises(WgmmaHazardError, match="read of register `acc` element 1, the accumulator"):
        _mma("read_pending")


def test_writing_an_operand_tile_before_the_wait() -> None:
    with pytest.raises(WgmmaHazardError, match="`A_s` \\(byte 0\\) is an operand of a wgmma"):
        _mma("overwrite_operand")


def test_accumulators_written_without_wgmma_fence() -> None:
    with pytest.raises(WgmmaHazardError, match="after the warpgroup's last wgmma_fence"):
        _mma("acc_init_no_fence")
    with pytest.raises(
        WgmmaHazardError, match="register `acc` \\(byte 0\\) was written by ordinary"
    ):
        _mma("acc_init_unfenced_after")


def test_accumulators_written_then_fenced_accumulate() -> None:
    c, want = _mma("acc_init_unfenced")  # zeroed before the fence: fine
    np.testing.assert_allclose(c, want, rtol=1e-5, atol=1e-4)


def test_an_unwritten_accumulator_read_with_scale_d() -> None:
    with pytest.raises(UninitializedReadError, match="reads its accumulator register `acc`"):
        _mma("uninit")


def test_a_warpgroup_collective_call_half_the_warpgroup_skips() -> None:
    with pytest.raises(DivergentWarpError, match="only 64 of the 128 threads of warpgroup 0"):
        _mma("partial_warpgroup")


def test_the_block_ends_with_wgmma_pending() -> None:
    with pytest.raises(WgmmaHazardError, match="no wgmma_wait retired"):
        _mma("no_wait")


# -- wgmma rs: the A registers ---------------------------------------------------------------------


def test_writing_a_pending_a_register() -> None:
    lb = make_wgmma_smem_layout(B_SHAPE, "float16", B32)
    with T.prim_func("rs") as f:
        B = T.param("B", B_SHAPE, "float16")
        C = T.param("C", (64, 16), "float32")
        with T.Kernel(1, threads=128):
            tx = T.get_thread_binding()
            B_s = T.alloc_shared((256,), "float16")
            acc = T.alloc_local((8,), "float32")
            a = T.alloc_local((8,), "float16")
            for e in T.serial(2):
                i = tx * 2 + e
                B_s[lb.linear_forward((i // 16, i % 16))] = B[i // 16, i % 16]
            for i in T.serial(8):
                a[i] = T.cast(1.0, "float16")
            mb("fence_proxy_async_shared")
            T.sync_threads()
            wg("wgmma_fence")
            db = descriptor(B_SHAPE, "float16", B32, k_major=True, mn0=0, k0=0)
            d_b = desc(u32(B_s[0]) + db.start, db.lbo, db.sbo, 3)
            wg(f"wgmma_rs<{F16}, 16, 0>", addr(acc[0]), addr(a[0]), d_b, 0)
            wg("wgmma_commit")
            a[3] = T.cast(2.0, "float16")
            wg("wgmma_wait<0>")
            C[0, 0] = acc[0]
    with pytest.raises(WgmmaHazardError, match="write of register `a` element 3, the A operand"):
        tsir.interpret(f.func, np.ones(B_SHAPE, np.float16), np.zeros((64, 16), np.float32))


# -- TMA stores ------------------------------------------------------------------------------------


def tma_store(bug: str | None = None) -> tsir.PrimFunc:
    with T.prim_func("store") as f:
        A = T.param("A", (48, 64), "float32")
        B = T.param("B", (40, 64), "float32")
        with T.Kernel(1, threads=128):
            tx = T.get_thread_binding()
            S = T.alloc_shared((32 * 32,), "float32")
            for e in T.serial(8):
                i = tx * 8 + e  # element (r, c) of the box at its 128B-swizzled place
                r, c = i // 32, i % 32
                S[r * 32 + ((c // 4) ^ (r % 8)) * 4 + c % 4] = A[16 + r, 32 + c]
            if bug != "no_proxy_fence":
                mb("fence_proxy_async_shared")
            T.sync_threads()
            with T.If(tx == 0):
                tma("tma_store_2d", tensor_map(B, (32, 32), 128), u32(S[0]), 32, 16)
                tma("tma_store_commit")
                if bug == "overwrite":
                    S[5] = 0.0
                if bug != "no_wait":
                    tma("tma_store_wait_read<0>")
                S[5] = 0.0
                tma("tma_store_wait<0>")
    return f.func


def test_a_tma_store_writes_the_box_in_bounds() -> None:
    a = np.arange(48 * 64, dtype=np.float32).reshape(48, 64)
    b = np.full((40, 64), -1.0, np.float32)
    tsir.interpret(tma_store(), a, b)
    want = np.full((40, 64), -1.0, np.float32)
    want[16:40, 32:64] = a[16:40, 32:64]  # rows 40.. of the box are outside the tensor
    np.testing.assert_array_equal(b, want)


@pytest.mark.parametrize(
    "bug,err,text",
    [
        ("no_proxy_fence", ProxyFenceError, "async proxy \\(tma_store_2d\\)"),
        ("overwrite", AsyncCopyHazardError, "source of a TMA store that no tma_store_wait_read"),
        ("no_wait", AsyncCopyHazardError, "source of a TMA store"),
    ],
)
def test_tma_store_hazards(bug: str, err: type, text: str) -> None:
    with pytest.raises(err, match=text):
        tsir.interpret(
            tma_store(bug), np.zeros((48, 64), np.float32), np.zeros((40, 64), np.float32)
        )


def test_a_box_wider_than_the_swizzle_is_refused() -> None:
    with T.prim_func("bad_map") as f:
        A = T.param("A", (64, 64), "float32")
        with T.Kernel(1, threads=128):
            S = T.alloc_shared((64 * 64,), "float32")
            tma("tma_store_2d", tensor_map(A, (8, 64), 128), u32(S[0]), 0, 0)
    with pytest.raises(TmaError, match="with the 128-byte swizzle the inner extent is at most"):
        tsir.interpret(f.func, np.zeros((64, 64), np.float32))


# -- mbarrier objects, elect, setmaxnreg, named barriers -------------------------------------------


def test_the_bytes_of_a_live_mbarrier_are_not_data() -> None:
    with T.prim_func("bar_data") as f:
        T.param("A", (1,), "float32")
        with T.Kernel(1, threads=32):
            tx = T.get_thread_binding()
            bar = T.alloc_shared((2,), "uint64")
            with T.If(tx == 0):
                mb("mbarrier_init", u32(bar[1]), 1)
                bar[1] = T.cast(0, "uint64")
    with pytest.raises(MbarrierError, match="belongs to a live mbarrier object"):
        tsir.interpret(f.func, np.zeros(1, np.float32))


def test_elect_one_picks_lane_zero_of_each_warp() -> None:
    with T.prim_func("elect") as f:
        A = T.param("A", (96,), "int32")
        with T.Kernel(1, threads=96):
            tx = T.get_thread_binding()
            e = T.alloc_local((1,), "int32")
            e[0] = T.cast(call("bool", "tsir.mbarrier.elect_one"), "int32")
            A[tx] = e[0]
    a = np.zeros(96, np.int32)
    tsir.interpret(f.func, a)
    np.testing.assert_array_equal(a, (np.arange(96) % 32 == 0).astype(np.int32))


def _regs(counts: tuple[int, int, int]) -> tsir.PrimFunc:
    dec, inc1, inc2 = counts
    with T.prim_func("regs") as f:
        A = T.param("A", (384,), "int32")
        with T.Kernel(1, threads=384):
            tx = T.get_thread_binding()
            with T.If(tx < 128):
                mb(f"setmaxnreg_inc<{inc1}>")
            with T.Else():
                with T.If(tx < 256):
                    mb(f"setmaxnreg_inc<{inc2}>")
                with T.Else():
                    mb(f"setmaxnreg_dec<{dec}>")
            A[tx] = tx
    return f.func


def test_setmaxnreg_rebalances_and_an_inc_waits_for_the_dec() -> None:
    a = np.zeros(384, np.int32)
    tsir.interpret(_regs((40, 232, 232)), a)  # the incs wait until warpgroup 2 gives back
    np.testing.assert_array_equal(a, np.arange(384))


def test_setmaxnreg_values() -> None:
    with pytest.raises(RegisterBudgetError, match="a multiple of 8 in \\[24, 256\\]"):
        tsir.interpret(_regs((40, 236, 232)), np.zeros(384, np.int32))
    with pytest.raises(RegisterBudgetError, match="a dec may not raise the count"):
        tsir.interpret(_regs((176, 232, 232)), np.zeros(384, np.int32))
    with pytest.raises(
        DeadlockError, match="setmaxnreg_inc<248> in warpgroup \\d waits for registers"
    ):
        tsir.interpret(_regs((40, 248, 248)), np.zeros(384, np.int32))


def _exchange(count: int, sync: bool = True) -> tsir.PrimFunc:
    """Warpgroups 1 and 2 swap data through shared memory over named barrier 1; warpgroup 0
    takes no part."""
    with T.prim_func("exchange") as f:
        A = T.param("A", (384,), "float32")
        B = T.param("B", (384,), "float32")
        with T.Kernel(1, threads=384):
            tx = T.get_thread_binding()
            S = T.alloc_shared((384,), "float32")
            with T.If(tx >= 128):
                S[tx] = A[tx]
                if sync:
                    mb("named_barrier_sync", 1, count)
                B[tx] = S[(tx - 128 + 128) % 256 + 128]
            with T.Else():
                B[tx] = A[tx]
    return f.func


def test_named_barriers_order_two_warpgroups() -> None:
    a = np.arange(384, dtype=np.float32)
    b = np.zeros(384, np.float32)
    tsir.interpret(_exchange(256), a, b)
    want = a.copy()
    want[128:] = a[(np.arange(256) + 128) % 256 + 128]
    np.testing.assert_array_equal(b, want)
    with pytest.raises(DataRaceError):
        tsir.interpret(_exchange(256, sync=False), a, b)


def test_named_barrier_with_a_count_nobody_completes() -> None:
    with pytest.raises(DeadlockError, match="bar.sync 1, 384: 256 of 384 threads have arrived"):
        tsir.interpret(_exchange(384), np.zeros(384, np.float32), np.zeros(384, np.float32))


def test_syncthreads_skipped_by_a_warpgroup() -> None:
    with T.prim_func("skip") as f:
        A = T.param("A", (256,), "float32")
        with T.Kernel(1, threads=256):
            tx = T.get_thread_binding()
            with T.If(tx < 128):
                mb("fence_proxy_async_shared")
                T.sync_threads()
            A[tx] = 1.0
    with pytest.raises(DivergentBarrierError):
        tsir.interpret(f.func, np.zeros(256, np.float32))


def test_a_tile_op_in_a_thread_range_runs_on_its_named_barrier() -> None:
    """ThreadSync synchronizes a copy under `T.If(tx < 64)` with `bar.sync 1, 64`
    (tsir.sync.named_barrier) before a transposed read of the tile (other threads' elements):
    every stage of the pipeline runs it and computes the input's result."""
    with T.prim_func("range_copy") as f:
        A = T.param("A", (64, 64), "float32")
        B = T.param("B", (64, 64), "float32")
        with T.Kernel(1, threads=128):
            tx = T.get_thread_binding(0)
            with T.If(tx < 64):
                S = T.alloc_shared((64, 64), "float32")
                T.copy(A, S)
                for i, j in T.Parallel(64, 64):
                    B[i, j] = S[j, i]
    assert "tsir.sync.named_barrier" in str(tsir.lower(f.func, "sm_80").module)
    a = np.arange(64 * 64, dtype=np.float32).reshape(64, 64)
    report = tsir.interpret.check_stages(f.func, [a, np.zeros_like(a)], target="sm_80")
    report.raise_for_failure()
    np.testing.assert_array_equal(report.reference[1], a.T)
