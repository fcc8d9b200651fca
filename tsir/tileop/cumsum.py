"""CumSum: `T.cumsum(src, dst=None, dim=0, reverse=False)`, the inclusive prefix sum along `dim`
of a shared tile or a fragment (into `dst`, which may be `src` itself). Lowered by
`tsir.tileop.scan` (in registers with warp shuffles, or by lanes of a warp over a shared tile;
one thread per row as the fallback)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..buffer import Buffer, BufferRegion
from ..dtype import DataType
from ..expr import PrimExpr, const
from ..node import node
from .base import InferLevel, LayoutFact, LayoutInferArgs, TileOperatorNode, register_tile_op
from .scan import check_scan_operands, register_scan_lowerings, scan_layouts

if TYPE_CHECKING:
    from ..printer_expr import ExprPrinter

__all__ = ["CumSum"]


@register_tile_op("tl.CumSum")
@node
class CumSum(TileOperatorNode):
    """Inclusive prefix sum of `src` along `dim` into `dst` (shared tiles or fragments)."""

    src: BufferRegion
    dst: BufferRegion
    dim: int
    reverse: bool = False

    def reads(self) -> tuple[BufferRegion, ...]:
        return (self.src,)

    def writes(self) -> tuple[BufferRegion, ...]:
        return (self.dst,)

    def title(self) -> str:
        return "T.cumsum"

    def infer_layout(self, args: LayoutInferArgs, level: InferLevel) -> dict[Buffer, LayoutFact]:
        return scan_layouts(self, args, level)

    def print_form(self, p: ExprPrinter) -> str:
        if check_scan_operands("T.cumsum", self.src, self.dst, self.dim) is not None:
            return TileOperatorNode.print_form(self, p)  # what the builder would refuse
        rev = ", reverse=True" if self.reverse else ""
        return f"T.cumsum({p.region(self.src)}, {p.region(self.dst)}, dim={self.dim}{rev})"


def _add(acc: PrimExpr, x: PrimExpr) -> PrimExpr:
    return acc + x


def _zero(dt: DataType) -> PrimExpr:
    return const(0, dt)


register_scan_lowerings(CumSum, "T.cumsum", _add, _zero)
