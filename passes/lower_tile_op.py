"""LowerTileOp: tile operators and `T.Parallel` nests become thread-level loops.

Requires: LayoutInference (every fragment has a layout in the kernel's `layout_map` attribute).
Guarantees: no TileOpStmt, PARALLEL loop, fragment buffer or layout attribute remains inside
kernels. Each op lowers itself (`TileOperatorNode.lower`, the first of its lowerings whose
requirements hold; a T.Parallel nest through `ParallelLoop`): element-wise work on shared/global
memory is spread over the block's threads with vector lanes innermost (VECTORIZED loops that
VectorizeLoop lowers); work on fragments runs in the thread that holds each element, on its
registers (a `local` array per fragment). This pass gives the ops their arguments (`LowerArgs`),
rewrites fragment accesses outside ops (only fragments every thread holds whole), spreads ops
under a thread-dependent `T.If` over the threads it selects, marks each op's code (`tile_op`) and
allocates the shared workspaces ops ask for at the kernel's top.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from tsir.arith import Analyzer
from tsir.buffer import Buffer, make_buffer
from tsir.errors import TSIRError, UnsupportedError
from tsir.expr import BufferLoad, Call, IntImm, PrimExpr
from tsir.function import PrimFunc
from tsir.layout import Layout, equivalent, fragment_of, require_fragment
from tsir.stmt import (
    Allocate,
    AttrStmt,
    BufferStore,
    Evaluate,
    For,
    ForKind,
    IfThenElse,
    KernelLaunch,
    Stmt,
    TileOpStmt,
    seq,
)
from tsir.tileop import LowerArgs, ParallelLoop, TileOperatorNode
from tsir.tileop.base import tensor_params
from tsir.tileop.fragment_lowering import fragment_local_buffer, iterate_fragment
from tsir.tileop.planned_layouts import FragmentPlan
from tsir.visitor import Mutator, Visitor, collect
from tsir.warp_roles import WARP_ROLE_ATTR

from .infra import PassContext, register_pass
from .layout_inference import ANNOTATE_ATTR, LAYOUT_ATTR
from .thread_range import (
    THREAD_RANGE_ATTR,
    NamedBarriers,
    ThreadRange,
    complement,
    has_tile_work,
    thread_range_of,
    varies_across_threads,
)

__all__ = ["LowerTileOp", "linear_thread_index", "SHARED_LAYOUT_ATTR", "TILE_OP_ATTR"]

SHARED_LAYOUT_ATTR = "shared_layout_map"
# T.alloc_reducer marks its buffer (AttrStmt value: the buffer) for the statements that follow.
REDUCER_ATTR = "reducer"
# Wraps the thread-level code of one tile op or T.Parallel nest (value: the op's name). The op's
# lowering writes each element of its destination from one thread and synchronizes its own
# internal phases; ThreadSync plans barriers between such units (and drops the markers).
TILE_OP_ATTR = "tile_op"


def linear_thread_index(k: KernelLaunch) -> PrimExpr:
    """threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z)."""
    tid: PrimExpr = k.thread_vars[-1]
    for v, n in zip(reversed(k.thread_vars[:-1]), reversed(k.threads[:-1])):
        tid = tid * n + v
    return tid


class _Lower(Mutator):
    def __init__(
        self,
        ctx: PassContext,
        kernel: KernelLaunch,
        layouts: dict[Buffer, Layout],
        plans: dict[Buffer, FragmentPlan],
        params: frozenset[Buffer] | None = None,
    ):
        super().__init__()
        self.kernel = kernel
        self.ctx = ctx
        remap = {
            b: fragment_local_buffer(b, require_fragment(layouts, b))
            for b in layouts
            if b.scope == "local.fragment"
        }
        self.workspaces: list[Buffer] = []
        self.reducers: set[Buffer] = set()
        # Fragments read outside T.Parallel and tile ops that not every thread holds: a copy in
        # shared memory, refreshed after each op that writes them.
        self.mirrors: dict[Buffer, Buffer] = {}
        for buf in _floating_reads(kernel.body):
            layout = fragment_of(layouts, buf)
            if layout is not None and layout.replicate_size < kernel.num_threads:
                self.mirrors[buf] = self.add_workspace(
                    f"{buf.name}_mirror", tuple(buf.shape), buf.dtype, "shared.dyn"
                )
                ctx.explain(
                    "LowerTileOp",
                    f"fragment `{buf.name}` is read outside T.Parallel and tile ops but spread over "
                    f"the threads: it is copied to shared memory after each op that writes it",
                )
        self.in_nest = 0
        self.args = LowerArgs(
            ctx.target,
            kernel.num_threads,
            layouts,
            plans,
            thread_var=linear_thread_index(kernel),
            buffer_remap=remap,
            add_workspace=self.add_workspace,
            reducers=self.reducers,
            lower_nested=self.lower_nested,
            tensor_params=params,
        )
        self.thread_vars = set(kernel.thread_vars)
        # The threads that run what is being lowered: all of them, or a range under a T.If.
        self.range = ThreadRange(0, kernel.num_threads)
        self.barrier_ids: dict[tuple[int, int], int] = {}
        self.role: tuple[int, int] | None = None  # the warp role (T.ws) being lowered
        self.analyzer = Analyzer()
        # Ops may prove facts about block and thread indices (a remote copy's bounds, say).
        for v, n in zip(kernel.block_vars, kernel.grid):
            self.analyzer.bind(v, IntImm(0, v.dtype), n)
        for v, t in zip(kernel.thread_vars, kernel.threads):
            self.analyzer.bind(v, IntImm(0, v.dtype), IntImm(t, v.dtype))

    def add_workspace(
        self,
        name: str,
        shape: tuple[int | PrimExpr, ...],
        dtype: Any,
        scope: str,
        align: int = 16,
    ) -> Buffer:
        name = f"{name}_{len(self.workspaces)}" if self.workspaces else name
        buf = make_buffer(name, shape, dtype, scope, align)
        self.workspaces.append(buf)
        return buf

    def visit_Allocate(self, s: Allocate) -> Stmt:
        local = self.args.buffer_remap.get(s.buffer)
        if local is not None:
            return Allocate(local, self.visit(s.body))
        if s.buffer.scope == "local.fragment":
            raise UnsupportedError(
                f"fragment `{s.buffer.name}` has no layout: run LayoutInference before LowerTileOp",
                where="LowerTileOp",
            )
        return self.generic_visit(s)

    def lower_nested(self, s: Stmt, owned: bool = False) -> Stmt:
        """Lower statements nested in an op (a T.Parallel body); with `owned`, the op rewrites
        their fragment accesses itself, so they are left as they are here."""
        if not owned:
            return self.visit(s)
        self.in_nest += 1
        try:
            return self.visit(s)
        finally:
            self.in_nest -= 1

    def _floating(
        self, buf: Buffer, indices: tuple[PrimExpr, ...], store: bool
    ) -> tuple[Buffer, tuple[PrimExpr, ...]]:
        """A fragment read or written outside T.Parallel and tile ops, by every thread: from its
        registers when every thread holds it whole, else (reads) from its shared mirror."""
        layout = fragment_of(self.args.layout_map, buf)
        if layout is not None and layout.replicate_size >= self.args.num_threads:
            return self.args.buffer_remap[buf], layout.forward(indices)
        mirror = self.mirrors.get(buf)
        if mirror is not None and not store:
            return mirror, indices
        raise UnsupportedError(
            f"fragment `{buf.name}` is written outside T.Parallel and tile ops, where every thread "
            f"runs the store, but its layout spreads it over the threads; write it in a T.Parallel "
            f"loop, or give it a layout every thread holds whole",
            where="LowerTileOp",
        )

    def visit_BufferLoad(self, e: Any) -> Any:
        e = self.generic_visit(e)
        if e.buffer.scope != "local.fragment" or self.in_nest:
            return e
        buf, idx = self._floating(e.buffer, e.indices, store=False)
        return e.replace(buffer=buf, indices=idx)

    def visit_BufferStore(self, s: Any) -> Any:
        s = self.generic_visit(s)
        if s.buffer.scope != "local.fragment" or self.in_nest:
            return s
        buf, idx = self._floating(s.buffer, s.indices, store=True)
        return s.replace(buffer=buf, indices=idx)

    def _mirror_updates(self, op: TileOperatorNode) -> list[Stmt]:
        """After an op that writes a mirrored fragment: its first holders store it into the
        mirror (a unit of its own: ThreadSync orders the reads after it)."""
        out: list[Stmt] = []
        for r in op.writes():
            mirror = self.mirrors.get(r.buffer)
            if mirror is None:
                continue
            local = self.args.buffer_remap[r.buffer]

            def store(
                coords: list[PrimExpr], slot: PrimExpr, m: Buffer = mirror, reg: Buffer = local
            ) -> Stmt:
                return BufferStore(m, BufferLoad(reg, (slot,)), tuple(coords))

            layout = require_fragment(self.args.layout_map, r.buffer)
            body = iterate_fragment(
                layout,
                self.args.thread_var,
                self.args.num_threads,
                store,
                only_replica_zero=True,
                name="m",
            )
            out.append(AttrStmt(TILE_OP_ATTR, "mirror", body))
        return out

    def visit_AttrStmt(self, s: AttrStmt) -> Stmt:
        if s.key in (LAYOUT_ATTR, ANNOTATE_ATTR):
            return self.visit(s.body)
        if s.key == WARP_ROLE_ATTR:
            return self._warp_role(s)
        if s.key == REDUCER_ATTR:
            self.reducers.add(s.value)
            return self.visit(s.body)
        return self.generic_visit(s)

    def visit_TileOpStmt(self, s: TileOpStmt) -> Stmt:
        return self._lower_op(s.op, s.op.op_name, s.span)

    def visit_For(self, s: For) -> Stmt:
        if s.kind is not ForKind.PARALLEL:
            return self.generic_visit(s)
        return self._lower_op(ParallelLoop(s), "T.Parallel", s.span)

    def _lower_op(self, op: TileOperatorNode, what: str, span: Any) -> Stmt:
        """The op's thread-level code, spread over the threads that run it, marked as one unit."""
        if op.spread() == "block":
            self._check_range(op, what)
        if op.fragments() and not self.args.layout_map:
            raise UnsupportedError(
                f"{type(op).__name__}: fragment buffers need LayoutInference to run first",
                where="LowerTileOp",
            )

        def explain(message: str) -> None:
            self.ctx.explain("LowerTileOp", message, span)

        args = dataclasses.replace(self.args, explain=explain)
        try:
            out = self.visit(op.lower(args, self.analyzer))
        except TSIRError as e:
            if e.loc is None and span is not None:  # name the user's line of the op that failed
                e.loc = span
                e.args = (e._render(),)
            raise
        unit: Stmt = AttrStmt(TILE_OP_ATTR, op.op_name, self._in_range_barriers(out, what))
        updates = self._mirror_updates(op) if self.mirrors else []
        return seq(unit, *updates) if updates else unit

    def _warp_role(self, s: AttrStmt) -> Stmt:
        """`T.ws(...)`: its body runs in the role's threads, which its tile ops are spread over
        (LayoutInference laid its fragments out over them); the marker stays for ThreadSync."""
        lo, hi = s.value
        branch = s.body
        assert isinstance(branch, IfThenElse) and branch.else_case is None
        saved = self.role
        self.role = (lo, hi)
        try:
            then_case = self._in_range(ThreadRange(lo, hi), branch.then_case)
        finally:
            self.role = saved
        return s.replace(body=branch.replace(then_case=then_case))

    def _check_range(self, op: TileOperatorNode, what: str) -> None:
        if self.range.lo == 0 and self.range.hi >= self.kernel.num_threads:
            return
        if self.role == (self.range.lo, self.range.hi):
            return  # a warp role: LayoutInference laid its fragments out over its threads
        bufs = {r.buffer for r in (*op.reads(), *op.writes())}
        frags = sorted(b.name for b in bufs if b.scope == "local.fragment")
        if frags:
            raise UnsupportedError(
                f"{what} under a T.If that runs in threads [{self.range.lo}, {self.range.hi}) of "
                f"{self.kernel.num_threads} touches fragment(s) {', '.join(frags)}, which are laid out "
                f"over all the block's threads; move it out of the T.If",
                where="LowerTileOp",
            )

    def _in_range_barriers(self, out: Stmt, what: str) -> Stmt:
        if self.range.count == self.kernel.num_threads:
            return out
        return NamedBarriers(self.range, what).visit(out)

    def visit_IfThenElse(self, s: IfThenElse) -> Stmt:
        if not varies_across_threads(s.cond, self.thread_vars) or not (
            has_tile_work(s.then_case) or has_tile_work(s.else_case)
        ):
            return self.generic_visit(s)
        tid = self.kernel.thread_vars[0] if len(self.kernel.thread_vars) == 1 else None
        rng = thread_range_of(s.cond, tid, self.range) if tid is not None else None
        if rng is None:
            raise UnsupportedError(
                f"a tile op under `T.If({s.cond})`: the condition differs between the block's threads "
                f"but does not select a range of them (`tx < c`, `tx >= c`, or both), so tsir cannot "
                f"spread the op over the threads that run it",
                where="LowerTileOp",
            )
        then_case = self._in_range(rng, s.then_case)
        else_case = s.else_case
        if else_case is not None:
            if has_tile_work(else_case):
                rest = complement(rng, self.range)
                if rest is None:
                    raise UnsupportedError(
                        f"a tile op in the else branch of `T.If({s.cond})`: the threads it runs in are "
                        f"not one range",
                        where="LowerTileOp",
                    )
                else_case = self._in_range(rest, else_case)
            else:
                else_case = self.visit(else_case)
        return IfThenElse(s.cond, then_case, else_case)

    def _in_range(self, rng: ThreadRange, body: Stmt) -> Stmt:
        if rng.count <= 0:
            return self.visit(body)  # no thread runs it; keep it well-formed
        if rng.count < self.kernel.num_threads:
            rid = self.barrier_ids.setdefault((rng.lo, rng.hi), len(self.barrier_ids) + 1)
            if rid > 15:
                raise UnsupportedError(
                    "more than 15 distinct thread ranges run tile ops", where="LowerTileOp"
                )
            rng = ThreadRange(rng.lo, rng.hi, rid)
        saved_args, saved_range = self.args, self.range
        tid = self.kernel.thread_vars[0]
        self.args = dataclasses.replace(
            self.args, thread_var=tid - rng.lo if rng.lo else tid, num_threads=rng.count
        )
        self.range = rng
        try:
            out = self.visit(body)
        finally:
            self.args, self.range = saved_args, saved_range
        return AttrStmt(THREAD_RANGE_ATTR, (rng.lo, rng.hi, rng.barrier), out)


