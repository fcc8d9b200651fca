"""The extent of a T.Pipelined loop on sm_90a is judged as every later pass will see it: an
expression the analyzer proves constant builds the ring of that literal (InjectSoftwarePipeline
sizes it from the simplified extent, so Simplify cannot fold away the loop's produce step and
leave WarpSpecialize without one), a symbolic extent sizes the ring by its largest value, and a
provably empty loop is no ring. WarpSpecialize still splits a ring whose loop lost its produce
step (the prologue filled every stage). The interpreter runs these kernels in
tests/hopper/test_ring_extents.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from test_warp_specialize import ring_kernel
from tsir.passes import PassContext, get

import tsir
from tsir import T
from tsir.stmt import AttrStmt, For, IfThenElse, Stmt
from tsir.visitor import Mutator, collect

Extent = Callable[[Any], Any]


def gemm(extent: Extent, blocks: int = 1, stages: int = 2) -> tsir.PrimFunc:
    with T.prim_func("g") as f:
        A = T.param("A", (64, 192), "float16")
        B = T.param("B", (192, 64 * blocks), "float16")
        C = T.param("C", (64, 64 * blocks), "float16")
        with T.Kernel(blocks, threads=128) as bx:
            A_s = T.alloc_shared((64, 64), "float16")
            B_s = T.alloc_shared((64, 64), "float16")
            C_f = T.alloc_fragment((64, 64), "float32")
            T.clear(C_f)
            for ko in T.Pipelined(extent(bx), num_stages=stages):
                T.copy(A[0, ko * 64], A_s)
                T.copy(B[ko * 64, bx * 64], B_s)
                T.gemm(A_s, B_s, C_f)
            T.copy(C_f, C[0, bx * 64])
    return f.func


def _produce_marks(s: Any) -> list[Any]:
    return [a.value for a in collect(s, AttrStmt) if a.key == "ring_produce"]


def test_an_extent_provably_1_builds_the_ring_of_the_literal_1() -> None:
    """min(1, bx + 1) is 1 for every block: the pipeliner's output is the literal's (a ring of
    one stage whose loop produces its own iteration), and so is every later stage."""
    expr, lit = (
        tsir.lower(gemm(lambda bx: T.min(1, bx + 1)), "sm_90a"),
        tsir.lower(gemm(lambda bx: 1), "sm_90a"),
    )
    assert not expr.report and not lit.report
    for name in ("InjectSoftwarePipeline", "Simplify", "WarpSpecialize", "ThreadSync"):
        tsir.assert_structural_equal(expr[name], lit[name])
    ws = expr["WarpSpecialize"]
    assert "threads=256" in str(ws)
    (producer,) = [f for f in collect(ws, For) if f.loop_var.name == "ko_p"]
    assert len(_produce_marks(producer)) == 1


def test_an_extent_provably_constant_above_1_builds_the_literal_ring() -> None:
    expr, lit = (
        tsir.lower(gemm(lambda bx: T.min(3, bx + 3)), "sm_90a"),
        tsir.lower(gemm(lambda bx: 3), "sm_90a"),
    )
    assert not expr.report
    tsir.assert_structural_equal(expr["WarpSpecialize"], lit["WarpSpecialize"])


def test_a_symbolic_extent_sizes_the_ring_by_its_largest_value() -> None:
    """min(bx, 1) over 4 blocks is 0 or 1: a ring of one stage, whose loop keeps its produce step
    through Simplify (a ring of 2 would lose it: `k + 1 < min(bx, 1)` is false)."""
    lowered = tsir.lower(gemm(lambda bx: T.min(bx, 1), blocks=4), "sm_90a")
    assert not lowered.report, [str(d) for d in lowered.report]
    assert "mbar_full = T.alloc_buffer((1,)" in str(lowered["InjectSoftwarePipeline"])
    loops = [f for f in collect(lowered["Simplify"], For) if _produce_marks(f.body)]
    assert [str(f.extent) for f in loops] == ["T.min(bx, 1)"]
    assert "threads=256" in str(lowered["WarpSpecialize"])


def test_an_unbounded_symbolic_extent_keeps_the_asked_stages() -> None:
    lowered = tsir.lower(gemm(lambda bx: T.min(bx, 3), blocks=4, stages=3), "sm_90a")
    assert not lowered.report
    assert "mbar_full = T.alloc_buffer((3,)" in str(lowered["InjectSoftwarePipeline"])


def test_a_provably_empty_loop_is_no_ring_and_the_report_says_so() -> None:
    for extent in (lambda bx: 0, lambda bx: T.min(0, bx)):
        lowered = tsir.lower(gemm(extent), "sm_90a")
        assert [d.message for d in lowered.report] == [
            "T.Pipelined(num_stages=2) over `ko` runs unpipelined: it runs no iteration (its "
            "extent is never above 0)"
        ]
        assert "mbar_full" not in str(lowered.module)


class _OneIteration(Mutator):
    """ring_kernel's loop cut to one iteration and its produce step `if k < 3: produce(k + 1)`
    dropped, as Simplify folds it when the extent proves the guard false: the prologue's
    produce(0) fills the only stage the loop uses."""

    def visit_For(self, s: For) -> Stmt:
        if s.loop_var.name != "k":
            return self.generic_visit(s)
        body = [x for x in s.body.stmts if not _produce_marks(x)]  # type: ignore[attr-defined]
        return s.replace(extent=T.int32(1), body=tsir.stmt.seq(*body))


def test_a_ring_whose_loop_lost_its_produce_step_still_splits() -> None:
    f = _OneIteration().visit(ring_kernel(False))
    ctx = PassContext(tsir.Target.parse("sm_90a"))
    out = get("WarpSpecialize")(f, ctx)
    assert not ctx.report, [str(d) for d in ctx.report]
    (producer, consumers) = [
        a for a in collect(out, AttrStmt) if a.key == "thread_range"
    ]  # [0, 128) and [128, 256)
    assert producer.value[:2] == (0, 128) and consumers.value[:2] == (128, 256)
    assert [int(m) for m in _produce_marks(producer)] == [0]  # the prologue's step, moved
    assert not _produce_marks(consumers)
    one = next(i for i in collect(producer, IfThenElse) if str(i.cond) == "tx == 0")
    assert [int(m) for m in _produce_marks(one.then_case)] == [0]  # issued by one thread


def test_a_persistent_ring_without_a_produce_step_in_its_loop_stays_unsplit() -> None:
    from tsir.stmt import KernelLaunch

    class Persistent(Mutator):
        def visit_KernelLaunch(self, k: KernelLaunch) -> Stmt:
            return k.replace(grid=(T.int32(300),), body=AttrStmt("persistent", True, k.body))

    f = Persistent().visit(_OneIteration().visit(ring_kernel(False)))
    ctx = PassContext(tsir.Target.parse("sm_90a"))
    tsir.assert_structural_equal(get("WarpSpecialize")(f, ctx), f)
    (line,) = [d.message for d in ctx.report]
    assert "the ring's loop has no produce step" in line and "plain grid" in line
