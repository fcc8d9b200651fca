"""LayoutInference: give every fragment a register layout and gemm operand tiles a shared layout.

Requires: tile-level IR (before LowerTileOp). Guarantees: each kernel whose ops touch fragments or
gemm operands has its body wrapped in `AttrStmt("layout_map", ((buffer, layout, plan), ...))`, with
a Fragment for every `local.fragment` buffer and a (swizzled) Layout for each gemm operand tile.

Three stages, as in TileLang, each asking every tile op and `T.Parallel` nest (a `ParallelLoop`)
for its layouts through `infer_layout(args, level)`; the ops own the rules (tsir/tileop/):
STRICT (layouts the hardware fixes: a gemm accumulator, operand swizzles; user annotations come
first); COMMON (repeated over all ops until nothing changes: a T.Parallel nest that touches a
laid-out fragment lays out the other fragments it indexes the same way, a reduction lays out its
result from its source); FREE (the largest fragment still open, first used by op X, gets the
layout X chooses for it, tsir's row-group layout; then COMMON again, until nothing is open). Two
different layouts for one buffer are a conflict unless the new one provably contains the old;
otherwise a LayoutConflictError names both ops and both layouts.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from tsir.arith import Analyzer
from tsir.buffer import Buffer
from tsir.errors import LayoutConflictError, UnsupportedError
from tsir.expr import BufferLoad, const_value
from tsir.function import PrimFunc
from tsir.layout import Fragment, Layout, equivalent, prove_fragment_contains
from tsir.stmt import (
    Allocate,
    AttrStmt,
    BufferStore,
    DeclBuffer,
    For,
    ForKind,
    KernelLaunch,
    Stmt,
    TileOpStmt,
)
from tsir.tileop import InferLevel, LayoutFact, LayoutInferArgs, ParallelLoop, TileOperatorNode
from tsir.tileop.base import free_fragment_layouts, tensor_params
from tsir.tileop.planned_layouts import FragmentPlan
from tsir.visitor import Mutator, Visitor, collect
from tsir.warp_roles import WARP_ROLE_ATTR

from .infra import PassContext, register_pass

__all__ = ["LayoutInference", "LAYOUT_ATTR", "ANNOTATE_ATTR"]

LAYOUT_ATTR = "layout_map"
ANNOTATE_ATTR = "annotate_layout"


@dataclass
class _State:
    threads: int
    layouts: dict[Buffer, Layout] = field(default_factory=dict)
    origin: dict[Buffer, str] = field(default_factory=dict)
    plans: dict[Buffer, FragmentPlan] = field(default_factory=dict)
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

    def apply(self, facts: dict[Buffer, LayoutFact], op: str, *, strict: bool = False) -> bool:
        """Record an op's layouts; True when one was new."""
        changed = False
        for buf, fact in facts.items():
            if self.set(buf, fact.layout, op, strict=strict):
                if fact.plan is not None:
                    self.plans[buf] = fact.plan
                changed = True
        return changed


