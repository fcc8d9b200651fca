"""T.use_swizzle's block order: a 2-D grid's blocks launched panel by panel, so that the blocks
running together share rows of A and columns of B in L2. The order is a permutation of the grid
(`bx`, `by` keep their ranges), applied where the block indices are bound: by the CUDA printer for
an ordinary grid, by WarpSpecialize for a persistent kernel's tile loop."""

from __future__ import annotations

from collections.abc import Iterable

from .dtype import int32
from .expr import IntImm, Min, PrimExpr
from .stmt import AttrStmt

SWIZZLE_ROW = "threadblock_swizzle"  # T.use_swizzle(panel): panels of block columns
SWIZZLE_COL = "threadblock_swizzle_col"  # T.use_swizzle(panel, order="col"): of block rows
SWIZZLE_KEYS = (SWIZZLE_ROW, SWIZZLE_COL)


def swizzle_of(stmts: Iterable[object]) -> tuple[int, bool] | None:
    """(panel, column order) of the first T.use_swizzle marker among `stmts`, or None."""
    for s in stmts:
        if isinstance(s, AttrStmt) and s.key in SWIZZLE_KEYS:
            panel = s.value.value if isinstance(s.value, IntImm) else s.value
            return int(panel), s.key == SWIZZLE_COL  # type: ignore[arg-type]
    return None


def panel_coords(
    t: PrimExpr, gx: PrimExpr, gy: PrimExpr, panel: int, col: bool
) -> tuple[PrimExpr, PrimExpr]:
    """(bx, by) of the t-th block to run. Row order: panels of `panel` block columns, each walked
    row by row (bx fastest within the panel's width); column order: panels of `panel` block rows,
    each walked column by column (by fastest). The last panel may be narrower."""
    width = IntImm(panel, int32)
    if not col:
        per = gy * panel
        first = t // per * panel
        w = Min(gx - first, width)
        r = t % per
        return first + r % w, r // w
    per = gx * panel
    first = t // per * panel
    h = Min(gy - first, width)
    r = t % per
    return r // h, first + r % h
