"""Reduce: sum / max / min / absmax / abssum of a fragment along one axis, into a fragment.

Works on tsir's row-group fragments (LayoutInference lays out the source and derives the result's
layout). A row reduction folds each thread's registers, then the G threads sharing a row with
warp shuffles (and shared memory when G spans several warps). A column reduction folds the rows a
thread holds, then the thread groups through a shared-memory workspace.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..buffer import BufferRegion
from ..dtype import DataType, int32
from ..errors import BuildError, UnsupportedError
from ..expr import BufferLoad, Call, FloatImm, IntImm, Max, Min, PrimExpr, Select, cast, const
from ..node import node
from ..stmt import Allocate, BufferStore, Evaluate, For, ForKind, IfThenElse, Stmt, seq
from .base import LowerArgs, TileOperatorNode, register_tile_op

if TYPE_CHECKING:
    from ..arith import Analyzer

__all__ = ["Reduce", "REDUCE_KINDS"]

REDUCE_KINDS = ("sum", "max", "min", "absmax", "abssum")


def _identity(kind: str, dt: DataType) -> PrimExpr:
    if kind in ("sum", "absmax", "abssum"):
        return const(0, dt)
    if dt.is_float:
        return FloatImm(float("-inf") if kind == "max" else float("inf"), dt)
    return IntImm(int(dt.min_value() if kind == "max" else dt.max_value()), dt)


def _combine(kind: str, a: PrimExpr, b: PrimExpr) -> PrimExpr:
    if kind in ("sum", "abssum"):
        return a + b
    if kind in ("max", "absmax"):
        return Max(a, b)
    return Min(a, b)


def _prepare(kind: str, x: PrimExpr, dt: DataType) -> PrimExpr:
    if x.dtype != dt:
        x = cast(dt, x)
    if kind in ("absmax", "abssum") and not dt.is_unsigned:
        x = Call(dt, "abs", (x,))
    return x


@register_tile_op("tl.Reduce")
@node
class Reduce(TileOperatorNode):
    src: BufferRegion
    dst: BufferRegion
    dim: int
    kind: str
    clear: bool = True

    def reads(self) -> tuple[BufferRegion, ...]:
        return (self.src,) if self.clear else (self.src, self.dst)

    def writes(self) -> tuple[BufferRegion, ...]:
        return (self.dst,)

    def lower(self, args: LowerArgs, analyzer: Analyzer) -> Stmt:
        plan = args.plans.get(self.src.buffer)
        src = args.buffer_remap.get(self.src.buffer)
        dst = args.buffer_remap.get(self.dst.buffer)
        if plan is None or src is None or dst is None:
            raise UnsupportedError(
                f"T.reduce_{self.kind}: `{self.src.buffer.name}` -> `{self.dst.buffer.name}` needs both "
                f"in fragments laid out by tsir", where="LowerTileOp",
            )
        dim = 1 if len(self.src.buffer.shape) == 1 else self.dim
        from .planned_layouts import MmaTile

        if isinstance(plan, MmaTile):
            if dim != 1 or plan.warps_n != 1:
                raise UnsupportedError(
                    f"T.reduce_{self.kind} of the gemm accumulator `{self.src.buffer.name}`: only along "
                    f"rows, with the gemm's policy='full_row'", where="LowerTileOp",
                )
            return self._mma_rows(plan, src, dst)
        if dim == 1:
            return self._rows(plan, src, dst, args)
        return self._columns(plan, src, dst, args)

    def _finish(self, dst: Any, slot: PrimExpr, acc: PrimExpr) -> Stmt:
        value = acc if self.clear else _combine(self.kind, BufferLoad(dst, (slot,)), acc)
        return BufferStore(dst, value, (slot,))

    def _mma_rows(self, p: Any, src: Any, dst: Any) -> Stmt:
        """Rows of an mma accumulator (warps_n == 1): each thread folds its 2 x NI values of each of
        its 2 x MI rows, then the 4 lanes sharing a row combine with two shuffles."""
        dt = dst.dtype
        mi_count = p.m // p.warps_m // 16
        ni_count = p.n // 8
        out: list[Stmt] = []
        for mi in range(mi_count):
            for h in range(2):
                acc: PrimExpr = _identity(self.kind, dt)
                for ni in range(ni_count):
                    for v in range(2):
                        x = _prepare(self.kind, BufferLoad(src, (IntImm((mi * ni_count + ni) * 4 + h * 2 + v, int32),)), dt)
                        acc = _combine(self.kind, acc, x) if ni or v else x
                slot = IntImm(mi * 2 + h, int32)
                out.append(BufferStore(dst, acc, (slot,)) if self.clear else BufferStore(dst, _combine(self.kind, BufferLoad(dst, (slot,)), acc), (slot,)))
        # Two butterflies over the 4 lanes of a row (lane bits 0 and 1).
        l = _var("r")
        cur = BufferLoad(dst, (l,))
        for off in (1, 2):
            out.append(For(l, IntImm(0, int32), IntImm(2 * mi_count, int32), ForKind.UNROLLED,
                           BufferStore(dst, _combine(self.kind, cur, Call(dt, "tsir.reduce.shfl_xor", (cur, IntImm(off, int32)))), (l,))))
        if not self.clear:
            raise UnsupportedError("clear=False on a gemm accumulator's rows", where="LowerTileOp")
        return seq(*out)

    def _rows(self, p: Any, src: Any, dst: Any, args: LowerArgs) -> Stmt:
        from .planned_layouts import RowGroup

        assert isinstance(p, RowGroup)
        dt = dst.dtype
        acc_buf = _scalar(f"{self.dst.buffer.name}_acc", dt)
        acc = BufferLoad(acc_buf, (IntImm(0, int32),))
        per_row = p.col_slots * p.vector
        slot = _var("r")
        c = _var("c")
        tid = args.thread_var
        value: PrimExpr = _prepare(self.kind, BufferLoad(src, (slot * per_row + c,)), dt)
        fold = BufferStore(acc_buf, _combine(self.kind, acc, value), (IntImm(0, int32),))
        if p.rows % p.groups:
            # The last row slot of some groups is past the tile: those registers hold nothing
            # (never written), so they are not read; the group's result for that slot is unused.
            fold = IfThenElse(slot * p.groups + tid // p.group < p.rows, fold)
        body: list[Stmt] = [
            BufferStore(acc_buf, _identity(self.kind, dt), (IntImm(0, int32),)),
            For(c, IntImm(0, int32), IntImm(per_row, int32), ForKind.UNROLLED, fold),
        ]
        off = min(p.group, 32) // 2
        while off >= 1:
            shfl = Call(dt, "tsir.reduce.shfl_xor", (acc, IntImm(off, int32)))
            body.append(BufferStore(acc_buf, _combine(self.kind, acc, shfl), (IntImm(0, int32),)))
            off //= 2
        if p.group > 32:
            if args.add_workspace is None:
                raise UnsupportedError("a reduction across warps needs a shared workspace", where="LowerTileOp")
            warps = args.num_threads // 32
            ws = args.add_workspace(f"{self.dst.buffer.name}_red", (warps,), dt, "shared.dyn")
            per_group = p.group // 32
            warp = tid // 32
            body.append(IfThenElse(tid % 32 == 0, BufferStore(ws, acc, (warp,))))
            body.append(Evaluate(Call(int32, "sync_threads", ())))
            first = (tid // p.group) * per_group
            total: PrimExpr = BufferLoad(ws, (first,))
            for w in range(1, per_group):
                total = _combine(self.kind, total, BufferLoad(ws, (first + w,)))
            body.append(BufferStore(acc_buf, total, (IntImm(0, int32),)))
            body.append(Evaluate(Call(int32, "sync_threads", ())))
        body.append(self._finish(dst, slot, acc))
        loop = For(slot, IntImm(0, int32), IntImm(p.row_slots, int32), ForKind.UNROLLED, seq(*body))
        return Allocate(acc_buf, loop)

    def _columns(self, p: Any, src: Any, dst: Any, args: LowerArgs) -> Stmt:
        dt = dst.dtype
        tid = args.thread_var
        per_row = p.col_slots * p.vector
        c = _var("c")
        r = _var("r")
        g = tid // p.group
        col = ((c // p.vector) * p.group + tid % p.group) * p.vector + c % p.vector
        acc_buf = _scalar(f"{self.dst.buffer.name}_acc", dt)
        acc = BufferLoad(acc_buf, (IntImm(0, int32),))
        if args.add_workspace is None:
            raise UnsupportedError("a column reduction needs a shared workspace", where="LowerTileOp")
        ws = args.add_workspace(f"{self.dst.buffer.name}_red", (p.groups, p.cols), dt, "shared.dyn")
        value: PrimExpr = _prepare(self.kind, BufferLoad(src, (r * per_row + c,)), dt)
        if p.rows % p.groups:
            value = Select(r * p.groups + g < p.rows, value, _identity(self.kind, dt))
        partial = seq(
            BufferStore(acc_buf, _identity(self.kind, dt), (IntImm(0, int32),)),
            For(r, IntImm(0, int32), IntImm(p.row_slots, int32), ForKind.UNROLLED,
                BufferStore(acc_buf, _combine(self.kind, acc, value), (IntImm(0, int32),))),
            BufferStore(ws, acc, (g, col)),
        )
        total: PrimExpr = BufferLoad(ws, (IntImm(0, int32), col))
        for k in range(1, p.groups):
            total = _combine(self.kind, total, BufferLoad(ws, (IntImm(k, int32), col)))
        final = self._finish(dst, c, total)
        loops = seq(
            For(c, IntImm(0, int32), IntImm(per_row, int32), ForKind.UNROLLED, partial),
            Evaluate(Call(int32, "sync_threads", ())),
            For(c, IntImm(0, int32), IntImm(per_row, int32), ForKind.UNROLLED, final),
        )
        return Allocate(acc_buf, loops)


def _var(name: str) -> Any:
    from ..expr import Var

    return Var(name, int32)


def _scalar(name: str, dt: DataType) -> Any:
    from ..buffer import make_buffer

    return make_buffer(name, (1,), dt, "local")


def check_reduce(src: BufferRegion, dst: BufferRegion, dim: int, kind: str) -> None:
    where = f"T.reduce_{kind}"
    if kind not in REDUCE_KINDS:
        raise BuildError(f"unknown reduction {kind!r}; expected one of {', '.join(REDUCE_KINDS)}")
    for r, role in ((src, "source"), (dst, "destination")):
        if r.buffer.scope != "local.fragment":
            raise BuildError(f"{where}: the {role} `{r.buffer.name}` must be a fragment (T.alloc_fragment)")
    nd = len(src.buffer.shape)
    if nd not in (1, 2):
        raise BuildError(f"{where}: the source must be 1-D or 2-D, got {nd}-D")
    if not 0 <= dim < nd:
        raise BuildError(f"{where}: dim={dim} is out of range for the {nd}-D source `{src.buffer.name}`")
    want = [d for k, d in enumerate(src.buffer.shape) if k != dim] or [IntImm(1, int32)]
    got = list(dst.buffer.shape)
    from ..expr import const_value

    if [const_value(x) for x in want] != [const_value(x) for x in got]:
        raise BuildError(
            f"{where}: reducing `{src.buffer.name}` {tuple(const_value(x) for x in src.buffer.shape)} "
            f"along dim {dim} gives shape {tuple(const_value(x) for x in want)}, but `{dst.buffer.name}` "
            f"is {tuple(const_value(x) for x in got)}"
        )