class _Collect(Visitor):
    """The tile ops and outermost T.Parallel nests of a kernel, in program order, and the
    user's layout annotations."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[TileOperatorNode] = []
        self.annotations: list[tuple[Buffer, Layout]] = []
        # Fragments read or written outside T.Parallel nests and tile ops, where every thread
        # runs the access.
        self.floating: dict[Buffer, None] = {}
        # The warp role (T.ws: threads [lo, hi)) each op runs in, when it runs in one: its
        # fragments are laid out over the role's threads.
        self.role: tuple[int, int] | None = None
        self.roles: dict[int, tuple[int, int]] = {}

    def add(self, op: TileOperatorNode) -> None:
        self.ops.append(op)
        if self.role is not None:
            self.roles[id(op)] = self.role

    def visit_BufferLoad(self, e: BufferLoad) -> None:
        if e.buffer.scope == "local.fragment":
            self.floating.setdefault(e.buffer)
        self.generic_visit(e)

    def visit_BufferStore(self, s: BufferStore) -> None:
        if s.buffer.scope == "local.fragment":
            self.floating.setdefault(s.buffer)
        self.generic_visit(s)

    def visit_TileOpStmt(self, s: TileOpStmt) -> None:
        self.add(s.op)

    def visit_For(self, s: For) -> None:
        if s.kind is ForKind.PARALLEL:
            self.add(ParallelLoop(s))
            return
        self.generic_visit(s)

    def visit_AttrStmt(self, s: AttrStmt) -> None:
        if s.key == ANNOTATE_ATTR:
            self.annotations.extend(s.value)
        if s.key == WARP_ROLE_ATTR:
            saved, self.role = self.role, tuple(s.value)  # type: ignore[assignment]
            try:
                self.generic_visit(s)
            finally:
                self.role = saved
            return
        self.generic_visit(s)


def infer_kernel(
    k: KernelLaunch, ctx: PassContext, params: frozenset[Buffer] | None = None
) -> _State | None:
    c = _Collect()
    c.visit(k.body)
    fragments = {a.buffer for a in collect(k.body, Allocate) if a.buffer.scope == "local.fragment"}
    st = _State(k.num_threads)
    args = LayoutInferArgs(
        ctx.target,
        k.num_threads,
        st.layouts,
        st.plans,
        Analyzer(),
        st.origin,
        explain_choice=lambda message, span: ctx.explain("LayoutInference", message, span),
        tensor_params=params,
    )
    # STRICT: user annotations, then what the hardware fixes.
    for buf, layout in c.annotations:
        if buf.scope in ("local", "local.var"):
            # TileLang programs annotate T.alloc_local buffers too; each thread holds its own
            # copy of those whole, whatever the annotation says.
            ctx.explain(
                "LayoutInference",
                f"T.annotate_layout of `{buf.name}` has no effect: it is a per-thread {buf.scope} "
                f"buffer (T.alloc_local), which every thread holds whole",
            )
            continue
        st.set(buf, layout, "T.annotate_layout", strict=True)
    _pin_viewed_shared(k.body, st)
    role_args = _RoleArgs(args, c.roles, k.num_threads)
    _check_roles(c, k.num_threads)
    for op in c.ops:
        st.apply(op.infer_layout(role_args(op), InferLevel.STRICT), op.describe(), strict=True)
    if not fragments and not st.layouts:
        return None
    # COMMON, then FREE for whatever is still open (in program order), then COMMON again.
    _propagate(c.ops, st, role_args)
    # FREE: the largest open fragment first (a data tile decides more than an accumulator of its
    # reductions does), then propagate; repeat until nothing is open.
    uses: dict[Buffer, list[TileOperatorNode]] = {}
    for op in c.ops:
        for buf in op.fragments():
            uses.setdefault(buf, []).append(op)
    first_use = {buf: ops[0] for buf, ops in uses.items()}
    order = list(first_use)
    while True:
        open_ = [b for b in first_use if b not in st.layouts]
        if not open_:
            break
        buf = max(open_, key=lambda b: (_size(b), -order.index(b)))
        user = first_use[buf]
        if buf in c.floating:
            # Every thread accesses it outside T.Parallel and tile ops, and nothing laid it out:
            # every thread holds all of it (LowerTileOp mirrors one laid out otherwise).
            frag = Fragment.fully_replicated(tuple(buf.shape), k.num_threads)
            st.apply({buf: LayoutFact(frag)}, "an access outside T.Parallel and tile ops")
            ctx.explain(
                "LayoutInference",
                f"fragment `{buf.name}` is accessed outside T.Parallel and tile ops, so every "
                f"thread holds all of it: {frag.local_size} element(s) per thread "
                f"({frag.local_size * buf.dtype.bytes} bytes)",
            )
            _propagate(c.ops, st, role_args)
            continue
        # The first user with an opinion chooses (a copy has none: any layout suits it).
        fact = None
        for candidate in uses[buf]:
            fact = candidate.infer_layout(role_args(candidate), InferLevel.FREE).get(buf)
            if fact is not None:
                user = candidate
                break
        if fact is None:
            fact = free_fragment_layouts([buf], role_args(user)).get(buf)
        if fact is None:
            raise UnsupportedError(
                f"fragment `{buf.name}` needs a constant 1-D or 2-D shape", where="LayoutInference"
            )
        st.apply({buf: fact}, f"the FREE stage (first used by {user.describe()})")
        _propagate(c.ops, st, role_args)
    # FREE for shared tiles nothing laid out: an op with a preference gives its layout (a TMA
    # store's source takes the swizzle it reads); the rest stay row-major.
    for op in c.ops:
        if not any(b.scope in _SHARED and b not in st.layouts for b in op.buffers()):
            continue
        facts = op.infer_layout(role_args(op), InferLevel.FREE)
        new = {b: f for b, f in facts.items() if b.scope in _SHARED and b not in st.layouts}
        if new:
            st.apply(new, f"the FREE stage ({op.describe()})")
    missing = sorted(b.name for b in fragments if b not in st.layouts)
    if missing:
        raise UnsupportedError(
            f"no layout could be inferred for fragment(s) {', '.join(missing)}",
            where="LayoutInference",
        )
    return st


def _pin_viewed_shared(body: Stmt, st: _State) -> None:
    """A shared buffer that is viewed (T.view), and each view of it, keeps the row-major layout:
    a swizzle applies to accesses of one buffer, and those through the other name would miss it."""
    viewed: set[Buffer] = set()
    for d in collect(body, DeclBuffer):
        if d.buffer.scope in _SHARED and d.base.scope in _SHARED:
            viewed.update((d.buffer, d.base))
    for buf in sorted(viewed, key=lambda b: b.name):
        old = st.layouts.get(buf)
        if old is not None and not _is_row_major(old):
            raise LayoutConflictError(
                f"shared buffer `{buf.name}` has a T.view alias and the annotated layout {old}; a "
                f"swizzled layout would apply to accesses of one of the two names only: drop the "
                f"annotation or the view",
                where="LayoutInference",
            )
        if old is None:
            shape = tuple(const_value(d) for d in buf.shape)
            st.set(
                buf, Layout.from_fn(shape, lambda *i: i), "a T.view of shared memory", strict=True
            )


_SHARED = ("shared", "shared.dyn")


def _is_row_major(layout: Layout) -> bool:
    shape = layout.const_input_shape()
    return shape is not None and equivalent(layout, Layout.from_fn(shape, lambda *i: i))


def _size(b: Buffer) -> int:
    n = 1
    for d in b.shape:
        n *= const_value(d) or 1
    return n


def _propagate(ops: list[TileOperatorNode], st: _State, args: _RoleArgs) -> None:
    """COMMON over every op, in program order, until no op adds a layout."""
    changed = True
    while changed:
        changed = False
        for op in ops:
            if st.apply(op.infer_layout(args(op), InferLevel.COMMON), op.describe()):
                changed = True


class _RoleArgs:
    """The inference arguments of an op: an op in a warp role runs in the role's threads only."""

    def __init__(self, args: LayoutInferArgs, roles: dict[int, tuple[int, int]], threads: int):
        self.args = args
        self.roles = roles
        self.by_count: dict[int, LayoutInferArgs] = {threads: args}

    def __call__(self, op: TileOperatorNode) -> LayoutInferArgs:
        role = self.roles.get(id(op))
        if role is None:
            return self.args
        n = role[1] - role[0]
        if n not in self.by_count:
            # The same layout map and plans: a layout found under one count is seen by all.
            self.by_count[n] = dataclasses.replace(self.args, num_threads=n)
        return self.by_count[n]


