"""InjectSoftwarePipeline: the copies of a `T.Pipelined` loop get a buffer per stage and run
asynchronously, stages ahead of their consumers (Before/Expected, CONVENTIONS 16). The loops'
meaning at every stage is checked against the interpreter in
test_inject_software_pipeline_producers.py."""

from __future__ import annotations

from typing import Any

import pytest
from tsir.passes import PassContext, get

import tsir
from tsir import T
from tsir.errors import BuildError
from tsir.stmt import For
from tsir.visitor import collect

SM80 = PassContext(tsir.Target.parse("sm_80"))


def run(func: tsir.PrimFunc, ctx: PassContext = SM80) -> tsir.PrimFunc:
    return get("InjectSoftwarePipeline")(func, ctx)


def staged_copy_loop(stages: int) -> tsir.PrimFunc:
    with T.prim_func("f") as f:
        A = T.param("A", (64, 256), "float32")
        B = T.param("B", (64, 256), "float32")
        with T.Kernel(1, threads=64):
            S = T.alloc_shared((64, 32), "float32")
            for k in T.Pipelined(8, num_stages=stages):
                T.copy(A[0, k * 32], S)
                T.copy(S, B[0, k * 32])
    return f.func


def test_two_stages_issue_the_next_tile_before_the_current_one_is_used() -> None:
    """Stage 0's copy runs before the loop; iteration k waits for tile k (and the barrier makes
    it visible to every thread), issues tile k + 1 into the other buffer, then computes on
    tile k. The staged copy's addresses are the loop body's with k := 0, not yet simplified."""
    with T.prim_func("f") as expected:
        A = T.param("A", (64, 256), "float32")
        B = T.param("B", (64, 256), "float32")
        with T.Kernel(1, threads=64):
            S = T.alloc_shared((2, 64, 32), "float32")
            k0 = tsir.Mul(T.int32(0), T.int32(32))
            with T.attr("pipeline_buffers", (S,)):
                T.tile_op("tl.Copy", src=A[:, k0 : k0 + 32], dst=S[0, :, :], async_copy=True)
                T.evaluate(T.call_intrin("int32", "tsir.async_copy.cp_async_commit"))
                for k in T.serial(8):
                    T.evaluate(T.call_intrin("int32", "tsir.async_copy.cp_async_wait<0>"))
                    T.sync_threads()
                    with T.If(k + 1 < 8):
                        T.tile_op(
                            "tl.Copy",
                            src=A[:, (k + 1) * 32 : (k + 1) * 32 + 32],
                            dst=S[(k + 1) % 2, :, :],
                            async_copy=True,
                        )
                    T.evaluate(T.call_intrin("int32", "tsir.async_copy.cp_async_commit"))
                    T.copy(S[k % 2, :, :], B[0, k * 32])
                T.evaluate(T.call_intrin("int32", "tsir.async_copy.cp_async_wait<0>"))

    tsir.assert_structural_equal(run(staged_copy_loop(2)), expected.func)


def test_one_stage_or_no_cp_async_leaves_a_serial_loop() -> None:
    """num_stages=1 asks for no overlap; a target without cp.async cannot overlap: the loop is the
    same loop, serial."""
    with T.prim_func("f") as expected:
        A = T.param("A", (64, 256), "float32")
        B = T.param("B", (64, 256), "float32")
        with T.Kernel(1, threads=64):
            S = T.alloc_shared((64, 32), "float32")
            for k in T.serial(8):
                T.copy(A[0, k * 32], S)
                T.copy(S, B[0, k * 32])

    tsir.assert_structural_equal(run(staged_copy_loop(1)), expected.func)


# -- sm_90: the mbarrier ring ----------------------------------------------------------------------

SM90 = PassContext(tsir.Target.parse("sm_90a"))


def _u32(load: object) -> object:
    return T.call_intrin(
        "uint32", "tsir.mbarrier.shared_u32", T.call_intrin("handle", "address_of", load)
    )


def _mb(fn: str, *args: object) -> None:
    T.evaluate(T.call_intrin("int32", f"tsir.mbarrier.{fn}", *args))


