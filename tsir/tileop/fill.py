"""Fill: `T.fill(dst, value)` / `T.clear(dst)`, one value into every element of a region.

Lowerings: `fragment` (every register of the calling thread), `elementwise` (memory, spread over
the block's threads with vector lanes innermost, or whole in each thread for its own memory).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ..buffer import BufferRegion
from ..expr import FloatImm, IntImm, PrimExpr, Var
from ..node import node
from ..printer_expr import element_text, is_unit_region
from ..stmt import BufferStore, For, ForKind, Stmt
from .base import FRAGMENT, LowerArgs, OpArgs, TileOperatorNode, register_tile_op, requirement
from .elementwise import coords_to_indices, lower_elementwise, non_unit_axes

if TYPE_CHECKING:
    from ..arith import Analyzer
    from ..printer_expr import ExprPrinter

__all__ = ["Fill"]


@register_tile_op("tl.Fill")
@node
class Fill(TileOperatorNode):
    """Store `value` (already of the destination dtype) into every element of `dst`."""

    dst: BufferRegion
    value: PrimExpr

    def writes(self) -> tuple[BufferRegion, ...]:
        return (self.dst,)

    def title(self) -> str:
        return "T.fill"

    def print_form(self, p: ExprPrinter) -> str:
        dst = element_text(p, self.dst) if is_unit_region(self.dst) and self.dst.buffer.ndim else p.region(self.dst)
        v = self.value
        zero = isinstance(v, (IntImm, FloatImm)) and v.value == 0 and math.copysign(1, v.value) > 0
        # T.clear of a bool buffer is an error in the builder (0 is no bool); fill it with False.
        if zero and v.dtype == self.dst.buffer.dtype and not v.dtype.is_bool and v is not p.mark:
            return f"T.clear({dst})"
        return f"T.fill({dst}, {p(v, self.dst.buffer.dtype)})"


@requirement("the destination is a fragment")
def _into_fragment(op: Fill, args: OpArgs) -> str | None:
    return None if op.dst.buffer.scope == FRAGMENT else f"`{op.dst.buffer.name}` is in memory"


@requirement("the destination is in memory")
def _into_memory(op: Fill, args: OpArgs) -> str | None:
    return f"`{op.dst.buffer.name}` is a fragment" if op.dst.buffer.scope == FRAGMENT else None


@Fill.register_lowering("fragment", _into_fragment)
def _lower_fragment(op: Fill, args: LowerArgs, analyzer: Analyzer) -> Stmt:
    # Every register of the thread: a fragment is filled whole.
    local_size = args.layout_map[op.dst.buffer].local_size
    local_buf = args.buffer_remap[op.dst.buffer]
    l = Var("l")
    return For(l, IntImm(0), IntImm(local_size), ForKind.UNROLLED, BufferStore(local_buf, op.value, (l,)))


@Fill.register_lowering("elementwise", _into_memory)
def _lower_elementwise(op: Fill, args: LowerArgs, analyzer: Analyzer) -> Stmt:
    axes = non_unit_axes(op.dst)
    extents = [op.dst.region[d].extent for d in axes]

    def make_store(coords: list[PrimExpr]) -> Stmt:
        return BufferStore(op.dst.buffer, op.value, coords_to_indices(op.dst, axes, coords))

    return lower_elementwise(op.dst, extents, make_store, args, op.dst.buffer.dtype.bytes, "i")
