"""ThreadSync with several warpgroups: where every conflicting pair of accesses comes from threads
of one warpgroup (proved by enumerating the indices, passes/footprint.py), the barrier is that
warpgroup's own (`bar.sync id0 + w, 128`), so warpgroups do not wait for each other; anything
else -- an access across warpgroups, an index that cannot be enumerated, a block that is not
whole warpgroups, no named-barrier ids left -- keeps the barrier across the block. Every program
also runs in the interpreter at every stage (race and barrier detectors on) against numpy."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from tsir.passes import PassContext, get

import tsir
from tsir import T
from tsir.expr import Call, IntImm
from tsir.interpret import check_stages
from tsir.stmt import Evaluate
from tsir.structural import assert_structural_equal
from tsir.visitor import collect

CTX = PassContext(tsir.Target.parse("sm_90a"))


def run(func: tsir.PrimFunc) -> tsir.PrimFunc:
    return get("ThreadSync")(func, CTX)


def _barriers(func: tsir.PrimFunc) -> tuple[int, list[Call]]:
    """(block barriers, warpgroup barriers: named barriers of 128 threads with a varying id)."""
    calls = [e.value for e in collect(func.body, Evaluate) if isinstance(e.value, Call)]
    block = sum(c.op == "sync_threads" for c in calls)
    own = [
        c
        for c in calls
        if c.op == "tsir.sync.named_barrier"
        and not isinstance(c.args[0], IntImm)
        and int(c.args[1].value) == 128  # type: ignore[attr-defined]
    ]
    return block, own


def _exchange(threads: int, read: Callable[[Any], Any], loop: int = 1) -> tsir.PrimFunc:
    """Each thread writes S[tx], then reads S[read(tx)]; `loop` times (the tile rewritten)."""
    with T.prim_func("exchange") as f:
        X = T.param("X", (loop, threads), "float32")
        Y = T.param("Y", (loop, threads), "float32")
        with T.Kernel(1, threads=threads):
            tx = T.get_thread_binding(0)
            S = T.alloc_shared((threads,), "float32")
            if loop == 1:  # no loop around: no rewrite after the reads
                S[tx] = X[0, tx]
                Y[0, tx] = S[read(tx)]
            else:
                for k in T.serial(loop):
                    S[tx] = X[k, tx]
                    Y[k, tx] = S[read(tx)]
    return f.func


def _agrees(func: tsir.PrimFunc, threads: int, read: Callable[[np.ndarray], np.ndarray], loop: int):
    x = np.arange(loop * threads, dtype=np.float32).reshape(loop, threads)
    report = check_stages(tsir.lower(func, "sm_90a"), [x, np.zeros_like(x)], target="sm_90a")
    assert report.ok, report.first_failure
    want = x[:, read(np.arange(threads))]
    np.testing.assert_array_equal(report.reference[1], want)


def test_a_partner_in_the_same_warpgroup_takes_the_warpgroups_own_barrier() -> None:
    with T.prim_func("f") as before:
        A = T.param("A", (256,), "float32")
        with T.Kernel(1, threads=256):
            tx = T.get_thread_binding(0)
            S = T.alloc_shared((256,), "float32")
            S[tx] = A[tx]
            A[tx] = S[tx ^ 64]

    with T.prim_func("f") as expected:
        A = T.param("A", (256,), "float32")
        with T.Kernel(1, threads=256):
            tx = T.get_thread_binding(0)
            S = T.alloc_shared((256,), "float32")
            S[tx] = A[tx]
            T.evaluate(T.call_intrin("int32", "tsir.sync.named_barrier", tx // 128 + 1, 128))
            A[tx] = S[tx ^ 64]

    assert_structural_equal(run(before.func), expected.func)


@pytest.mark.parametrize(
    "threads, read, loop, block, own",
    [
        (256, lambda t: t ^ 1, 1, 0, 1),
        (256, lambda t: t ^ 1, 4, 0, 2),  # and at the loop head: the rewrite after the reads
        (384, lambda t: (t // 128) * 128 + (127 - t % 128), 3, 0, 2),
        (512, lambda t: t ^ 127, 2, 0, 2),
        (256, lambda t: 255 - t, 1, 1, 0),  # across warpgroups
        (256, lambda t: t ^ 128, 3, 2, 0),
        (384, lambda t: (t + 1) % 384, 2, 2, 0),  # warpgroup edges cross
        (192, lambda t: t ^ 1, 2, 2, 0),  # not whole warpgroups
        (128, lambda t: t ^ 1, 1, 1, 0),  # one warpgroup is the block
    ],
    ids=[
        "xor1",
        "xor1-loop",
        "mirror-in-wg-384",
        "xor127-512",
        "mirror-block",
        "xor128-loop",
        "shift-384",
        "threads-192",
        "threads-128",
    ],
)
def test_the_barrier_follows_which_warpgroups_meet(
    threads: int, read: Callable[[Any], Any], loop: int, block: int, own: int
) -> None:
    func = _exchange(threads, read, loop)
    got_block, got_own = _barriers(run(func))
    assert (got_block, len(got_own)) == (block, own)
    _agrees(func, threads, read, loop)


def test_an_index_read_from_memory_keeps_the_block_barrier() -> None:
    """Which element a thread reads depends on data: nothing to enumerate."""
    with T.prim_func("f") as f:
        A = T.param("A", (256,), "float32")
        P = T.param("P", (256,), "int32")
        with T.Kernel(1, threads=256):
            tx = T.get_thread_binding(0)
            S = T.alloc_shared((256,), "float32")
            S[tx] = A[tx]
            A[tx] = S[P[tx]]
    block, own = _barriers(run(f.func))
    assert (block, len(own)) == (1, 0)
    a = np.arange(256, dtype=np.float32)
    p = (np.arange(256, dtype=np.int32) ^ 1).astype(np.int32)
    report = check_stages(tsir.lower(f.func, "sm_90a"), [a, p], target="sm_90a")
    assert report.ok, report.first_failure
    np.testing.assert_array_equal(report.reference[0], a[p])


def test_an_index_of_an_enclosing_loop_is_enumerated_over_the_loop() -> None:
    """A double-buffered tile indexed by the loop counter: the footprints cover every iteration
    of the loop around the statements (a superset of any one), and each warpgroup still touches
    only its own elements: warpgroup barriers, at the loop head and between write and read."""
    with T.prim_func("f") as f:
        X = T.param("X", (4, 256), "float32")
        Y = T.param("Y", (4, 256), "float32")
        with T.Kernel(1, threads=256):
            tx = T.get_thread_binding(0)
            S = T.alloc_shared((512,), "float32")
            for k in T.serial(4):
                S[k % 2 * 256 + tx] = X[k, tx]
                Y[k, tx] = S[k % 2 * 256 + (tx ^ 1)]
    block, own = _barriers(run(f.func))
    assert (block, len(own)) == (0, 2)
    x = np.arange(1024, dtype=np.float32).reshape(4, 256)
    report = check_stages(tsir.lower(f.func, "sm_90a"), [x, np.zeros_like(x)], target="sm_90a")
    assert report.ok, report.first_failure
    np.testing.assert_array_equal(report.reference[1], x[:, np.arange(256) ^ 1])


def test_a_later_access_across_warpgroups_still_gets_the_block_barrier() -> None:
    """After a warpgroup barrier ordered S's write before a read within each warpgroup, a read
    by the other warpgroup of the same elements (with no new write in between) still conflicts
    with the write across warpgroups: a block barrier."""
    with T.prim_func("f") as f:
        A = T.param("A", (256,), "float32")
        B = T.param("B", (256,), "float32")
        with T.Kernel(1, threads=256):
            tx = T.get_thread_binding(0)
            S = T.alloc_shared((256,), "float32")
            R = T.alloc_shared((256,), "float32")
            S[tx] = A[tx]
            R[tx] = S[tx ^ 1]
            B[tx] = S[255 - tx] + R[tx ^ 2]
    block, own = _barriers(run(f.func))
    assert (block, len(own)) == (1, 1)
    a = np.arange(256, dtype=np.float32)
    report = check_stages(tsir.lower(f.func, "sm_90a"), [a, np.zeros_like(a)], target="sm_90a")
    assert report.ok, report.first_failure
    t = np.arange(256)
    np.testing.assert_array_equal(report.reference[1], a[255 - t] + a[(t ^ 2) ^ 1])


def test_without_free_barrier_ids_the_block_barrier_stays(monkeypatch: pytest.MonkeyPatch) -> None:
    import tsir.passes.thread_sync as ts

    monkeypatch.setattr(ts, "MAX_BARRIER_ID", 1)  # ids 1 and 2 would be needed
    block, own = _barriers(run(_exchange(256, lambda t: t ^ 1)))
    assert (block, len(own)) == (1, 0)


def test_warpgroup_barrier_ids_are_not_reused_by_later_named_barriers() -> None:
    """The ids a warpgroup barrier takes (one per warpgroup) count as used for the passes that
    pick ids after ThreadSync (InjectPingPong)."""
    from tsir.passes.thread_range import used_barrier_ids

    from tsir.stmt import KernelLaunch

    func = run(_exchange(384, lambda t: t ^ 3))
    (k,) = collect(func.body, KernelLaunch)
    assert {1, 2, 3} <= used_barrier_ids(k.body, k)


def _staged_store(transpose: bool) -> tsir.PrimFunc:
    """Y = X, 128 rows per block, through a shared tile that a TMA store writes out (256
    threads). Thread tx copies half a row: row tx // 2, or, with `transpose`, half a column of
    the transposed tile (so each warpgroup writes rows that both warpgroups' stores read)."""
    with T.prim_func("staged") as f:
        X = T.param("X", (256, 128), "float16")
        Y = T.param("Y", (256, 128), "float16")
        with T.Kernel(1, 2, threads=256) as (bx, by):
            tx = T.get_thread_binding(0)
            t = T.alloc_shared((128, 128), "float16")
            for j in T.serial(64):
                if transpose:
                    t[tx % 2 * 64 + j, tx // 2] = X[by * 128 + tx // 2, tx % 2 * 64 + j]
                else:
                    t[tx // 2, tx % 2 * 64 + j] = X[by * 128 + tx // 2, tx % 2 * 64 + j]
            T.copy(t, Y[by * 128, 0])
    return f.func


@pytest.mark.parametrize("transpose", [False, True])
def test_a_tma_store_epilogue_waits_only_for_its_warpgroup_when_it_wrote_its_rows(
    transpose: bool,
) -> None:
    """Each warpgroup's first thread stores its 64 rows of the tile. When each warpgroup wrote
    exactly those rows, its own barrier orders the writes before its store; when the tile is
    written transposed (warpgroup 0 writes columns 0..63 of every row), the barrier joins both
    warpgroups and TSIR_EXPLAIN says why."""
    func = _staged_store(transpose)
    lowered = tsir.lower(func, "sm_90a")
    block, own = _barriers(lowered["ThreadSync"])
    # None in the copy loop (each element is written by one thread, in one iteration), one
    # before the store.
    assert (block, len(own)) == ((1, 0) if transpose else (0, 1))
    said = [d.message for d in lowered.report if "cross warpgroups" in d.message]
    assert bool(said) == transpose, said
    x = (np.arange(256 * 128) % 251).astype(np.float16).reshape(256, 128)
    report = check_stages(lowered, [x, np.zeros_like(x)], target="sm_90a")
    assert report.ok, report.first_failure
    want = x.reshape(2, 128, 128).transpose(0, 2, 1).reshape(256, 128) if transpose else x
    np.testing.assert_array_equal(report.reference[1], want)


def test_ping_pong_takes_other_ids_than_the_warpgroup_barriers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A persistent ping-pong GEMM (two consumer warpgroups taking turns, InjectPingPong's named
    barriers) with a TMA-store epilogue (each warpgroup's own barriers, placed first by
    ThreadSync): the two sets of ids are disjoint, and every stage agrees with numpy."""
    import tsir.passes.warp_specialize as ws

    monkeypatch.setattr(ws, "PERSISTENT_CTAS", 1)  # one block walks both tiles
    M, N, K, bm, bn, bk = 256, 64, 128, 128, 64, 64
    with T.prim_func("pp_epilogue") as f:
        A = T.param("A", (M, K), "float16")
        B = T.param("B", (K, N), "float16")
        C = T.param("C", (M, N), "float16")
        with T.Kernel(T.ceildiv(N, bn), T.ceildiv(M, bm), threads=256, persistent=True) as (
            bx,
            by,
        ):
            A_s = T.alloc_shared((bm, bk), "float16")
            B_s = T.alloc_shared((bk, bn), "float16")
            C_f = T.alloc_fragment((bm, bn), "float32")
            C_t = T.alloc_shared((bm, bn), "float16")
            T.clear(C_f)
            for ko in T.Pipelined(T.ceildiv(K, bk), num_stages=2, pingpong=True):
                T.copy(A[by * bm, ko * bk], A_s)
                T.copy(B[ko * bk, bx * bn], B_s)
                T.gemm(A_s, B_s, C_f)
            T.copy(C_f, C_t)
            T.copy(C_t, C[by * bm, bx * bn])
    lowered = tsir.lower(f.func, "sm_90a")
    from tsir.passes.thread_range import used_barrier_ids

    from tsir.stmt import KernelLaunch

    def ids(stage: str) -> set[int]:
        (k,) = collect(lowered[stage].body, KernelLaunch)
        return used_barrier_ids(k.body, k)

    synced, final = ids("ThreadSync"), ids("InjectPingPong")
    _, own = _barriers(lowered["ThreadSync"])
    assert len(own) == 2, "the epilogue's barriers are the warpgroups' own"
    pingpong = final - synced
    assert len(pingpong) >= 2 and max(final) <= 15, (synced, final)
    rng = np.random.default_rng(5)
    a = rng.standard_normal((M, K)).astype(np.float16)
    b = rng.standard_normal((K, N)).astype(np.float16)
    report = check_stages(lowered, [a, b, np.full((M, N), np.nan, np.float16)], target="sm_90a")
    assert report.ok, report.first_failure
    want = (a.astype(np.float32) @ b.astype(np.float32)).astype(np.float16)
    np.testing.assert_allclose(report.reference[2], want, rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize(
    "threads, other, barriers",
    [(128, False, 0), (256, False, 0), (96, False, 0), (128, True, 2), (256, True, 2)],
)
def test_a_thread_that_rereads_only_its_own_elements_needs_no_barrier(
    threads: int, other: bool, barriers: int
) -> None:
    """Each thread writes four elements of S and reads them back in another order, in a loop
    over tiles: every conflicting access is the same thread's, so program order orders it and no
    barrier goes in, whatever the block. Reading the next thread's elements (`other`) needs the
    barriers again (between write and read, and at the loop head)."""
    n = 4 * threads
    with T.prim_func("own") as f:
        X = T.param("X", (3, n), "float32")
        Y = T.param("Y", (3, n), "float32")
        with T.Kernel(1, threads=threads):
            tx = T.get_thread_binding(0)
            S = T.alloc_shared((n,), "float32")
            for k in T.serial(3):
                for i in T.serial(4):
                    S[tx * 4 + i] = X[k, tx * 4 + i]
                for i in T.serial(4):
                    if other:
                        Y[k, tx * 4 + i] = S[(tx * 4 + 4 + (3 - i)) % n]
                    else:
                        Y[k, tx * 4 + i] = S[tx * 4 + (3 - i)]
    block, own = _barriers(run(f.func))
    assert block + len(own) == barriers
    x = np.arange(3 * n, dtype=np.float32).reshape(3, n)
    report = check_stages(tsir.lower(f.func, "sm_90a"), [x, np.zeros_like(x)], target="sm_90a")
    assert report.ok, report.first_failure
    j = np.arange(n)
    src = ((j // 4) * 4 + 4 + (3 - j % 4)) % n if other else (j // 4) * 4 + (3 - j % 4)
    np.testing.assert_array_equal(report.reference[1], x[:, src])


@pytest.mark.parametrize("where", ["if", "loop"])
def test_a_read_in_a_condition_or_a_bound_counts(where: str) -> None:
    """Found by the random programs: a shared element read in an `if`'s condition (or a loop's
    extent) by another thread than its writer is a read like any other: the barrier stays (the
    footprints used to see only the loads in stores and calls)."""
    with T.prim_func("f") as f:
        X = T.param("X", (32,), "float32")
        Y = T.param("Y", (32,), "float32")
        with T.Kernel(1, threads=32):
            tx = T.get_thread_binding(0)
            S = T.alloc_shared((32,), "float32")
            S[tx] = X[tx]
            if where == "if":
                with T.If(S[31 - tx] > 15.0):
                    Y[tx] = 1.0
            else:
                for _ in T.serial(T.cast(S[31 - tx], "int32") % 2):
                    Y[tx] = 1.0
    block, own = _barriers(run(f.func))
    assert block == 1 and not own


def test_an_access_through_a_view_keeps_the_barrier() -> None:
    """A view (T.view) of the tile written by each thread, the tile itself read by the next
    thread: the view's accesses are the tile's, and not enumerated, so the barrier stays."""
    with T.prim_func("f") as f:
        X = T.param("X", (64,), "float32")
        Y = T.param("Y", (64,), "float32")
        with T.Kernel(1, threads=64):
            tx = T.get_thread_binding(0)
            S = T.alloc_shared((8, 8), "float32")
            V = T.view(S, (64,))
            V[tx] = X[tx]
            Y[tx] = S[(tx + 1) % 64 // 8, (tx + 1) % 8]
    block, own = _barriers(run(f.func))
    assert block == 1 and not own
    x = np.arange(64, dtype=np.float32)
    report = check_stages(tsir.lower(f.func, "sm_90a"), [x, np.zeros_like(x)], target="sm_90a")
    assert report.ok, report.first_failure
    np.testing.assert_array_equal(report.reference[1], np.roll(x, -1))