def test_tma_copies_make_an_mbarrier_ring() -> None:
    """On sm_90a a TMA-able copy makes the loop a ring: barriers `full`/`empty` per stage (thread 0
    initialises them: 1 arrival on full, one per warp on empty), the stage's bytes announced on
    full before its copies (which complete there), each iteration waiting full with the round's
    parity, and each warp releasing the stage after its lanes are done. The copy keeps its form,
    staged, with the barrier it completes on."""
    with T.prim_func("f") as expected:
        A = T.param("A", (64, 256), "float32")
        B = T.param("B", (64, 256), "float32")
        with T.Kernel(1, threads=64):
            tx = T.get_thread_binding(0)
            full = T.alloc_buffer((2,), "uint64", scope="shared", align=8)
            empty = T.alloc_buffer((2,), "uint64", scope="shared", align=8)
            S = T.alloc_buffer((2, 64, 32), "float32", scope="shared.dyn", align=1024)

            def produce(j: object, first: bool) -> None:
                with T.If(tx == 0):
                    stage = 0 if first else j % 2  # type: ignore[operator]
                    _mb("mbarrier_wait", _u32(empty[stage]), 1 if first else (j // 2 + 1) % 2)  # type: ignore[operator]
                    _mb("mbarrier_arrive_expect_tx", _u32(full[stage]), 64 * 32 * 4)
                lo = tsir.Mul(T.int32(0), T.int32(32)) if first else j * 32  # type: ignore[operator]
                bar = full[tsir.FloorMod(T.int32(0), T.int32(2))] if first else full[j % 2]  # type: ignore[operator]
                T.tile_op(
                    "tl.Copy",
                    src=A[:, lo : lo + 32],
                    dst=S[stage, :, :],
                    async_copy=True,
                    mbarrier=bar,
                )

            with T.attr("pipeline_buffers", (S,)):
                with T.attr("mbarrier_ring", (full, empty, 2, True)):
                    with T.If(tx == 0):
                        for s in T.unroll(2):
                            _mb("mbarrier_init", _u32(full[s]), 1)
                            _mb("mbarrier_init", _u32(empty[s]), 2)
                        _mb("mbarrier_init_fence")
                    T.sync_threads()
                    with T.attr("ring_produce", 0):
                        produce(0, True)
                    for k in T.serial(8):
                        with T.If(k + 1 < 8):
                            with T.attr("ring_produce", k + 1):
                                produce(k + 1, False)
                        _mb("mbarrier_wait", _u32(full[k % 2]), k // 2 % 2)
                        T.copy(S[k % 2, :, :], B[0, k * 32])
                        with T.attr("ring_release", k):
                            T.sync_warp()
                            with T.If(tx % 32 == 0):
                                _mb("mbarrier_arrive", _u32(empty[k % 2]))

    tsir.assert_structural_equal(run(staged_copy_loop(2), SM90), expected.func)


def test_a_copy_tma_cannot_take_keeps_the_loop_on_cp_async_and_says_why() -> None:
    with T.prim_func("f") as f:
        A = T.param("A", (64, 250), "float32")
        B = T.param("B", (64, 250), "float32")
        with T.Kernel(1, threads=64):
            S = T.alloc_shared((64, 32), "float32")
            for k in T.Pipelined(7, num_stages=2):
                T.copy(A[0, k * 32], S)
                T.copy(S, B[0, k * 32])
    ctx = PassContext(tsir.Target.parse("sm_90a"))
    out = get("InjectSoftwarePipeline")(f.func, ctx)
    assert "cp_async_commit" in str(out) and "mbarrier_" not in str(out)
    (d,) = ctx.report
    assert (
        "T.Pipelined over `k` stays on cp.async: T.copy into `S` is not a TMA load: a tensor "
        "map: the stride of `A`'s dimension 0 (250 elements = 1000 bytes)" in str(d)
    )


def test_tma_can_be_required_or_refused() -> None:
    """`tma=True` makes a copy TMA cannot take an error that names it and the rule (at the loop's
    line); `tma=False` keeps an eligible loop on cp.async."""
    import pytest

    from tsir.errors import UnsupportedError

    def loop(cols: int, tma: bool) -> tsir.PrimFunc:
        with T.prim_func("f") as f:
            A = T.param("A", (64, cols), "float32")
            B = T.param("B", (64, cols), "float32")
            with T.Kernel(1, threads=64):
                S = T.alloc_shared((64, 32), "float32")
                for k in T.Pipelined(7, num_stages=2, tma=tma):
                    T.copy(A[0, k * 32], S)
                    T.copy(S, B[0, k * 32])
        return f.func

    with pytest.raises(
        UnsupportedError,
        match=r"T.Pipelined over `k` asks for TMA loads \(tma=True\), but "
        r"T.copy into `S` is not a TMA load: a tensor map: the stride",
    ) as info:
        get("InjectSoftwarePipeline")(loop(250, True), SM90)
    assert "test_inject_software_pipeline.py" in str(info.value)
    out = get("InjectSoftwarePipeline")(loop(256, False), SM90)
    assert "cp_async_commit" in str(out) and "mbarrier_" not in str(out)


def test_a_pipelined_loop_inside_another_loop_keeps_cp_async_on_sm90() -> None:
    """Its ring's barriers would be initialised again, live, on every outer iteration (found by
    running the sm_80 pipeline tests for sm_90a): it stays on cp.async, and every stage agrees."""
    import numpy as np

    with T.prim_func("f") as f:
        A = T.param("A", (64, 96), "float16")
        B = T.param("B", (96, 64), "float16")
        C = T.param("C", (64, 64), "float32")
        with T.Kernel(1, threads=128):
            A_s = T.alloc_shared((32, 32), "float16")
            B_s = T.alloc_shared((32, 32), "float16")
            C_f = T.alloc_fragment((32, 32), "float32")
            for nb in T.serial(2):
                T.clear(C_f)
                for ko in T.Pipelined(3, num_stages=2):
                    T.copy(A[0, ko * 32], A_s)
                    T.copy(B[ko * 32, nb * 32], B_s)
                    T.gemm(A_s, B_s, C_f)
                T.copy(C_f, C[0, nb * 32])
    ctx = PassContext(tsir.Target.parse("sm_90a"))
    out = get("InjectSoftwarePipeline")(f.func, ctx)
    assert "cp_async_commit" in str(out) and "mbarrier_" not in str(out)
    assert [d.message for d in ctx.report] == [
        "T.Pipelined over `ko` stays on cp.async: it sits inside another loop"
    ]
    rng = np.random.default_rng(4)
    a = rng.standard_normal((64, 96)).astype(np.float16)
    b = rng.standard_normal((96, 64)).astype(np.float16)
    args = [a, b, np.zeros((64, 64), np.float32)]
    tsir.interpret.check_stages(f.func, args, target="sm_90a").raise_for_failure()


def _scheduled_gemm(**schedule: Any) -> tsir.PrimFunc:
    with T.prim_func("sched") as f:
        A = T.param("A", (64, 128), "float16")
        B = T.param("B", (128, 64), "float16")
        C = T.param("C", (64, 64), "float32")
        with T.Kernel(1, threads=128):
            A_s = T.alloc_shared((64, 32), "float16")
            B_s = T.alloc_shared((32, 64), "float16")
            acc = T.alloc_fragment((64, 64), "float32")
            T.clear(acc)
            for k in T.Pipelined(4, num_stages=2, **schedule):
                T.copy(A[0, k * 32], A_s)
                T.copy(B[k * 32, 0], B_s)
                T.gemm(A_s, B_s, acc)
            T.copy(acc, C)
    return f.func


def test_a_hand_written_schedule_is_kept_reported_and_changes_nothing() -> None:
    """TileLang's order=/stage=/group= are accepted (a schedule never changes the results): the
    loop is pipelined as without them, and the report says the schedule was not followed."""
    hinted = _scheduled_gemm(order=[-1, 0, 1], stage=[-1, 0, 1], group=[[0], [1], [2]])
    (loop,) = [x for x in collect(hinted.body, For) if x.annotation("num_stages") == 2]
    assert loop.annotation("schedule") == ((-1, 0, 1), (-1, 0, 1), ((0,), (1,), (2,)))
    lowered, plain = tsir.lower(hinted, "sm_80"), tsir.lower(_scheduled_gemm(), "sm_80")
    tsir.assert_structural_equal(lowered.module, plain.module)
    (line,) = [str(d) for d in lowered.report]
    assert "the hand-written schedule (order=, stage=, group=) is not followed" in line
    assert line.startswith(f"{__file__}:")
    ns: dict[str, Any] = {"T": T, "tsir": tsir}
    exec(str(hinted), ns)  # noqa: S102  (the printer's own output rebuilds the hint)
    tsir.assert_structural_equal(ns["f"].func, hinted)


@pytest.mark.parametrize(
    "schedule,message",
    [
        ({"order": [0, "x"]}, "order= must be a list of ints"),
        ({"stage": 1}, "stage= must be a list of ints"),
        ({"group": [[0], 1]}, "group= must be a list of ints"),
        ({"order": [0, 1], "stage": [0]}, "one entry per statement group: 2 vs 1"),
    ],
)
def test_a_malformed_schedule_is_refused_at_the_users_line(
    schedule: dict[str, Any], message: str
) -> None:
    with pytest.raises(BuildError, match=message) as e:
        _scheduled_gemm(**schedule)
    assert e.value.loc is not None and e.value.loc.filename == __file__
