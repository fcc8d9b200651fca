"""LowerTileOp's half for fragments: T.Parallel nests, copies and fills over register tiles.

Each thread loops over its own registers of the nest's layout (`iterate_fragment`), so a fragment
element is read or written only by a thread that holds it; other fragments indexed in the nest
must hold what they are indexed with in that same thread (checked, LayoutConflictError if not).
"""

from __future__ import annotations

from typing import Any

from tsir.buffer import Buffer, BufferRegion
from tsir.errors import LayoutConflictError, UnsupportedError
from tsir.expr import BufferLoad, IntImm, PrimExpr, Var, cast, const_value
from tsir.layout import Fragment
from tsir.stmt import BufferStore, For, ForKind, Stmt
from tsir.tileop import LowerArgs
from tsir.tileop.copy import non_unit_axes
from tsir.tileop.fragment_lowering import iterate_fragment
from tsir.visitor import Mutator, collect, substitute

from .layout_inference import parallel_fragment_accesses

__all__ = ["lower_fragment_nest", "lower_fragment_copy", "lower_fragment_fill", "touches_fragment"]


def touches_fragment(x: Any) -> bool:
    return any(n.buffer.scope == "local.fragment" for n in collect(x, (BufferLoad, BufferStore)))


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
        e = self.generic_visit(e)  # type: ignore[assignment]
        if e.buffer.scope != "local.fragment":
            return e
        return BufferLoad(self.args.buffer_remap[e.buffer], (self.slot(e.buffer, e.indices),))

    def visit_BufferStore(self, s: BufferStore) -> Stmt:
        s = self.generic_visit(s)  # type: ignore[assignment]
        if s.buffer.scope != "local.fragment":
            return s
        return BufferStore(self.args.buffer_remap[s.buffer], s.value, (self.slot(s.buffer, s.indices),))


def _check_holders(anchor: Fragment, anchor_buf: Buffer, loop_vars: list[Var], buf: Buffer, indices: tuple[Any, ...], args: LowerArgs, where: str) -> None:
    """Every thread that holds anchor[i..] must hold buf[indices(i..)]."""
    layout = args.layout_map[buf]
    if not isinstance(layout, Fragment):
        return
    import numpy as np

    from tsir.layout.numeric import evaluate_grid, grid

    shape = tuple(const_value(e) for e in anchor.input_shape)
    pts = grid((*shape, anchor.replicate_size), "fragment")
    env = dict(zip((*loop_vars, anchor.rep), pts))
    owner = np.broadcast_to(evaluate_grid(substitute(anchor.forward_thread, dict(zip(anchor.vars, loop_vars))), env), pts[0].shape)
    idx = tuple(substitute(i, {}) for i in indices)
    held = np.zeros(pts[0].shape, dtype=bool)
    for r in range(layout.replicate_size):
        t = layout.thread_of(idx, r)
        held |= np.broadcast_to(evaluate_grid(t, env), pts[0].shape) == owner
    if not held.all():
        raise LayoutConflictError(
            f"{where}: `{buf.name}[{', '.join(str(i) for i in indices)}]` is not held by the threads that hold "
            f"`{anchor_buf.name}`: layouts {layout} and {anchor}",
            where="LowerTileOp",
        )


