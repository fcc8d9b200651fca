"""ParallelLoop: a `T.Parallel` nest, driven by the passes like any tile op.

The IR keeps the nest as PARALLEL `For` loops (what the builder makes); LayoutInference and
LowerTileOp wrap each outermost nest in a `ParallelLoop` and call the op interface on it. It is not
in the registry: it never stands in a `TileOpStmt`.

Layouts (COMMON): the fragments the nest indexes with exactly its loop variables share one thread
mapping, so once one of them (the anchor) has a layout the others of its shape take it; a 1-D
fragment indexed by the row variable of a 2-D nest takes the anchor's per-row layout.

Lowerings, by what the nest touches:
- `split`: no fragment, or only fragments every thread holds whole that it reads or that are
  reducers (T.alloc_reducer): iterations are split over threads like a shared-memory nest; each
  thread reads its own copy, or accumulates its share of the iterations into its reducer copy;
- `replicated`: it writes fragments every thread holds whole that are not reducers (one value per
  row computed from reduction results, say): every copy must end up equal, so every thread runs
  every iteration for its registers, and thread 0 writes memory;
- `fragment`: it touches distributed fragments: each thread runs the elements it holds, on its
  registers; other fragments it indexes must hold what they are indexed with in the same thread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..buffer import Buffer, BufferRegion, Range
from ..errors import LayoutConflictError, UnsupportedError
from ..expr import EQ, BufferLoad, IntImm, PrimExpr, Var, const_value
from ..layout import Fragment, fragment_of
from ..layout.numeric import const_shape, evaluate_grid, grid
from ..node import node
from ..stmt import BufferStore, For, ForKind, Stmt
from ..structural import structural_equal
from ..visitor import Mutator, collect, substitute
from .base import (
    FRAGMENT,
    InferLevel,
    LayoutFact,
    LayoutInferArgs,
    LowerArgs,
    OpArgs,
    TileOperatorNode,
    requirement,
)
from .elementwise import PER_THREAD_SCOPES, lower_elementwise
from .fragment_lowering import guard_memory_writes, iterate_fragment
from .planned_layouts import row_fragment
from .replicated_layouts import projected_fragment, replication_cost

if TYPE_CHECKING:
    from ..arith import Analyzer

__all__ = ["ParallelLoop", "parallel_fragment_accesses"]


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
        if x.buffer.scope == FRAGMENT
    ]
    return loop_vars, accesses


@node
class ParallelLoop(TileOperatorNode):
    """The op view of the T.Parallel nest `nest` (its outermost PARALLEL loop)."""

    nest: For
    op_name: ClassVar[str] = "parallel"  # the value of LowerTileOp's `tile_op` marker

    # -- what it touches ------------------------------------------------------------------------
    def _accessed(self, cls: type) -> tuple[BufferRegion, ...]:
        bufs = dict.fromkeys(x.buffer for x in collect(self.nest, cls))
        return tuple(BufferRegion.full(b) for b in bufs)

    def reads(self) -> tuple[BufferRegion, ...]:
        return self._accessed(BufferLoad)

    def writes(self) -> tuple[BufferRegion, ...]:
        return self._accessed(BufferStore)

    def fragments(self) -> list[Buffer]:
        return [b for b, _ in parallel_fragment_accesses(self.nest)[1]]

    def describe(self) -> str:
        return f"T.Parallel over `{self.nest.loop_var.name}`"

    def title(self) -> str:
        loop_vars, _ = parallel_fragment_accesses(self.nest)
        return f"T.Parallel over `{', '.join(v.name for v in loop_vars)}`"

    # -- layout inference -----------------------------------------------------------------------
    def infer_layout(self, args: LayoutInferArgs, level: InferLevel) -> dict[Buffer, LayoutFact]:
        if level is not InferLevel.COMMON:
            return TileOperatorNode.infer_layout(self, args, level)
        loop_vars, accesses = parallel_fragment_accesses(self.nest)
        full = [b for b, idx in accesses if _indexed_by(idx, loop_vars)]
        anchor = next((b for b in full if b in args.layout_map), None)
        if anchor is None:
            return {}
        out: dict[Buffer, LayoutFact] = {}
        # 1-D fragments indexed by the nest's row variable hold one value per row: they take the
        # row layout of the anchor (what a row reduction of it would give).
        if len(loop_vars) == 2:
            for b, idx in accesses:
                if (
                    b not in args.layout_map
                    and b not in out
                    and len(idx) == 1
                    and idx[0] is loop_vars[0]
                ):
                    rows = row_fragment(args.plans.get(anchor))
                    if rows is not None:
                        out[b] = LayoutFact(rows)
        layout = args.layout_map[anchor]
        shape = [const_value(d) for d in layout.input_shape]
        for b in full:
            if b is anchor or b in out or shape != [const_value(d) for d in b.shape]:
                continue
            # Same indices in one nest: one thread mapping (LayoutInference checks a clash).
            out[b] = LayoutFact(layout, args.plans.get(anchor))
        # Fragments indexed otherwise (fewer loop variables, a serial variable): held by every
        # thread that runs an iteration reading them (replicated_layouts.py).
        written = {x.buffer for x in collect(self.nest, BufferStore)}
        for b, idx in accesses:
            if b in args.layout_map or b in out or _indexed_by(idx, loop_vars) or b in written:
                continue  # (a fragment written at fewer indices is a reduction: not here)
            if not isinstance(layout, Fragment):
                continue
            out[b] = LayoutFact(self._replicated(b, idx, loop_vars, layout, args))
        return out

    def _replicated(
        self,
        b: Buffer,
        idx: tuple[Any, ...],
        loop_vars: list[Var],
        anchor: Fragment,
        args: LayoutInferArgs,
    ) -> Fragment:
        frag = projected_fragment(anchor, loop_vars, b.shape, idx)
        how = "held by the threads that run the iterations reading each element"
        if frag is None:
            frag = Fragment.fully_replicated(tuple(b.shape), args.num_threads)
            how = "held whole by every thread (no cheaper replication follows the nest's layout)"
        if args.explain_choice is not None and frag.replicate_size > 1:
            text = ", ".join(str(i) for i in idx)
            args.explain_choice(
                f"{self.title()}: fragment `{b.name}[{text}]` is replicated {frag.replicate_size}x, "
                f"{how}: {replication_cost(frag, b.dtype.bytes)}",
                self.nest.span,
            )
        return frag

    # -- lowering helpers -----------------------------------------------------------------------
    def loops(self) -> tuple[list[For], Stmt]:
        loops: list[For] = []
        body: Stmt = self.nest
        while isinstance(body, For) and body.kind is ForKind.PARALLEL:
            loops.append(body)
            body = body.body
        return loops, body


def _indexed_by(indices: tuple[Any, ...], loop_vars: list[Var]) -> bool:
    return len(indices) == len(loop_vars) and all(i is v for i, v in zip(indices, loop_vars))


# -- which lowering: by the fragments the nest touches ----------------------------------------------


def _fragments_touched(op: ParallelLoop) -> set[Buffer]:
    return {
        x.buffer for x in collect(op.nest, (BufferLoad, BufferStore)) if x.buffer.scope == FRAGMENT
    }


def _held_whole(op: ParallelLoop, args: OpArgs) -> bool:
    return all(
        (layout := fragment_of(args.layout_map, b)) is not None
        and layout.replicate_size >= args.num_threads
        for b in _fragments_touched(op)
    )


def _replicated_writes(op: ParallelLoop, args: OpArgs) -> list[str]:
    written = {x.buffer for x in collect(op.nest, BufferStore) if x.buffer.scope == FRAGMENT}
    return sorted(b.name for b in written - getattr(args, "reducers", set()))


@requirement("its fragments are held whole, written only as reducers")
def _split_ok(op: ParallelLoop, args: OpArgs) -> str | None:
    if not _fragments_touched(op):
        return None
    if not _held_whole(op, args):
        return "it touches fragments spread over the threads"
    plain = _replicated_writes(op, args)
    return f"it writes the replicated fragment(s) {', '.join(plain)}" if plain else None


@requirement("it writes fragments every thread holds whole")
def _replicated_ok(op: ParallelLoop, args: OpArgs) -> str | None:
    bufs = _fragments_touched(op)
    if not bufs:
        return "it touches no fragment"
    if not _held_whole(op, args):
        return "it touches fragments spread over the threads"
    plain = _replicated_writes(op, args)
    if not plain:
        return "it writes no fragment but reducers"
    if bufs & getattr(args, "reducers", set()):
        return (
            f"it updates reducers and also writes the replicated fragment(s) {', '.join(plain)}: "
            f"reducer updates are split over threads, replicated fragments must be computed by "
            f"every thread; use two loops"
        )
    return None


@requirement("it touches fragments spread over the threads")
def _fragment_ok(op: ParallelLoop, args: OpArgs) -> str | None:
    if not _fragments_touched(op):
        return "it touches no fragment"
    return (
        "every fragment it touches is held whole by every thread" if _held_whole(op, args) else None
    )


def _nested(args: LowerArgs, s: Stmt, owned: bool = False) -> Stmt:
    assert args.lower_nested is not None, "LowerArgs.lower_nested is set by LowerTileOp"
    return args.lower_nested(s, owned)


@ParallelLoop.register_lowering("split", _split_ok)
def _lower_split(op: ParallelLoop, args: LowerArgs, analyzer: Analyzer) -> Stmt:
    loop_vars: list[Var] = []
    extents: list[PrimExpr] = []
    body: Stmt = op.nest
    while isinstance(body, For) and body.kind is ForKind.PARALLEL:
        if not isinstance(body.min, IntImm) or body.min.value != 0:
            body = body.replace(
                body=substitute(body.body, {body.loop_var: body.loop_var + body.min}),
                min=IntImm(0, body.extent.dtype),
            )
        loop_vars.append(body.loop_var)
        extents.append(body.extent)
        body = body.body
    body = _nested(args, body)
    if any(f.kind is ForKind.PARALLEL for f in collect(body, For)):
        raise UnsupportedError(
            "a T.Parallel nested under other statements of a T.Parallel", where="LowerTileOp"
        )
    buffers = {x.buffer for x in collect(body, (BufferLoad, BufferStore))}
    elem = max((b.dtype.bytes for b in buffers if b.scope not in ("local", "local.var")), default=4)
    # The first written buffer that is not per-thread decides how work is split over threads
    # (a reducer's register copy, rewritten by the nested lowering, is per-thread).
    stores = collect(body, BufferStore)
    shared = [
        x.buffer
        for x in (*stores, *collect(body, BufferLoad))
        if x.buffer.scope not in PER_THREAD_SCOPES
    ]
    dst = shared[0] if shared else (stores[0].buffer if stores else None)
    if dst is None:
        raise UnsupportedError("a T.Parallel loop that stores nothing", where="LowerTileOp")
    region = BufferRegion(dst, tuple(Range(IntImm(0), d) for d in dst.shape))
    stmt_body = body

    def make(coords: list[PrimExpr]) -> Stmt:
        return substitute(stmt_body, dict(zip(loop_vars, coords)))

    return lower_elementwise(region, extents, make, args, elem, loop_vars[0].name)


@ParallelLoop.register_lowering("replicated", _replicated_ok)
def _lower_replicated(op: ParallelLoop, args: LowerArgs, analyzer: Analyzer) -> Stmt:
    """Every thread runs the whole nest on its own copies; memory is written by thread 0."""
    loops, body = op.loops()
    thread0 = EQ(args.thread_var, IntImm(0, args.thread_var.dtype))
    out = guard_memory_writes(_nested(args, body), thread0)
    for f in reversed(loops):
        kind = ForKind.UNROLLED if const_value(f.extent) is not None else ForKind.SERIAL
        out = f.replace(kind=kind, body=out)
    return out


@ParallelLoop.register_lowering("fragment", _fragment_ok)
def _lower_fragment(op: ParallelLoop, args: LowerArgs, analyzer: Analyzer) -> Stmt:
    nest = op.nest
    loop_vars, accesses = parallel_fragment_accesses(nest)
    _, body = op.loops()
    body = _nested(args, body, owned=True)
    anchor_buf = next((b for b, idx in accesses if _indexed_by(idx, loop_vars)), None)
    if anchor_buf is None:
        raise UnsupportedError(
            f"T.Parallel over `{loop_vars[0].name}`: it reads fragments but indexes none of them with "
            f"exactly its loop variables, so no thread mapping follows from them",
            where="LowerTileOp",
        )
    anchor = args.layout_map[anchor_buf]
    assert isinstance(anchor, Fragment)
    where = op.title()
    _refuse_accumulation(body, loop_vars, anchor, args, where)
    for b, idx in accesses:
        if b is not anchor_buf and not (
            len(idx) == len(loop_vars) and args.layout_map[b].is_equal(anchor)
        ):
            _check_holders(anchor, anchor_buf, loop_vars, b, idx, args, where)
    others = [
        x.buffer for x in collect(body, (BufferLoad, BufferStore)) if x.buffer.scope != FRAGMENT
    ]
    lanes = 16 // max((b.dtype.bytes for b in others), default=16)

    def make(coords: list[PrimExpr], local: PrimExpr) -> Stmt:
        b = substitute(body, dict(zip(loop_vars, coords)))
        return _Rewrite(args, anchor, coords, local).visit(b)

    return iterate_fragment(
        anchor,
        args.thread_var,
        args.num_threads,
        make,
        max_lanes=max(1, lanes),
        # Replicated elements: every holder updates its registers, only the first writes memory.
        only_replica_zero="memory",
        name=loop_vars[0].name,
    )


def _refuse_accumulation(
    body: Stmt, loop_vars: list[Var], anchor: Fragment, args: LowerArgs, where: str
) -> None:
    """`s[i] = s[i] + x[i, j]`: iterations that differ in another loop variable update one
    element. Each thread updates its own copy with the iterations it runs, so the sum is right
    only when every thread holding a copy runs all of them (whole rows per thread); otherwise
    it would be a silent wrong result: refused."""
    reducers = getattr(args, "reducers", set())
    for st in collect(body, BufferStore):
        b = st.buffer
        if b.scope != FRAGMENT or b in reducers or _indexed_by(st.indices, loop_vars):
            continue
        used = {id(v) for i in st.indices for v in collect(i, Var)}
        if all(id(v) in used for v in loop_vars):
            continue
        same = [
            ld
            for ld in collect(st.value, BufferLoad)
            if ld.buffer is b
            and all(structural_equal(a, c) for a, c in zip(ld.indices, st.indices))
        ]
        if same and not _each_holder_runs_all(st.indices, loop_vars, anchor):
            text = ", ".join(str(i) for i in st.indices)
            raise UnsupportedError(
                f"{where}: `{b.name}[{text}]` accumulates over iterations that run in different "
                f"threads; reduce with T.reduce_sum/T.reduce_max (or T.alloc_reducer and "
                f"T.finalize_reducer)",
                where="LowerTileOp",
            )


def _each_holder_runs_all(indices: tuple[Any, ...], loop_vars: list[Var], anchor: Fragment) -> bool:
    """Every thread that runs an iteration updating an element runs every iteration updating it
    (by enumeration; False when the indices are not functions of the loop variables)."""
    shape = const_shape(anchor.input_shape)
    if shape is None or len(shape) != len(loop_vars):
        return False
    pts = grid((*shape, anchor.replicate_size), "fragment")
    env = dict(zip((*loop_vars, anchor.rep), pts))
    try:
        elem = np.zeros(pts[0].shape, dtype=np.int64)
        for i in indices:
            elem = elem * 4096 + np.broadcast_to(evaluate_grid(i, env), pts[0].shape)
    except UnsupportedError:
        return False
    thread = substitute(anchor.forward_thread, dict(zip(anchor.vars, loop_vars)))
    owner = np.broadcast_to(evaluate_grid(thread, env), pts[0].shape)
    flat = np.zeros(pts[0].shape, dtype=np.int64)
    for x, e in zip(pts[:-1], shape):
        flat = flat * e + x
    runs = np.unique(np.stack([elem, owner, flat], axis=1), axis=0)  # (element, thread, iteration)
    per_thread = np.unique(runs[:, :2], axis=0, return_counts=True)[1]
    per_elem = dict(
        zip(*np.unique(np.unique(np.stack([elem, flat], axis=1), axis=0)[:, 0], return_counts=True))
    )
    pairs = np.unique(runs[:, :2], axis=0)
    return all(int(c) == int(per_elem[int(e)]) for (e, _), c in zip(pairs, per_thread))


class _Rewrite(Mutator):
    """Fragment accesses -> register accesses, for the element held in register `local`."""

    def __init__(self, args: LowerArgs, anchor: Fragment, coords: list[PrimExpr], local: PrimExpr):
        super().__init__()
        self.args = args
        self.anchor = anchor
        self.coords = coords
        self.local = local

    def slot(self, buf: Buffer, indices: tuple[PrimExpr, ...]) -> PrimExpr:
        layout = self.args.layout_map[buf]
        if layout.is_equal(self.anchor) and all(a is b for a, b in zip(indices, self.coords)):
            return self.local
        (idx,) = layout.forward(indices)
        return idx

    def visit_BufferLoad(self, e: BufferLoad) -> PrimExpr:
        e = self.generic_visit(e)
        if e.buffer.scope != FRAGMENT:
            return e
        return BufferLoad(self.args.buffer_remap[e.buffer], (self.slot(e.buffer, e.indices),))

    def visit_BufferStore(self, s: BufferStore) -> Stmt:
        s = self.generic_visit(s)
        if s.buffer.scope != FRAGMENT:
            return s
        return BufferStore(
            self.args.buffer_remap[s.buffer], s.value, (self.slot(s.buffer, s.indices),)
        )


def _check_holders(
    anchor: Fragment,
    anchor_buf: Buffer,
    loop_vars: list[Var],
    buf: Buffer,
    indices: tuple[Any, ...],
    args: LowerArgs,
    where: str,
) -> None:
    """Every thread that holds anchor[i..] must hold buf[indices(i..)]."""
    layout = args.layout_map[buf]
    if not isinstance(layout, Fragment):
        return
    shape = const_shape(anchor.input_shape)
    if shape is None:
        raise UnsupportedError(f"{where}: the fragment of a T.Parallel nest needs a constant shape")
    pts = grid((*shape, anchor.replicate_size), "fragment")
    env = dict(zip((*loop_vars, anchor.rep), pts))
    thread = substitute(anchor.forward_thread, dict(zip(anchor.vars, loop_vars)))
    owner = np.broadcast_to(evaluate_grid(thread, env), pts[0].shape)
    idx = tuple(substitute(i, {}) for i in indices)
    held = np.zeros(pts[0].shape, dtype=bool)
    for r in range(layout.replicate_size):
        t = layout.thread_of(idx, r)
        held |= np.broadcast_to(evaluate_grid(t, env), pts[0].shape) == owner
    if not held.all():
        raise LayoutConflictError(
            f"{where}: `{buf.name}[{', '.join(str(i) for i in indices)}]` is not held by the "
            f"threads that hold `{anchor_buf.name}`: layouts {layout} and {anchor}",
            where="LowerTileOp",
        )
