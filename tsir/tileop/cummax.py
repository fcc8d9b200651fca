"""CumMax: `T.cummax(src, dst=None, dim=0, reverse=False)`, the inclusive running maximum along
`dim` of a shared tile or a fragment (into `dst`, which may be `src` itself): dst[..., i, ...] =
max(src[..., 0..i, ...]), or max(src[..., i..n-1, ...]) with `reverse=True`. NaN handling is the
target's `max` (CUDA fmaxf: a NaN is dropped unless every value seen is NaN).

The whole op is this file (its fields, layouts, lowering, printer form) plus `T.cummax` in the
builder: no pass knows it. It takes the scan lowerings of `tsir.tileop.scan` with `max` as the
combining step and the dtype's lowest value (-inf for floats) as the start."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..buffer import Buffer, BufferRegion
from ..dtype import DataType
from ..expr import FloatImm, IntImm, Max, PrimExpr
from ..node import node
from .base import InferLevel, LayoutFact, LayoutInferArgs, TileOperatorNode, register_tile_op
from .scan import check_scan_operands, register_scan_lowerings, scan_layouts

if TYPE_CHECKING:
    from ..printer_expr import ExprPrinter

__all__ = ["CumMax"]


@register_tile_op("tl.CumMax")
@node
class CumMax(TileOperatorNode):
    """Inclusive running maximum of `src` along `dim` into `dst` (shared tiles or fragments)."""

    src: BufferRegion
    dst: BufferRegion
    dim: int
    reverse: bool = False

    def reads(self) -> tuple[BufferRegion, ...]:
        return (self.src,)

    def writes(self) -> tuple[BufferRegion, ...]:
        return (self.dst,)

    def title(self) -> str:
        return "T.cummax"

    def infer_layout(self, args: LayoutInferArgs, level: InferLevel) -> dict[Buffer, LayoutFact]:
        return scan_layouts(self, args, level)

    def print_form(self, p: ExprPrinter) -> str:
        if check_scan_operands("T.cummax", self.src, self.dst, self.dim) is not None:
            return TileOperatorNode.print_form(self, p)  # what the builder would refuse
        rev = ", reverse=True" if self.reverse else ""
        return f"T.cummax({p.region(self.src)}, {p.region(self.dst)}, dim={self.dim}{rev})"


def lowest(dt: DataType) -> PrimExpr:
    """The identity of max over `dt`: -inf for floats, the smallest value for integers."""
    if dt.is_float:
        return FloatImm(float("-inf"), dt)
    return IntImm(int(dt.min_value()), dt)


register_scan_lowerings(CumMax, "T.cummax", Max, lowest)
