"""Statements, executed on all lanes at once under an active-lane mask.

A thread-dependent `if` runs each branch with the lanes that take it; a loop whose bounds differ
between lanes runs to the largest trip count, each lane switching off after its own. The thread
level and the tile level share this walker and differ in how they allocate memory and which
intrinsics and tile operators they understand (subclasses).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..buffer import Buffer
from ..expr import Var
from ..stmt import (
    Allocate,
    AttrStmt,
    BufferStore,
    CpEngineCopy,
    DeclBuffer,
    Evaluate,
    For,
    ForKind,
    IfThenElse,
    LetStmt,
    SeqStmt,
    Stmt,
)
from .context import RunContext
from .errors import DivergentWarpError, InterpretUnsupportedError, OutOfBoundsError
from .evaluator import Evaluator
from .lanes import Mask
from .memory import Memory, Region, View
from .values import cast_array, np_dtype

__all__ = ["Executor"]

SHARED_LAYOUT_ATTR = "shared_layout_map"


class Executor:
    """Runs statements; subclasses provide `allocate` and the handling of calls and tile ops."""

    def __init__(self, ctx: RunContext, mem: Memory, ev: Evaluator):
        self.ctx = ctx
        self.mem = mem
        self.ev = ev
        self.layouts: dict[Buffer, Any] = {}
        self._dispatch: dict[type, Callable[[Any, Mask], None]] = {
            SeqStmt: self.s_seq,
            For: self.s_for,
            IfThenElse: self.s_if,
            LetStmt: self.s_let,
            BufferStore: self.s_store,
            Evaluate: self.s_evaluate,
            Allocate: self.s_allocate,
            DeclBuffer: self.s_decl,
            AttrStmt: self.s_attr,
            CpEngineCopy: self.s_cp_engine,
        }

    # -- driver ------------------------------------------------------------------------------------
    def run(self, s: Stmt, mask: Mask) -> None:
        if not mask.any:
            return
        fn = self._dispatch.get(type(s))
        if fn is None:
            fn = self.other_stmt
        fn(s, mask)

    def other_stmt(self, s: Stmt, mask: Mask) -> None:
        raise InterpretUnsupportedError(
            f"the {self.level_name} interpreter cannot execute {type(s).__name__}: "
            f"{str(s).splitlines()[0]}"
        )

    level_name = "thread-level"

    def s_cp_engine(self, s: CpEngineCopy, mask: Mask) -> None:
        """A copy-engine transfer is a host step: it ran when the kernel was launched (where
        LowerCPEngineIntrin puts it), not per thread."""

    # -- warps and blocks --------------------------------------------------------------------------
    def block_barrier(self, mask: Mask, what: str = "__syncthreads()", sync: bool = True) -> None:
        """A block-wide barrier (thread level: every thread must reach it)."""

    def full_warps(self, mask: Mask, what: str) -> np.ndarray:
        """The warps with active lanes; every lane of each must be active (warp-collective ops)."""
        lm = self.ctx.lanes
        if mask.all:
            return np.ones(lm.num_warps, dtype=bool)
        cnt = np.bincount(lm.warp_of_lane[mask.idx], minlength=lm.num_warps)
        size = np.bincount(lm.warp_of_lane, minlength=lm.num_warps)
        partial = (cnt > 0) & (cnt < size)
        if partial.any() and self.ctx.check:
            w = int(np.flatnonzero(partial)[0])
            lanes = np.flatnonzero(lm.warp_of_lane == w)
            on, off = lanes[mask.arr[lanes]], lanes[~mask.arr[lanes]]
            raise DivergentWarpError(
                f"{what} is warp-collective but only {on.size} of the {lanes.size} lanes of a warp "
                f"execute it{self.ctx.where()}",
                accesses=[self.ctx.access("executed", on), self.ctx.access("not executed", off)],
            )
        return cnt > 0

    # -- binders -----------------------------------------------------------------------------------
    def bind(self, var: Var, value: Any) -> Any:
        old = self.ev.env.get(var, _MISSING)
        self.ev.env[var] = value
        return old

    def unbind(self, var: Var, old: Any) -> None:
        if old is _MISSING:
            self.ev.env.pop(var, None)
        else:
            self.ev.env[var] = old

    # -- statements --------------------------------------------------------------------------------
    def s_seq(self, s: SeqStmt, mask: Mask) -> None:
        for x in s.stmts:
            self.run(x, mask)

    def s_for(self, s: For, mask: Mask) -> None:
        self.ctx.stmt = s
        if s.kind is ForKind.PARALLEL:
            self.parallel(s, mask)
            return
        if s.kind is ForKind.THREAD_BINDING:
            raise InterpretUnsupportedError(
                f"thread-binding loops are not interpreted: {str(s).splitlines()[0]}"
            )
        lo = self.ev.eval(s.min, mask)
        ext = self.ev.eval(s.extent, mask)
        dt = np_dtype(s.loop_var.dtype)
        old = self.bind(s.loop_var, lo)
        try:
            if lo.shape[0] == 1 and ext.shape[0] == 1:
                start, n = int(lo[0]), int(ext[0])
                for i in range(start, start + n):
                    self.ev.env[s.loop_var] = np.array([i], dtype=dt)
                    self.run(s.body, mask)
                return
            # Bounds differ between lanes: run to the longest, each lane stopping at its own end.
            ext_b = np.broadcast_to(ext, (mask.n,))
            n = int(ext_b[mask.arr].max()) if mask.any else 0
            for i in range(n):
                m = mask & (ext_b > i)
                if not m.any:
                    break
                self.ev.env[s.loop_var] = (lo + i).astype(dt)
                self.run(s.body, m)
        finally:
            self.unbind(s.loop_var, old)

    def parallel(self, s: For, mask: Mask) -> None:
        raise InterpretUnsupportedError(
            f"a T.Parallel loop in thread-level IR (LowerTileOp should have lowered it): "
            f"{str(s).splitlines()[0]}"
        )

    def s_if(self, s: IfThenElse, mask: Mask) -> None:
        self.ctx.stmt = s
        c = self.ev.eval(s.cond, mask)
        if c.shape[0] == 1:
            if c[0]:
                self.run(s.then_case, mask)
            elif s.else_case is not None:
                self.run(s.else_case, mask)
            return
        self.branch(s, mask, c)

    def branch(self, s: IfThenElse, mask: Mask, c: np.ndarray) -> None:
        self.run(s.then_case, mask & c)
        if s.else_case is not None:
            self.run(s.else_case, mask.without(c))

    def s_let(self, s: LetStmt, mask: Mask) -> None:
        self.ctx.stmt = s
        old = self.bind(s.var, self.ev.eval(s.value, mask))
        try:
            self.run(s.body, mask)
        finally:
            self.unbind(s.var, old)

    def s_store(self, s: BufferStore, mask: Mask) -> None:
        self.ctx.stmt = s
        view = self.ev.view(s.buffer)
        idx = [self.ev.index(i, mask) for i in s.indices]
        mask = self._implicitly_guarded(view, idx, mask)
        if not mask.any:
            return
        value = self.ev.eval(s.value, mask)
        if s.value.dtype.element != s.buffer.dtype:
            value = cast_array(value, s.value.dtype.element, s.buffer.dtype)
        self.store(s, view, idx, value, mask)

    def _implicitly_guarded(self, view: View, idx: list[np.ndarray], mask: Mask) -> Mask:
        """Before LegalizeSafeMemoryAccess a global store outside its buffer is skipped whole, as
        the guard it gets later skips it: its value is not computed (it may read registers that
        were never written, like the tail of a fragment past a ragged edge)."""
        if not (self.ctx.global_guard and view.scope in ("global", "symmetric")):
            return mask
        if any(i.ndim != 1 for i in idx):
            return mask  # vector accesses: kept or dropped per element by the store itself
        inside = np.ones(1, dtype=bool)
        for i, ext in zip(idx, view.shape):
            inside = inside & (i >= 0) & (i < ext)
        if inside.all():
            return mask
        return mask & np.broadcast_to(inside, (mask.n,))

    def store(
        self, s: BufferStore, view: View, idx: list[np.ndarray], value: np.ndarray, mask: Mask
    ) -> None:
        self.mem.store(view, idx, value, mask)

    def s_evaluate(self, s: Evaluate, mask: Mask) -> None:
        self.ctx.stmt = s
        self.ev.eval(s.value, mask)

    def s_attr(self, s: AttrStmt, mask: Mask) -> None:
        strands = getattr(self, "strands", None)
        if strands is not None and self.ctx.implicit_sync and s.key in ("tile_op", "thread_range"):
            # Before ThreadSync a tile op's code is complete in every thread that runs it before
            # the next statement: warpgroups run as strands meet at its end (those of the thread
            # range it runs in).
            if s.key == "thread_range":
                me = strands.cur
                saved_range = me.implicit_range
                me.implicit_range = (int(s.value[0]), int(s.value[1]))
                try:
                    self.run(s.body, mask)
                finally:
                    me.implicit_range = saved_range
                return
            # Its start too: every strand of the range has finished the statements before it
            # (a wgmma_wait between two tile ops retires each warpgroup's own wgmma).
            strands.implicit_barrier(s, before=True)
            self.run(s.body, mask)
            strands.implicit_barrier(s)
            return
        if s.key == SHARED_LAYOUT_ATTR:
            saved = dict(self.layouts)
            for buf, lay in s.value:
                self.layouts[buf] = lay
            try:
                self.run(s.body, mask)
            finally:
                self.layouts = saved
            return
        self.run(s.body, mask)

    def s_allocate(self, s: Allocate, mask: Mask) -> None:
        self.ctx.stmt = s
        view = self.allocate(s.buffer)
        old = self.ev.views.get(s.buffer)
        self.ev.views[s.buffer] = view
        try:
            self.run(s.body, mask)
        finally:
            self.release(view)
            if old is None:
                self.ev.views.pop(s.buffer, None)
            else:
                self.ev.views[s.buffer] = old

    def release(self, view: View) -> None:
        """Called when an allocation's scope ends."""

    def s_decl(self, s: DeclBuffer, mask: Mask) -> None:
        self.ctx.stmt = s
        base = self.ev.view(s.base)
        shape = self.shape_of(s.buffer)
        offset = base.byte_offset + s.byte_offset
        view = View(s.buffer, base.region, offset, shape, self.strides_of(s.buffer))
        end = offset + view.span * view.itemsize
        if s.byte_offset < 0 or end > base.byte_offset + base.span * base.itemsize:
            raise OutOfBoundsError(
                f"`{s.buffer.name}` is declared at bytes [{offset}, {end}) of `{s.base.name}`, "
                "which has "
                f"{base.span * base.itemsize} bytes",
                accesses=[self.ctx.access("declaration", None)],
                buffer=s.buffer.name,
            )
        old = self.ev.views.get(s.buffer)
        self.ev.views[s.buffer] = view
        try:
            self.run(s.body, mask)
        finally:
            if old is None:
                self.ev.views.pop(s.buffer, None)
            else:
                self.ev.views[s.buffer] = old

    # -- memory ------------------------------------------------------------------------------------
    def shape_of(self, b: Buffer) -> tuple[int, ...]:
        return tuple(self.ev.uniform_int(d, f"the shape of `{b.name}`") for d in b.shape)

    def strides_of(self, b: Buffer) -> tuple[int, ...] | None:
        if not b.strides:
            return None
        return tuple(self.ev.uniform_int(d, f"a stride of `{b.name}`") for d in b.strides)

    def layout_table(self, b: Buffer, shape: tuple[int, ...]) -> np.ndarray | None:
        """Logical row-major offset -> physical offset of a shared tile with a layout (the layout's
        forward map, linearised row-major over its physical extents; extra leading dimensions of
        the buffer pass through, as `Layout.forward` documents)."""
        lay = self.layouts.get(b)
        if lay is None:
            return None
        return layout_table(self.ev, lay, shape)

    def allocate(self, b: Buffer) -> View:
        raise NotImplementedError

    def new_region(
        self,
        b: Buffer,
        shape: tuple[int, ...],
        kind: str,
        groups: int,
        group_of_lane: np.ndarray | None,
    ) -> View:
        table = self.layout_table(b, shape)
        nbytes = View.span_for(shape, None, table) * np_dtype(b.dtype).itemsize
        region = Region(b.name, kind, nbytes, groups, group_of_lane)
        return View(b, region, 0, shape, None, table)


