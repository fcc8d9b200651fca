"""Explicit Hopper control (TileLang's names): the facts the builder and the passes share.

A warp role (`with T.ws(0):`) is `AttrStmt(WARP_ROLE_ATTR, (lo, hi), IfThenElse(cond, body))`:
the body runs in threads [lo, hi) of a 1-D block, whole warpgroups of 128 threads. The marker
tells the passes the program specializes its warps itself: tile ops inside are laid out and
spread over the role's threads only (LayoutInference, LowerTileOp), accesses of different roles
are ordered by the program's own mbarriers (ThreadSync plans barriers within a role and between
role and non-role code only), and WarpSpecialize leaves the kernel as it is.
"""

from __future__ import annotations

from .dtype import DataType, int32
from .expr import BufferLoad, Call, IntImm, PrimExpr
from .stmt import Evaluate, Stmt

__all__ = [
    "MAX_NREG",
    "MIN_NREG",
    "WARPGROUP",
    "WARP_ROLE_ATTR",
    "mbarrier_address",
    "mbarrier_stmt",
    "nreg_problem",
]

WARP_ROLE_ATTR = "warp_role"
WARPGROUP = 128
# setmaxnreg's range (PTX ISA: "setmaxnreg"): a multiple of 8 in [24, 256].
MIN_NREG = 24
MAX_NREG = 256

_U32 = DataType("uint32")
_HANDLE = DataType("handle")


def nreg_problem(n: object) -> str | None:
    """Why `n` is not a register count setmaxnreg takes, else None."""
    if not isinstance(n, int) or isinstance(n, bool):
        return f"the register count must be a Python int, got {n!r}"
    if n % 8 or not MIN_NREG <= n <= MAX_NREG:
        return f"setmaxnreg takes a multiple of 8 in [{MIN_NREG}, {MAX_NREG}], got {n}"
    return None


def mbarrier_address(bar: BufferLoad) -> Call:
    """`tsir::shared_u32(&bar[i])`: the shared-window address mbarrier.h's calls take."""
    addr = Call(_HANDLE, "address_of", (bar,))
    return Call(_U32, "tsir.mbarrier.shared_u32", (addr,))


def mbarrier_stmt(fn: str, *args: PrimExpr | int) -> Stmt:
    """`tsir::<fn>(args...)` of mbarrier.h as a statement."""
    conv = tuple(IntImm(a, int32) if isinstance(a, int) else a for a in args)
    return Evaluate(Call(int32, f"tsir.mbarrier.{fn}", conv))
