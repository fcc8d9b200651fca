"""InjectSoftwarePipeline: the copies of a `T.Pipelined` loop get a buffer per stage and run
asynchronously, stages ahead of their consumers (Before/Expected, CONVENTIONS 16). The loops'
meaning at every stage is checked against the interpreter in
test_inject_software_pipeline_producers.py."""

from __future__ import annotations

import tsir
from tsir import T
from tsir.passes import PassContext, get

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
                T.tile_op("tl.Copy", src=A[:, k0:k0 + 32], dst=S[0, :, :], async_copy=True)
                T.evaluate(T.call_intrin("int32", "tsir.async_copy.cp_async_commit"))
                for k in T.serial(8):
                    T.evaluate(T.call_intrin("int32", "tsir.async_copy.cp_async_wait<0>"))
                    T.sync_threads()
                    with T.If(k + 1 < 8):
                        T.tile_op(
                            "tl.Copy", src=A[:, (k + 1) * 32:(k + 1) * 32 + 32],
                            dst=S[(k + 1) % 2, :, :], async_copy=True,
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