_MISSING = object()
_TABLES: dict[tuple[int, tuple[int, ...]], tuple[Any, np.ndarray]] = {}


def layout_table(ev: Evaluator, lay: Any, shape: tuple[int, ...]) -> np.ndarray:
    # Reads only the Layout node's fields (input_shape, vars, forward_index): the physical index of
    # every logical element is computed here, by the interpreter's own evaluator, not by
    # tsir.layout.
    key = (id(lay), shape)
    hit = _TABLES.get(key)
    if hit is not None and hit[0] is lay:
        return hit[1]
    ndim = len(lay.vars)
    inner = shape[len(shape) - ndim :]
    lead = shape[: len(shape) - ndim]
    n = int(np.prod(inner, dtype=np.int64))
    grid = np.indices(inner, dtype=np.int64).reshape(ndim, n)
    saved = {v: ev.env.get(v, _MISSING) for v in lay.vars}
    try:
        for v, g in zip(lay.vars, grid):
            ev.env[v] = g.astype(np_dtype(v.dtype))
        full = Mask.full(n)
        phys = [np.broadcast_to(ev.index(e, full), (n,)) for e in lay.forward_index]
    finally:
        for v, old in saved.items():
            if old is _MISSING:
                ev.env.pop(v, None)
            else:
                ev.env[v] = old
    extents = [int(p.max()) + 1 if n else 0 for p in phys]
    flat = np.zeros(n, dtype=np.int64)
    for p, e in zip(phys, extents):
        flat = flat * e + p
    size = int(np.prod(extents, dtype=np.int64))
    nlead = int(np.prod(lead, dtype=np.int64))
    table = (np.arange(nlead, dtype=np.int64)[:, None] * size + flat[None, :]).reshape(-1)
    if len(_TABLES) > 256:
        _TABLES.clear()
    _TABLES[key] = (lay, table)
    return table
