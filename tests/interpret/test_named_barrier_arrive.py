"""Named barriers with both forms (mbarrier.h: named_barrier_sync = bar.sync, named_barrier_arrive =
bar.arrive) in the thread-level interpreter: bar.arrive counts and goes on, bar.sync waits for the
count; the arriving warps' earlier accesses are ordered before the waiters' later ones and not the
other way round; a warp arriving twice in one generation, arrivals left at the end of the block,
and waits nobody completes are reported, never a hang. The GPU twin of these semantics is the
ping-pong run in tests/hopper/test_ping_pong_gpu.py."""

from __future__ import annotations

import numpy as np
import pytest
from irkit import mb

import tsir
from tsir import T
from tsir.interpret import DataRaceError, DeadlockError, NamedBarrierError


def _handoff(first: str, second: str, *, late_read: bool = False) -> tsir.PrimFunc:
    """Warpgroup 1 writes S, then `first`s on barrier 1; warpgroup 0 `second`s on it, then reads
    S. `late_read`: warpgroup 0 also writes U before its barrier, and warpgroup 1 reads U after
    its own (ordered only if that one waits)."""
    with T.prim_func("handoff") as f:
        A = T.param("A", (256,), "float32")
        B = T.param("B", (256,), "float32")
        with T.Kernel(1, threads=256):
            tx = T.get_thread_binding()
            S = T.alloc_shared((128,), "float32")
            U = T.alloc_shared((128,), "float32")
            with T.If(tx >= 128):
                S[tx - 128] = A[tx]
                if first:
                    mb(f"named_barrier_{first}", 1, 256)
                if late_read:
                    B[tx] = U[255 - tx]
                else:
                    B[tx] = A[tx]
            with T.Else():
                if late_read:
                    U[tx] = A[tx]
                if second:
                    mb(f"named_barrier_{second}", 1, 256)
                B[tx] = S[127 - tx]
    return f.func


def _run(f: tsir.PrimFunc) -> np.ndarray:
    a = np.arange(256, dtype=np.float32)
    b = np.zeros(256, np.float32)
    tsir.interpret(f, a, b)
    return b


def test_arrive_then_sync_hands_shared_memory_over() -> None:
    b = _run(_handoff("arrive", "sync"))
    a = np.arange(256, dtype=np.float32)
    np.testing.assert_array_equal(b[:128], a[128:][::-1])
    np.testing.assert_array_equal(b[128:], a[128:])


def test_without_the_barrier_the_handoff_is_a_race() -> None:
    with pytest.raises(DataRaceError):
        _run(_handoff("", ""))


def test_an_arriving_warp_is_not_ordered_after_the_waiters() -> None:
    """bar.arrive does not wait: what the waiters wrote before the barrier races with what the
    arriving warps read after their arrival (with bar.sync on both sides it does not)."""
    with pytest.raises(DataRaceError, match="data race on shared memory `U`"):
        _run(_handoff("arrive", "sync", late_read=True))
    _run(_handoff("sync", "sync", late_read=True))


def test_an_arrival_nobody_waits_for_is_reported_at_the_end_of_the_block() -> None:
    with pytest.raises(
        NamedBarrierError, match="named barrier 1 ends the block with 128 of 256 threads arrived"
    ):
        _run(_handoff("arrive", ""))


def test_a_sync_nobody_completes_is_a_deadlock() -> None:
    with pytest.raises(DeadlockError, match="bar.sync 1, 256: 128 of 256 threads have arrived"):
        _run(_handoff("", "sync"))


def test_a_second_arrival_in_one_generation_is_reported() -> None:
    """Two arrivals of warpgroup 1 on a barrier of 256 would complete it on their own on a GPU
    (the PTX ISA leaves it undefined): the interpreter names both arrivals. (Warpgroup 0 waits on
    barrier 2 first, which warpgroup 1 completes after its two arrivals.)"""
    with T.prim_func("twice") as f:
        A = T.param("A", (256,), "float32")
        with T.Kernel(1, threads=256):
            tx = T.get_thread_binding()
            with T.If(tx >= 128):
                mb("named_barrier_arrive", 1, 256)
                mb("named_barrier_arrive", 1, 256)
                mb("named_barrier_arrive", 2, 256)
            with T.Else():
                mb("named_barrier_sync", 2, 256)
                mb("named_barrier_sync", 1, 256)
            A[tx] = 1.0
    with pytest.raises(
        NamedBarrierError, match="warp 4 arrives at barrier 1 again before it completed"
    ) as e:
        tsir.interpret(f.func, np.zeros(256, np.float32))
    assert "first arrival by thread (128,)" in str(e.value)
    assert "second arrival by thread (128,)" in str(e.value)


def test_turns_taken_on_two_barriers_order_a_shared_counter() -> None:
    """The ping-pong protocol by hand: warpgroups take turns (W1 arrives on B0 first; a turn is
    `sync own; ...; arrive other`; W0 syncs B0 last) and, in its turn, lane 0 of each bumps a
    shared counter and logs who it was. Only the turns order the counter's accesses: without
    them it is a race; with them the log alternates W0, W1, W0, ..."""

    def build(turns: bool) -> tsir.PrimFunc:
        with T.prim_func("turns") as f:
            Log = T.param("Log", (8,), "int32")
            with T.Kernel(1, threads=256):
                tx = T.get_thread_binding()
                n = T.alloc_shared((1,), "int32")
                w = tx // 128
                with T.If(tx == 0):
                    n[0] = 0
                T.sync_threads()
                if turns:
                    with T.If(w == 1):
                        mb("named_barrier_arrive", 3, 256)
                for _k in T.serial(4):
                    if turns:
                        mb("named_barrier_sync", 3 + w, 256)
                    with T.If(tx % 128 == 0):
                        Log[n[0]] = w
                        n[0] = n[0] + 1
                    if turns:
                        mb("named_barrier_arrive", 4 - w, 256)
                if turns:
                    with T.If(w == 0):
                        mb("named_barrier_sync", 3, 256)
        return f.func

    log = np.full(8, -1, np.int32)
    tsir.interpret(build(True), log)
    np.testing.assert_array_equal(log, [0, 1] * 4)
    with pytest.raises(DataRaceError, match="`n`"):
        tsir.interpret(build(False), np.zeros(8, np.int32))
