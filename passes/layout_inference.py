"""LayoutInference: give every fragment a register layout and gemm operand tiles a shared layout.

Requires: tile-level IR (before LowerTileOp). Guarantees: each kernel whose ops touch fragments or
gemm operands has its body wrapped in `AttrStmt("layout_map", ((buffer, layout, plan), ...))`, with
a Fragment for every `local.fragment` buffer and a (swizzled) Layout for each gemm operand tile.

Three stages, as in TileLang: STRICT (layouts the hardware fixes: a gemm accumulator, operand
swizzles, user annotations); COMMON (propagate through a work queue: a T.Parallel nest that
touches a laid-out fragment lays out the other fragments it indexes the same way; a reduction lays
out its result from its source); FREE (a fragment nothing constrains gets tsir's row-group layout,
then COMMON runs again). Two different layouts for one buffer are a conflict unless the new one
provably contains the old; otherwise a LayoutConflictError names both ops and both layouts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tsir.buffer import Buffer
from tsir.errors import LayoutConflictError, UnsupportedError
from tsir.expr import BufferLoad, Var, const_value
from tsir.function import PrimFunc
from tsir.layout import Fragment, Layout, make_mma_c_fragment, prove_fragment_contains
from tsir.layout.swizzle import make_swizzled_layout
from tsir.stmt import AttrStmt, BufferStore, For, ForKind, KernelLaunch, Stmt, TileOpStmt
from tsir.tileop.gemm import Gemm, warp_partition
from tsir.tileop.planned_layouts import (
    MmaTile, RowGroup, plan_row_group, reduced_fragment, row_group_fragment, row_fragment,
)
from tsir.visitor import Mutator, Visitor, collect

from .infra import PassContext, register_pass

__all__ = ["LayoutInference", "LAYOUT_ATTR", "ANNOTATE_ATTR", "parallel_fragment_accesses"]

LAYOUT_ATTR = "layout_map"
ANNOTATE_ATTR = "annotate_layout"


def parallel_fragment_accesses(nest: For) -> tuple[list[Var], list[tuple[Buffer, tuple[Any, ...]]]]:
    """The loop vars of a T.Parallel nest and every (fragment, indices) it reads or writes."""
    loop_vars: list[Var] = []
    body: Stmt = nest
    while isinstance(body, For) and body.kind is ForKind.PARALLEL:
        loop_vars.append(body.loop_var)
        body = body.body
    accesses = [
        (x.buffer, x.indices)
        for x in collect(body, (BufferLoad, BufferStore))
        if x.buffer.scope == "local.fragment"
    ]
    return loop_vars, accesses


@dataclass
class _State:
    threads: int
    layouts: dict[Buffer, Layout] = field(default_factory=dict)
    origin: dict[Buffer, str] = field(default_factory=dict)
    plans: dict[Buffer, RowGroup] = field(default_factory=dict)
    strict: set[Buffer] = field(default_factory=set)

    def set(self, buf: Buffer, layout: Layout, op: str, *, strict: bool = False) -> bool:
        old = self.layouts.get(buf)
        if old is not None:
            if old.is_equal(layout):
                return False
            if (
                buf not in self.strict
                and isinstance(old, Fragment)
                and isinstance(layout, Fragment)
                and prove_fragment_contains(old, layout)
            ):
                pass  # the new layout holds every element where the old one did: it may replace it
            else:
                raise LayoutConflictError(
                    f"buffer `{buf.name}` gets two different layouts:\n"
                    f"  from {self.origin[buf]}: {old}\n  from {op}: {layout}",
                    where="LayoutInference",
                )
        self.layouts[buf] = layout
        self.origin[buf] = op
        if strict:
            self.strict.add(buf)
        return True


def _describe(op: Any) -> str:
    if isinstance(op, For):
        return f"T.Parallel over `{op.loop_var.name}`"
    return f"{type(op).__name__} (`{', '.join(sorted({r.buffer.name for r in (*op.reads(), *op.writes())}))}`)"


class _Collect(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.ops: list[Any] = []
        self.annotations: list[tuple[Buffer, Layout]] = []

    def visit_TileOpStmt(self, s: TileOpStmt) -> None:
        self.ops.append(s.op)

    def visit_For(self, s: For) -> None:
        if s.kind is ForKind.PARALLEL:
            self.ops.append(s)
            return
        self.generic_visit(s)

    def visit_AttrStmt(self, s: AttrStmt) -> None:
        if s.key == ANNOTATE_ATTR:
            self.annotations.extend(s.value)
        self.generic_visit(s)


def infer_kernel(k: KernelLaunch, ctx: PassContext) -> _State | None:
    c = _Collect()
    c.visit(k.body)
    fragments = {a.buffer for a in collect(k.body, _alloc_cls()) if a.buffer.scope == "local.fragment"}
    gemms = [op for op in c.ops if isinstance(op, Gemm)]
    if not fragments and not gemms and not c.annotations:
        return None
    st = _State(k.num_threads)
    # STRICT: user annotations, then what the tensor cores fix.
    for buf, layout in c.annotations:
        st.set(buf, layout, "T.annotate_layout", strict=True)
    for g in gemms:
        m, n, _ = g.mnk
        wm, wn = warp_partition(m, n, k.num_threads // 32, g.policy)
        st.set(g.C.buffer, make_mma_c_fragment(m, n, m // wm, n // wn), _describe(g), strict=True)
        st.plans[g.C.buffer] = MmaTile(m, n, wm, wn)
        for r, k_inner in ((g.A, not g.transpose_A), (g.B, g.transpose_B)):
            if r.buffer not in st.layouts:
                shape = tuple(const_value(d) for d in r.buffer.shape)
                st.set(r.buffer, make_swizzled_layout(shape, r.buffer.dtype, k_inner), _describe(g), strict=True)
    # COMMON, then FREE for whatever is still open (in program order), then COMMON again.
    _propagate(c.ops, st)
    # FREE: the largest open fragment first (a data tile decides more than an accumulator of its
    # reductions does), then propagate; repeat until nothing is open.
    first_use: dict[Buffer, Any] = {}
    for op in c.ops:
        for buf in _fragments_of(op):
            first_use.setdefault(buf, op)
    while True:
        open_ = [b for b in first_use if b not in st.layouts]
        if not open_:
            break
        buf = max(open_, key=lambda b: (_size(b), -list(first_use).index(b)))
        shape = tuple(const_value(d) for d in buf.shape)
        if None in shape or len(shape) > 2:
            raise UnsupportedError(f"fragment `{buf.name}` needs a constant 1-D or 2-D shape", where="LayoutInference")
        plan = plan_row_group(shape, st.threads, buf.dtype.bytes)  # type: ignore[arg-type]
        st.plans[buf] = plan
        st.set(buf, row_group_fragment(plan, len(shape)), f"the FREE stage (first used by {_describe(first_use[buf])})")
        _propagate(c.ops, st)
    missing = sorted(b.name for b in fragments if b not in st.layouts)
    if missing:
        raise UnsupportedError(f"no layout could be inferred for fragment(s) {', '.join(missing)}", where="LayoutInference")
    return st


def _size(b: Buffer) -> int:
    n = 1
    for d in b.shape:
        n *= const_value(d) or 1
    return n


def _fragments_of(op: Any) -> list[Buffer]:
    if isinstance(op, For):
        return [b for b, _ in parallel_fragment_accesses(op)[1]]
    return [r.buffer for r in (*op.reads(), *op.writes()) if r.buffer.scope == "local.fragment"]


def _propagate(ops: list[Any], st: _State) -> None:
    from tsir.tileop.reduce import Reduce

    changed = True
    while changed:
        changed = False
        for op in ops:
            if isinstance(op, For):
                loop_vars, accesses = parallel_fragment_accesses(op)
                full = [b for b, idx in accesses if len(idx) == len(loop_vars) and all(i is v for i, v in zip(idx, loop_vars))]
                anchor = next((b for b in full if b in st.layouts), None)
                if anchor is None:
                    continue
                # 1-D fragments indexed by the nest's row variable hold one value per row: they take
                # the row layout of the anchor (what a row reduction of it would give).
                if len(loop_vars) == 2:
                    for b, idx in accesses:
                        if b not in st.layouts and len(idx) == 1 and idx[0] is loop_vars[0]:
                            rows = row_fragment(st.plans.get(anchor))
                            if rows is not None and st.set(b, rows, _describe(op)):
                                changed = True
                for b in full:
                    if b is anchor:
                        continue
                    if [const_value(d) for d in st.layouts[anchor].input_shape] != [const_value(d) for d in b.shape]:
                        continue
                    # Same indices in one nest: one thread mapping. set() checks a clash.
                    if st.set(b, st.layouts[anchor], _describe(op)):
                        if anchor in st.plans:
                            st.plans[b] = st.plans[anchor]
                        changed = True
            elif isinstance(op, Reduce):
                src, dst = op.src.buffer, op.dst.buffer
                if src in st.layouts and dst not in st.layouts and dst.scope == "local.fragment":
                    plan = st.plans.get(src)
                    if isinstance(plan, MmaTile) and op.dim == 1 and plan.warps_n == 1:
                        st.set(dst, plan.row_fragment(), _describe(op))
                    elif isinstance(plan, RowGroup):
                        st.set(dst, reduced_fragment(plan, op.dim if plan.rows > 1 or len(src.shape) == 2 else 1), _describe(op))
                    else:
                        raise UnsupportedError(
                            f"reduce of `{src.name}`: its layout ({st.origin[src]}) is not one tsir "
                            f"can reduce yet (a gemm accumulator reduces along rows when the gemm uses "
                            f"policy='full_row'); copy it to a fragment laid out by tsir first",
                            where="LayoutInference",
                        )
                    changed = True


def _alloc_cls() -> Any:
    from tsir.stmt import Allocate

    return Allocate


class _Kernels(Mutator):
    def __init__(self, ctx: PassContext):
        super().__init__()
        self.ctx = ctx

    def visit_KernelLaunch(self, k: KernelLaunch) -> Stmt:
        st = infer_kernel(k, self.ctx)
        if st is None:
            return k
        value = tuple((b, lay, st.plans.get(b)) for b, lay in st.layouts.items())
        return k.replace(body=AttrStmt(LAYOUT_ATTR, value, k.body))


@register_pass("LayoutInference")
def LayoutInference(func: PrimFunc, ctx: PassContext) -> PrimFunc:
    """Infer fragment and operand-tile layouts in three stages: strict, common, free."""
    return _Kernels(ctx).visit(func)
