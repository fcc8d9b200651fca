"""AtomicAdd: `T.atomic_add(dst_region, src)`, dst[...] += src[...] element-wise with atomic adds
(many blocks may add to one region). The one-element form, `T.atomic_add(C[i, j], x)`, is a plain
`atomic_add` call (`atomic_add_stmt`), not a tile op.

Lowerings: `fragment` (the source is a fragment: the first thread holding each element adds it),
`elementwise` (memory to memory, one element per lane: atomics are scalar).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..buffer import BufferRegion
from ..dtype import DataType
from ..expr import BufferLoad, Call, PrimExpr, cast
from ..node import node
from ..printer_expr import element_form_fits, element_text
from ..stmt import Evaluate, Stmt
from .base import FRAGMENT, LowerArgs, OpArgs, TileOperatorNode, register_tile_op, requirement
from .copy import fragment_side, lower_fragment_transfer
from .elementwise import coords_to_indices, lower_elementwise, non_unit_axes

if TYPE_CHECKING:
    from ..arith import Analyzer
    from ..printer_expr import ExprPrinter

__all__ = ["AtomicAdd", "atomic_add_stmt"]


def atomic_add_stmt(dst: BufferLoad, value: PrimExpr) -> Stmt:
    """`atomicAdd(&dst, value)` with the value cast to the destination's dtype."""
    if value.dtype != dst.buffer.dtype:
        value = cast(dst.buffer.dtype, value)
    address = Call(DataType("handle"), "address_of", (dst,))
    return Evaluate(Call(dst.buffer.dtype, "atomic_add", (address, value)))


@register_tile_op("tl.AtomicAdd")
@node
class AtomicAdd(TileOperatorNode):
    """dst[...] += src[...] element-wise with atomic adds; non-unit extents match in order."""

    src: BufferRegion
    dst: BufferRegion

    def reads(self) -> tuple[BufferRegion, ...]:
        return (self.src, self.dst)

    def writes(self) -> tuple[BufferRegion, ...]:
        return (self.dst,)

    def title(self) -> str:
        return "T.atomic_add"

    def print_form(self, p: ExprPrinter) -> str:
        # The builder resolves the destination as T.copy does: a region, or its first element
        # with the source's extents; the source is always a buffer or a region.
        fits = element_form_fits(self.dst, self.src)
        dst = element_text(p, self.dst) if fits else p.region(self.dst)
        return f"T.atomic_add({dst}, {p.region(self.src)})"


@requirement("a side is a fragment")
def _has_fragment(op: AtomicAdd, args: OpArgs) -> str | None:
    if fragment_side(op.src, op.dst) is None:
        return f"`{op.src.buffer.name}` and `{op.dst.buffer.name}` are in memory"
    return None


@requirement("the destination is in memory")
def _into_memory(op: AtomicAdd, args: OpArgs) -> str | None:
    if op.dst.buffer.scope == FRAGMENT:
        return f"`{op.dst.buffer.name}` is a fragment; fragments are per-thread, add directly"
    return None


@requirement("no side is a fragment")
def _in_memory(op: AtomicAdd, args: OpArgs) -> str | None:
    frag = fragment_side(op.src, op.dst)
    return None if frag is None else f"`{frag.buffer.name}` is a fragment"


@AtomicAdd.register_lowering("fragment", _has_fragment, _into_memory)
def _lower_fragment(op: AtomicAdd, args: LowerArgs, analyzer: Analyzer) -> Stmt:
    return lower_fragment_transfer(
        op.src, op.dst, args, atomic_add_stmt, "T.atomic_add", vectorize=False
    )


@AtomicAdd.register_lowering("elementwise", _in_memory)
def _lower_elementwise(op: AtomicAdd, args: LowerArgs, analyzer: Analyzer) -> Stmt:
    s_axes, d_axes = non_unit_axes(op.src), non_unit_axes(op.dst)
    extents = [op.dst.region[d].extent for d in d_axes]

    def make(coords: list[PrimExpr]) -> Stmt:
        value = BufferLoad(op.src.buffer, coords_to_indices(op.src, s_axes, coords))
        dst = BufferLoad(op.dst.buffer, coords_to_indices(op.dst, d_axes, coords))
        return atomic_add_stmt(dst, value)

    # One element per lane: atomics are scalar, so no vector lanes are needed.
    return lower_elementwise(op.dst, extents, make, args, 16, "i")
