"""AtomicAdd (tile and element) and CumSum (a prefix sum along one axis of a shared tile)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..buffer import BufferRegion
from ..dtype import DataType, int32
from ..errors import UnsupportedError
from ..expr import BufferLoad, Call, IntImm, PrimExpr, Var, cast, const, const_value
from ..node import node
from ..stmt import BufferStore, Evaluate, For, ForKind, IfThenElse, Stmt, seq
from .base import LowerArgs, TileOperatorNode, register_tile_op
from .copy import _coords_to_indices, lower_elementwise, non_unit_axes

if TYPE_CHECKING:
    from ..arith import Analyzer

__all__ = ["AtomicAdd", "CumSum", "atomic_add_stmt"]


def atomic_add_stmt(dst: BufferLoad, value: PrimExpr) -> Stmt:
    """`atomicAdd(&dst, value)` with the value cast to the destination's dtype."""
    if value.dtype != dst.buffer.dtype:
        value = cast(dst.buffer.dtype, value)
    return Evaluate(Call(dst.buffer.dtype, "atomic_add", (Call(DataType("handle"), "address_of", (dst,)), value)))


@register_tile_op("tl.AtomicAdd")
@node
class AtomicAdd(TileOperatorNode):
    """dst[...] += src[...] element-wise with atomic adds (many blocks may add to one region)."""

    src: BufferRegion
    dst: BufferRegion

    def reads(self) -> tuple[BufferRegion, ...]:
        return (self.src, self.dst)

    def writes(self) -> tuple[BufferRegion, ...]:
        return (self.dst,)

    def lower(self, args: LowerArgs, analyzer: Analyzer) -> Stmt:
        s_axes, d_axes = non_unit_axes(self.src), non_unit_axes(self.dst)
        extents = [self.dst.region[d].extent for d in d_axes]

        def make(coords: list[PrimExpr]) -> Stmt:
            value = BufferLoad(self.src.buffer, _coords_to_indices(self.src, s_axes, coords))
            return atomic_add_stmt(BufferLoad(self.dst.buffer, _coords_to_indices(self.dst, d_axes, coords)), value)

        # One element per lane: atomics are scalar, so no vector lanes are needed.
        return lower_elementwise(self.dst, extents, make, args, 16, "i")


@register_tile_op("tl.CumSum")
@node
class CumSum(TileOperatorNode):
    """Inclusive prefix sum of `src` along `dim` into `dst` (shared tiles; may be the same one)."""

    src: BufferRegion
    dst: BufferRegion
    dim: int
    reverse: bool = False

    def reads(self) -> tuple[BufferRegion, ...]:
        return (self.src,)

    def writes(self) -> tuple[BufferRegion, ...]:
        return (self.dst,)

    def lower(self, args: LowerArgs, analyzer: Analyzer) -> Stmt:
        src, dst = self.src.buffer, self.dst.buffer
        if any(b.scope not in ("shared", "shared.dyn") for b in (src, dst)):
            raise UnsupportedError(
                "T.cumsum works on shared tiles; copy a fragment to shared memory first", where="LowerTileOp"
            )
        shape = [const_value(e) for e in self.src.extents]
        n = shape[self.dim]
        rows = 1
        for k, e in enumerate(shape):
            if k != self.dim:
                rows *= e  # type: ignore[operator]
        # Each thread scans whole rows (rows round-robin over threads).
        row = Var("row", int32)
        t = Var("t", int32)
        other = [k for k in range(len(shape)) if k != self.dim]

        def coords(r: PrimExpr, pos: PrimExpr) -> list[PrimExpr]:
            out: list[PrimExpr] = [IntImm(0, int32)] * len(shape)
            rem = r
            for k in reversed(other):
                out[k] = rem % shape[k]  # type: ignore[operator]
                rem = rem // shape[k]  # type: ignore[operator]
            out[self.dim] = (n - 1 - pos) if self.reverse else pos  # type: ignore[operator]
            return out

        from ..buffer import make_buffer
        from ..stmt import Allocate

        acc_buf = make_buffer("scan_acc", (1,), dst.dtype, "local")
        a = BufferLoad(acc_buf, (IntImm(0, int32),))
        c = coords(row, t)
        value: PrimExpr = BufferLoad(src, tuple(m + x for m, x in zip(self.src.mins, c)))
        if value.dtype != dst.dtype:
            value = cast(dst.dtype, value)
        step = seq(
            BufferStore(acc_buf, a + value, (IntImm(0, int32),)),
            BufferStore(dst, a, tuple(m + x for m, x in zip(self.dst.mins, c))),
        )
        scan = seq(BufferStore(acc_buf, const(0, dst.dtype), (IntImm(0, int32),)),
                   For(t, IntImm(0, int32), IntImm(n, int32), ForKind.SERIAL, step))  # type: ignore[arg-type]
        trips = -(-rows // args.num_threads)
        it = Var("it", int32)
        r_expr = it * args.num_threads + args.thread_var
        body: Stmt = IfThenElse(r_expr < rows, scan) if rows % args.num_threads else scan
        body = For(it, IntImm(0, int32), IntImm(trips, int32), ForKind.SERIAL, body)
        from ..visitor import substitute

        return Allocate(acc_buf, substitute(body, {row: r_expr}))


@register_tile_op("tl.FinalizeReducer")
@node
class FinalizeReducer(TileOperatorNode):
    """Combine the per-thread partials of a reducer (T.alloc_reducer) across the block, so every
    thread holds the total of each element (sum / max / min)."""

    reducer: BufferRegion
    kind: str

    def reads(self) -> tuple[BufferRegion, ...]:
        return (self.reducer,)

    def writes(self) -> tuple[BufferRegion, ...]:
        return (self.reducer,)

    def lower(self, args: LowerArgs, analyzer: Analyzer) -> Stmt:
        from .reduce import _combine

        local = args.buffer_remap.get(self.reducer.buffer)
        layout = args.layout_map.get(self.reducer.buffer)
        if local is None or layout is None or layout.replicate_size != args.num_threads:
            raise UnsupportedError(
                f"T.finalize_reducer: `{self.reducer.buffer.name}` is not a reducer of this block "
                f"(allocate it with T.alloc_reducer)", where="LowerTileOp",
            )
        dt = local.dtype
        tid = args.thread_var
        warps = max(1, args.num_threads // 32)
        l = Var("l", int32)
        x = BufferLoad(local, (l,))
        body: list[Stmt] = []
        off = min(32, args.num_threads) // 2
        while off >= 1:
            body.append(BufferStore(local, _combine(self.kind, x, Call(dt, "tsir.reduce.shfl_xor", (x, IntImm(off, int32)))), (l,)))
            off //= 2
        if warps > 1:
            if args.add_workspace is None:
                raise UnsupportedError("a reducer across warps needs a shared workspace", where="LowerTileOp")
            ws = args.add_workspace(f"{self.reducer.buffer.name}_fin", (warps,), dt, "shared.dyn")
            body.append(IfThenElse(tid % 32 == 0, BufferStore(ws, x, (tid // 32,))))
            body.append(Evaluate(Call(int32, "sync_threads", ())))
            total: PrimExpr = BufferLoad(ws, (IntImm(0, int32),))
            for w in range(1, warps):
                total = _combine(self.kind, total, BufferLoad(ws, (IntImm(w, int32),)))
            body.append(BufferStore(local, total, (l,)))
            body.append(Evaluate(Call(int32, "sync_threads", ())))
        return For(l, IntImm(0, int32), IntImm(layout.local_size, int32), ForKind.UNROLLED, seq(*body))
