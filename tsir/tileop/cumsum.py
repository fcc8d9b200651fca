"""CumSum: `T.cumsum(src, dst=None, dim=0, reverse=False)`, the inclusive prefix sum along `dim`
of a shared tile or a fragment (into `dst`, which may be `src` itself). Lowered by
`tsir.tileop.scan` (whole rows per thread; fragments through a shared workspace)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..buffer import BufferRegion
from ..expr import PrimExpr, const
from ..node import node
from ..stmt import Stmt
from .base import LowerArgs, OpArgs, TileOperatorNode, register_tile_op, requirement
from .scan import check_scan_operands, lower_scan

if TYPE_CHECKING:
    from ..arith import Analyzer
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

    def print_form(self, p: ExprPrinter) -> str:
        if check_scan_operands("T.cumsum", self.src, self.dst, self.dim) is not None:
            return TileOperatorNode.print_form(self, p)  # what the builder would refuse
        rev = ", reverse=True" if self.reverse else ""
        return f"T.cumsum({p.region(self.src)}, {p.region(self.dst)}, dim={self.dim}{rev})"


@requirement("shared tiles or fragments")
def _operands(op: CumSum, args: OpArgs) -> str | None:
    return check_scan_operands("T.cumsum", op.src, op.dst, op.dim)


@CumSum.register_lowering("rows", _operands)
def _lower_rows(op: CumSum, args: LowerArgs, analyzer: Analyzer) -> Stmt:
    def add(acc: PrimExpr, x: PrimExpr) -> PrimExpr:
        return acc + x

    zero = const(0, op.dst.buffer.dtype)
    return lower_scan(op.src, op.dst, op.dim, op.reverse, add, zero, args, "T.cumsum")
