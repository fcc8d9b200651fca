"""InjectPingPong: the consumer loop WarpSpecialize marked takes turns at its wgmma issues (two
named barriers: W1 arrives first, each turn syncs on its own barrier and arrives on the other's,
W0 consumes the last arrival at the end), Before/Expected (CONVENTIONS 16); every refusal with
its message. The protocol's proof is checked over every interleaving, and the lowered programs
against the interpreter, in tests/hopper/test_ping_pong.py."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from tsir.passes import PassContext, get

import tsir
from tsir import T
from tsir.errors import UnsupportedError

SM90 = PassContext(tsir.Target.parse("sm_90a"))


def wg(fn: str, *args: object) -> None:
    T.evaluate(T.call_intrin("int32", f"tsir.wgmma.{fn}", *args))


def named(fn: str, bid: object, count: int = 256) -> None:
    op = "tsir.sync.named_barrier" if fn == "consumers" else f"tsir.mbarrier.named_barrier_{fn}"
    T.evaluate(T.call_intrin("int32", op, bid, count))


def kernel(
    marked: bool,
    *,
    turn_extra: Callable[[object], None] | None = None,
    trips: Callable[[object], object] | None = None,
    wrap: Callable[[object], object] | None = None,
    issue_twice: bool = False,
) -> tsir.PrimFunc:
    """A warp-specialized kernel as ThreadSync leaves it: producer threads [0, 128), consumers
    [128, 384) with a loop of one wgmma batch (two issues) between ordinary code. `marked`:
    WarpSpecialize's markers (the input); else the expected output. `turn_extra(tx)` adds a
    statement between the batch's two issues, `trips(tx)` makes the trip count, `wrap(tx)` puts
    the loop under `if wrap(tx)`, `issue_twice` adds a second batch after a wait (a turn that
    waits)."""
    with T.prim_func("f") as f:
        A = T.param("A", (384,), "float32")
        with T.Kernel(1, threads=384):
            tx = T.get_thread_binding(0)
            acc = T.alloc_local((32,), "float32")
            acc0 = T.call_intrin("handle", "address_of", acc[0])

            def batch() -> None:
                wg("wgmma_fence_operands<32>", acc0)
                wg("wgmma_fence")
                wg("wgmma_ss<tsir::kWgmmaF16, 64, 0, 0>", acc0, 0, 0)
                if turn_extra is not None:
                    turn_extra(tx)
                wg("wgmma_ss<tsir::kWgmmaF16, 64, 0, 0>", acc0, 0, 0)
                wg("wgmma_commit")

            def loop() -> None:
                n = trips(tx) if trips is not None else 4
                for _k in T.serial(n):  # type: ignore[arg-type]
                    acc[1] = acc[1] + 1.0
                    if not marked:
                        named("sync", T.if_then_else(tx >= 256, 4, 3))
                    batch()
                    if issue_twice:
                        wg("wgmma_wait<0>")
                        batch()
                    if not marked:
                        named("arrive", T.if_then_else(tx >= 256, 3, 4))
                    wg("wgmma_wait<0>")
                    acc[2] = acc[0] * 2.0

            def consumers() -> None:
                for i in T.serial(32):
                    acc[i] = 0.0
                if wrap is not None:
                    with T.If(wrap(tx)):
                        placed()
                else:
                    placed()
                A[tx] = acc[2]

            def placed() -> None:
                if marked:
                    with T.attr("pingpong_loop", 2):
                        loop()
                else:
                    loop()

            with T.If(tx < 128):
                A[tx] = 0.0
            with T.Else():
                named("consumers", 1)
                if marked:
                    with T.attr("pingpong_consumers", (128, 384, 3)):
                        consumers()
                else:
                    with T.If(tx >= 256):
                        named("arrive", 3)
                    consumers()
                    with T.If(tx < 256):
                        named("sync", 3)
    return f.func


def test_the_turn_spans_the_iterations_wgmma_and_the_ends_balance_the_barriers() -> None:
    """W1 arrives on B0 first; each iteration syncs on its own barrier before the batch (with
    the fences that open it) and arrives on the other's after the commit; W0 syncs on B0 last.
    B0, B1 = 3, 4: the first ids past the consumers' (1) and the producer's (2)."""
    out = get("InjectPingPong")(kernel(True), SM90)
    tsir.assert_structural_equal(out, kernel(False))


def test_the_barriers_come_after_every_id_the_kernel_already_uses() -> None:
    out = get("InjectPingPong")(kernel(True, turn_extra=lambda tx: named("sync", 5, 128)), SM90)
    text = str(out)
    assert 'named_barrier_arrive", 6, 256' in text and "T.if_then_else(tx >= 256, 7, 6)" in text


def test_nothing_to_do_without_markers() -> None:
    f = kernel(False)
    assert get("InjectPingPong")(f, SM90) is f


def test_a_turn_that_waits_for_its_own_results_is_applied_and_reported() -> None:
    ctx = PassContext(tsir.Target.parse("sm_90a"))
    out = get("InjectPingPong")(kernel(True, issue_twice=True), ctx)
    assert "named_barrier_arrive" in str(out)
    (d,) = ctx.report
    assert "waits for its own results (`tsir.wgmma.wgmma_wait<0>`)" in d.message
    assert "issue the iteration's gemms back to back" in d.message


def test_a_loop_without_wgmma_is_left_alone_and_reported() -> None:
    with T.prim_func("f") as f:
        A = T.param("A", (384,), "float32")
        with T.Kernel(1, threads=384):
            tx = T.get_thread_binding(0)
            with T.attr("pingpong_consumers", (128, 384, 3)):
                with T.attr("pingpong_loop", 2):
                    for k in T.serial(4):
                        A[tx] = A[tx] + T.cast(k, "float32")
    with T.prim_func("f") as g:
        A = T.param("A", (384,), "float32")
        with T.Kernel(1, threads=384):
            tx = T.get_thread_binding(0)
            for k in T.serial(4):
                A[tx] = A[tx] + T.cast(k, "float32")
    ctx = PassContext(tsir.Target.parse("sm_90a"))
    tsir.assert_structural_equal(get("InjectPingPong")(f.func, ctx), g.func)
    assert [d.message for d in ctx.report] == [
        "T.Pipelined(pingpong=True) over `k` is not applied: the loop issues no wgmma (its gemms "
        "run on mma.sync, or it has none), so there are no tensor-core turns to take"
    ]


@pytest.mark.parametrize(
    "kw, message",
    [
        (
            dict(trips=lambda tx: tx // 128 + 2),
            "its trip count `tx // 128 + 2` differs between threads",
        ),
        (
            dict(wrap=lambda tx: tx < 256),
            "it sits under `if tx < 256`, which differs between threads",
        ),
        (
            dict(turn_extra=lambda tx: named("consumers", 1)),
            "a barrier of both consumer warpgroups (`tsir.sync.named_barrier`) falls inside the "
            "turn",
        ),
        (
            dict(turn_extra=lambda tx: T.sync_threads()),
            "a barrier of both consumer warpgroups (`sync_threads`) falls inside the turn",
        ),
    ],
)
def test_refusals_name_the_loop_and_the_reason(kw: dict, message: str) -> None:
    with pytest.raises(UnsupportedError, match="T.Pipelined\\(pingpong=True\\) over `_k`") as e:
        get("InjectPingPong")(kernel(True, **kw), SM90)
    assert message in str(e.value)
    assert "[InjectPingPong]" in str(e.value)


def test_a_wgmma_under_a_thread_dependent_if_is_refused() -> None:
    def extra(tx: object) -> None:
        with T.If(tx % 2 == 0):  # type: ignore[operator]
            wg("wgmma_ss<tsir::kWgmmaF16, 64, 0, 0>", 0, 0, 0)

    with pytest.raises(UnsupportedError, match="a wgmma issue sits under `if tx % 2 == 0`"):
        get("InjectPingPong")(kernel(True, turn_extra=extra), SM90)


def test_no_named_barrier_left() -> None:
    with pytest.raises(UnsupportedError, match="needs two named barriers, but ids 15.. are past"):
        get("InjectPingPong")(kernel(True, turn_extra=lambda tx: named("sync", 14, 128)), SM90)