def lower_fragment_nest(nest: For, args: LowerArgs, visit: Any) -> Stmt:
    loop_vars, accesses = parallel_fragment_accesses(nest)
    body: Stmt = nest
    for _ in loop_vars:
        body = body.body  # type: ignore[attr-defined]
    body = visit(body)
    anchor_buf = next(
        (b for b, idx in accesses if len(idx) == len(loop_vars) and all(i is v for i, v in zip(idx, loop_vars))),
        None,
    )
    if anchor_buf is None:
        raise UnsupportedError(
            f"T.Parallel over `{loop_vars[0].name}`: it reads fragments but indexes none of them with "
            f"exactly its loop variables, so no thread mapping follows from them",
            where="LowerTileOp",
        )
    anchor = args.layout_map[anchor_buf]
    where = f"T.Parallel over `{', '.join(v.name for v in loop_vars)}`"
    for b, idx in accesses:
        if b is not anchor_buf and not (len(idx) == len(loop_vars) and args.layout_map[b].is_equal(anchor)):
            _check_holders(anchor, anchor_buf, loop_vars, b, idx, args, where)
    others = [x.buffer for x in collect(body, (BufferLoad, BufferStore)) if x.buffer.scope != "local.fragment"]
    lanes = 16 // max((b.dtype.bytes for b in others), default=16)

    def make(coords: list[PrimExpr], local: PrimExpr) -> Stmt:
        b = substitute(body, dict(zip(loop_vars, coords)))
        return _Rewrite(args, anchor, coords, local).visit(b)

    return iterate_fragment(
        anchor, args.thread_var, args.num_threads, make, max_lanes=max(1, lanes),
        # Replicated elements: every holder updates its registers, only the first writes memory.
        only_replica_zero="memory", name=loop_vars[0].name,
    )


def lower_fragment_copy(src: BufferRegion, dst: BufferRegion, args: LowerArgs, atomic: bool = False) -> Stmt:
    frag, other = (src, dst) if src.buffer.scope == "local.fragment" else (dst, src)
    if any(const_value(r.min) != 0 for r in frag.region) or [const_value(e) for e in frag.extents] != [const_value(d) for d in frag.buffer.shape]:
        raise UnsupportedError(f"T.copy: a fragment side (`{frag.buffer.name}`) must be the whole fragment", where="LowerTileOp")
    layout = args.layout_map[frag.buffer]
    local_buf = args.buffer_remap[frag.buffer]
    if other.buffer.scope == "local.fragment":
        if not args.layout_map[other.buffer].is_equal(layout):
            raise LayoutConflictError(
                f"T.copy between fragments `{src.buffer.name}` and `{dst.buffer.name}` with different layouts",
                where="LowerTileOp",
            )
        l = Var("l")
        value: PrimExpr = BufferLoad(args.buffer_remap[src.buffer], (l,))
        if value.dtype != dst.buffer.dtype:
            value = cast(dst.buffer.dtype, value)
        return For(l, IntImm(0), IntImm(layout.local_size), ForKind.UNROLLED, BufferStore(args.buffer_remap[dst.buffer], value, (l,)))
    axes = non_unit_axes(other)
    frag_axes = non_unit_axes(frag)

    def make(coords: list[PrimExpr], local: PrimExpr) -> Stmt:
        idx = list(other.mins)
        for d, c in zip(axes, (coords[a] for a in frag_axes)):
            idx[d] = idx[d] + c
        if frag is src:
            v: PrimExpr = BufferLoad(local_buf, (local,))
            if atomic:
                from tsir.tileop.atomic_scan import atomic_add_stmt

                return atomic_add_stmt(BufferLoad(dst.buffer, tuple(idx)), v)
            if v.dtype != dst.buffer.dtype:
                v = cast(dst.buffer.dtype, v)
            return BufferStore(dst.buffer, v, tuple(idx))
        v = BufferLoad(src.buffer, tuple(idx))
        if v.dtype != local_buf.dtype:
            v = cast(local_buf.dtype, v)
        return BufferStore(local_buf, v, (local,))

    lanes = 1 if atomic else 16 // max(src.buffer.dtype.bytes, dst.buffer.dtype.bytes)
    if atomic and frag is not src:
        raise UnsupportedError("T.atomic_add into a fragment: fragments are per-thread; add directly", where="LowerTileOp")
    return iterate_fragment(
        layout, args.thread_var, args.num_threads, make, max_lanes=lanes,
        only_replica_zero=frag is src, name="i",
    )


def lower_fragment_fill(dst: BufferRegion, value: PrimExpr, args: LowerArgs) -> Stmt:
    layout = args.layout_map[dst.buffer]
    local_buf = args.buffer_remap[dst.buffer]
    l = Var("l")
    return For(l, IntImm(0), IntImm(layout.local_size), ForKind.UNROLLED, BufferStore(local_buf, value, (l,)))