def _check_roles(c: _Collect, threads: int) -> None:
    """A fragment lives in the registers of the threads that run its ops: those of one warp role,
    or (outside roles) of the whole block. A fragment used in two is an error."""
    where: dict[Buffer, tuple[tuple[int, int], TileOperatorNode]] = {}
    for op in c.ops:
        role = c.roles.get(id(op), (0, threads))
        for buf in op.fragments():
            first = where.setdefault(buf, (role, op))
            if first[0] != role:

                def name(r: tuple[int, int]) -> str:
                    return "the whole block" if r == (0, threads) else f"warp role [{r[0]}, {r[1]})"

                raise UnsupportedError(
                    f"fragment `{buf.name}` is used by {first[1].describe()} in "
                    f"{name(first[0])} and by {op.describe()} in {name(role)}: a fragment lives "
                    f"in the registers of the threads that run its ops, so its ops must all run "
                    f"in one warp role (or all outside roles); copy it through shared memory",
                    where="LayoutInference",
                )


class _Kernels(Mutator):
    def __init__(self, ctx: PassContext, params: frozenset[Buffer]):
        super().__init__()
        self.ctx = ctx
        self.params = params

    def visit_KernelLaunch(self, k: KernelLaunch) -> Stmt:
        st = infer_kernel(k, self.ctx, self.params)
        if st is None:
            return k
        value = tuple((b, lay, st.plans.get(b)) for b, lay in st.layouts.items())
        return k.replace(body=AttrStmt(LAYOUT_ATTR, value, k.body))


@register_pass("LayoutInference")
def LayoutInference(func: PrimFunc, ctx: PassContext) -> PrimFunc:
    """Infer fragment and operand-tile layouts in three stages: strict, common, free."""
    return _Kernels(ctx, tensor_params(func)).visit(func)
