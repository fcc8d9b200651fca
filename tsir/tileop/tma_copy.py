"""TmaCopy: `T.tma_copy(src, dst, barrier=bar)`, TileLang's explicit TMA load.

A global->shared bulk tensor copy that completes on the mbarrier `bar` (an element of a
`T.alloc_barrier` buffer) and does not wait: one thread of those that run it (the first) announces
the copy's bytes on the barrier (`expect_tx`, no arrival) and issues the bulk copies. The program
arrives on the barrier (`T.barrier_arrive`) and waits for its phase (`T.barrier_wait`) before it
reads the tile, as in TileLang.

TMA takes the copy under Copy's "tma" requirements (copy_tma.py: the tensor map, the box, a layout
TMA writes); there is no fallback for a copy the program asked to be TMA, so a copy that fails one
is an error naming it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..buffer import Buffer, BufferRegion
from ..errors import UnsupportedError
from ..expr import BufferLoad, PrimExpr, const_value
from ..node import node
from ..stmt import IfThenElse, Stmt, seq
from ..warp_roles import mbarrier_address, mbarrier_stmt
from .base import (
    InferLevel,
    LayoutFact,
    LayoutInferArgs,
    LowerArgs,
    TileOperatorNode,
    register_tile_op,
)
from .copy import Copy, copy_operands

if TYPE_CHECKING:
    from ..arith import Analyzer
    from ..printer_expr import ExprPrinter

__all__ = ["TmaCopy"]


@register_tile_op("tl.TmaCopy")
@node
class TmaCopy(TileOperatorNode):
    """Bulk-copy `src` (global) into `dst` (shared), completing on the mbarrier `barrier`."""

    src: BufferRegion
    dst: BufferRegion
    barrier: PrimExpr
    """The mbarrier: an element of a shared `uint64` buffer (`T.alloc_barrier`)."""

    def reads(self) -> tuple[BufferRegion, ...]:
        return (self.src,)

    def writes(self) -> tuple[BufferRegion, ...]:
        return (self.dst,)

    def title(self) -> str:
        return "T.tma_copy"

    def infer_layout(self, args: LayoutInferArgs, level: InferLevel) -> dict[Buffer, LayoutFact]:
        return {}  # TMA writes whatever swizzle the tile's readers chose (copy_tma.py)

    def as_copy(self) -> Copy:
        return Copy(self.src, self.dst, async_copy=True, mbarrier=self.barrier)

    def nbytes(self) -> int:
        n = self.dst.buffer.dtype.bytes
        for e in self.dst.extents:
            c = const_value(e)
            if c is None:
                raise UnsupportedError(
                    f"T.tma_copy into `{self.dst.buffer.name}`: the region's extents must be "
                    f"constants (the bytes announced on the barrier), got {e}",
                    where="LowerTileOp",
                )
            n *= c
        return n

    def lower(self, args: LowerArgs, analyzer: Analyzer) -> Stmt:
        copy = self.as_copy()
        tma = next(v for v in Copy.lowerings if v.name == "tma")
        why = tma.refusal(copy, args)
        if why is not None:
            raise UnsupportedError(
                f"T.tma_copy of `{self.src.buffer.name}` into `{self.dst.buffer.name}` cannot be "
                f"a TMA load: {why}",
                where="LowerTileOp",
            )
        load = tma.lower(copy, args, analyzer)
        # The issuing thread announces the bytes before its copies can complete them.
        assert isinstance(load, IfThenElse)
        assert isinstance(self.barrier, BufferLoad)
        expect = mbarrier_stmt("mbarrier_expect_tx", mbarrier_address(self.barrier), self.nbytes())
        return IfThenElse(load.cond, seq(expect, load.then_case))

    def print_form(self, p: ExprPrinter) -> str:
        s, d = copy_operands(p, self.src, self.dst)
        return f"T.tma_copy({s}, {d}, barrier={p(self.barrier)})"
