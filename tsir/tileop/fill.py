"""Fill: `T.fill(dst, value)` / `T.clear(dst)`, one value into every element of a region.

Lowerings: `fragment` (the calling thread's registers: all of them for the whole fragment, those
holding an element of the region otherwise), `elementwise` (memory, spread over
the block's threads with vector lanes innermost, or whole in each thread for its own memory).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ..buffer import BufferRegion
from ..expr import FloatImm, IntImm, PrimExpr, Var, const_value
from ..layout import require_fragment
from ..node import node
from ..printer_expr import element_text, is_unit_region
from ..stmt import BufferStore, For, ForKind, IfThenElse, Stmt
from .base import FRAGMENT, LowerArgs, OpArgs, TileOperatorNode, register_tile_op, requirement
from .elementwise import coords_to_indices, lower_elementwise, non_unit_axes
from .fragment_lowering import iterate_fragment

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
        dst = (
            element_text(p, self.dst)
            if is_unit_region(self.dst) and self.dst.buffer.ndim
            else p.region(self.dst)
        )
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
    layout = require_fragment(args.layout_map, op.dst.buffer)
    local_buf = args.buffer_remap[op.dst.buffer]
    shape = [const_value(d) for d in op.dst.buffer.shape]
    whole = (
        all(const_value(r.min) == 0 for r in op.dst.region)
        and [const_value(e) for e in op.dst.extents] == shape
    )
    if whole:  # every register of the thread
        l = Var("l")
        store = BufferStore(local_buf, op.value, (l,))
        return For(l, IntImm(0), IntImm(layout.local_size), ForKind.UNROLLED, store)

    # Part of the fragment: each thread stores into its registers that hold an element of it.
    def make(coords: list[PrimExpr], local: PrimExpr) -> Stmt:
        inside = [
            cond
            for c, r in zip(coords, op.dst.region)
            for cond in (r.min <= c, c < r.min + r.extent)
        ]
        cond = inside[0]
        for x in inside[1:]:
            cond = cond & x
        return IfThenElse(cond, BufferStore(local_buf, op.value, (local,)))

    return iterate_fragment(layout, args.thread_var, args.num_threads, make, name="i")


@Fill.register_lowering("elementwise", _into_memory)
def _lower_elementwise(op: Fill, args: LowerArgs, analyzer: Analyzer) -> Stmt:
    axes = non_unit_axes(op.dst)
    extents = [op.dst.region[d].extent for d in axes]

    def make_store(coords: list[PrimExpr]) -> Stmt:
        return BufferStore(op.dst.buffer, op.value, coords_to_indices(op.dst, axes, coords))

    return lower_elementwise(op.dst, extents, make_store, args, op.dst.buffer.dtype.bytes, "i")