class _Kernels(Mutator):
    def __init__(self, ctx: PassContext, params: frozenset[Buffer]):
        super().__init__()
        self.ctx = ctx
        self.params = params

    def visit_KernelLaunch(self, k: KernelLaunch) -> Stmt:
        _check_explicit_hopper(k, self.ctx)
        layouts: dict[Buffer, Any] = {}
        plans: dict[Buffer, Any] = {}
        if isinstance(k.body, AttrStmt) and k.body.key == LAYOUT_ATTR:
            for buf, layout, plan in k.body.value:
                layouts[buf] = layout
                if plan is not None:
                    plans[buf] = plan
        lower = _Lower(self.ctx, k, layouts, plans, self.params)
        body = lower.visit(k.body)
        for ws in reversed(lower.workspaces):
            body = Allocate(ws, body)
        # Shared tiles with a non-trivial layout (gemm operand swizzles) keep it, for
        # LowerSharedLayout to apply once accesses are vectorized.
        shared = tuple(
            (b, lay)
            for b, lay in layouts.items()
            if b.scope in ("shared", "shared.dyn") and not _row_major(lay)
        )
        if shared:
            body = AttrStmt(SHARED_LAYOUT_ATTR, shared, body)
        return k.replace(body=body)


def _check_explicit_hopper(k: KernelLaunch, ctx: PassContext) -> None:
    """Warp roles, setmaxnreg and explicit TMA loads (TileLang's hand-specialized Hopper programs)
    need sm_90a: a clear error with the user's line elsewhere."""
    if ctx.target.has_wgmma:
        return
    what = None
    for a in collect(k.body, AttrStmt):
        if a.key == WARP_ROLE_ATTR:
            what = ("a warp role (T.ws)", a.span)
            break
    if what is None:
        for t in collect(k.body, TileOpStmt):
            if t.op.op_name == "tl.TmaCopy":
                what = ("T.tma_copy", t.span)
                break
    if what is None:
        for e in collect(k.body, Evaluate):
            if isinstance(e.value, Call) and e.value.op.startswith("tsir.mbarrier.setmaxnreg"):
                what = ("T.set_max_nreg", e.span)
                break
    if what is not None:
        raise UnsupportedError(
            f"{what[0]} in kernel `{k.name}` needs sm_90a (warpgroup roles, setmaxnreg and "
            f"explicit TMA loads are Hopper features); the target is {ctx.target}",
            loc=what[1],
            where="LowerTileOp",
        )


def _floating_reads(body: Stmt) -> list[Buffer]:
    """Fragments loaded outside T.Parallel nests and tile ops (in order of first appearance)."""
    found: dict[Buffer, None] = {}

    class _Scan(Visitor):
        def visit_For(self, s: For) -> None:
            if s.kind is not ForKind.PARALLEL:
                self.generic_visit(s)

        def visit_TileOpStmt(self, s: TileOpStmt) -> None:
            return

        def visit_BufferLoad(self, e: BufferLoad) -> None:
            if e.buffer.scope == "local.fragment":
                found.setdefault(e.buffer)
            self.generic_visit(e)

    _Scan().visit(body)
    return list(found)


def _row_major(layout: Layout) -> bool:
    """The identity layout (a viewed shared buffer keeps it): nothing for LowerSharedLayout."""
    shape = layout.const_input_shape()
    return shape is not None and equivalent(layout, Layout.from_fn(shape, lambda *i: i))


@register_pass("LowerTileOp")
def LowerTileOp(func: PrimFunc, ctx: PassContext) -> PrimFunc:
    """Lower tile operators and T.Parallel nests to thread-level loops."""
    return _Kernels(ctx, tensor_params(func)).visit(func)
