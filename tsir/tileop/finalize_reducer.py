"""FinalizeReducer: `T.finalize_reducer(r)`, combining the per-thread partials of a reducer
(`T.alloc_reducer`: a fragment every thread holds whole) across the block, so every thread holds
the total of each element (sum / max / min): warp shuffles, then shared memory across warps.

It prints in the registry's generic form (`T.tile_op("tl.FinalizeReducer", ...)`): the builder
function needs the buffer to come from `T.alloc_reducer`, which printed IR spells out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..buffer import BufferRegion
from ..dtype import int32
from ..errors import UnsupportedError
from ..expr import BufferLoad, Call, IntImm, PrimExpr, Var
from ..layout import fragment_of
from ..node import node
from ..stmt import BufferStore, Evaluate, For, ForKind, IfThenElse, Stmt, seq
from .base import LowerArgs, TileOperatorNode, coerce_enums, register_tile_op
from .reduce import ReduceKind, reduce_combine

if TYPE_CHECKING:
    from ..arith import Analyzer

__all__ = ["FinalizeReducer"]


@register_tile_op("tl.FinalizeReducer")
@node
class FinalizeReducer(TileOperatorNode):
    """Combine the per-thread partials of a reducer (T.alloc_reducer) across the block, so every
    thread holds the total of each element (sum / max / min)."""

    reducer: BufferRegion
    kind: ReduceKind

    def __post_init__(self) -> None:
        coerce_enums(self, kind=ReduceKind)

    def reads(self) -> tuple[BufferRegion, ...]:
        return (self.reducer,)

    def writes(self) -> tuple[BufferRegion, ...]:
        return (self.reducer,)

    def title(self) -> str:
        return "T.finalize_reducer"

    def lower(self, args: LowerArgs, analyzer: Analyzer) -> Stmt:
        local = args.buffer_remap.get(self.reducer.buffer)
        layout = fragment_of(args.layout_map, self.reducer.buffer)
        if local is None or layout is None or layout.replicate_size != args.num_threads:
            raise UnsupportedError(
                f"T.finalize_reducer: `{self.reducer.buffer.name}` is not a reducer of this block "
                f"(allocate it with T.alloc_reducer)",
                where="LowerTileOp",
            )
        dt = local.dtype
        tid = args.thread_var
        warps = max(1, args.num_threads // 32)
        l = Var("l", int32)
        x = BufferLoad(local, (l,))
        body: list[Stmt] = []
        off = min(32, args.num_threads) // 2
        while off >= 1:
            shuffled = Call(dt, "tsir.reduce.shfl_xor", (x, IntImm(off, int32)))
            body.append(BufferStore(local, reduce_combine(self.kind, x, shuffled), (l,)))
            off //= 2
        if warps > 1:
            if args.add_workspace is None:
                raise UnsupportedError(
                    "a reducer across warps needs a shared workspace", where="LowerTileOp"
                )
            ws = args.add_workspace(f"{self.reducer.buffer.name}_fin", (warps,), dt, "shared.dyn")
            body.append(IfThenElse(tid % 32 == 0, BufferStore(ws, x, (tid // 32,))))
            body.append(Evaluate(Call(int32, "sync_threads", ())))
            total: PrimExpr = BufferLoad(ws, (IntImm(0, int32),))
            for w in range(1, warps):
                total = reduce_combine(self.kind, total, BufferLoad(ws, (IntImm(w, int32),)))
            body.append(BufferStore(local, total, (l,)))
            body.append(Evaluate(Call(int32, "sync_threads", ())))
        return For(
            l, IntImm(0, int32), IntImm(layout.local_size, int32), ForKind.UNROLLED, seq(*body)
        )
