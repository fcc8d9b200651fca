"""Warp-level values: TileLang's `T.shfl_xor`, `T.shfl_down`, `T.shfl_up`, `T.shfl_sync` and
`T.warp_reduce_sum/max/min/bitand/bitor`.

Each is an expression (a call of `tsir/warp.h`) that every lane of the warp must evaluate
together: all 32 lanes take part (mask 0xffffffff), so the block's thread count must be whole
warps and the call must not sit under a condition that differs between lanes of a warp. The
interpreter checks both. Shuffles take numbers of up to 64 bits (not bool or fp8); the bit
reductions take integers.
"""

from __future__ import annotations

from typing import Any

from ..dtype import int32
from ..errors import BuildError, DTypeError
from ..expr import Call, PrimExpr, cast, const_value, convert
from .frame import current_builder

__all__ = [
    "shfl_xor",
    "shfl_down",
    "shfl_up",
    "shfl_sync",
    "warp_reduce_sum",
    "warp_reduce_max",
    "warp_reduce_min",
    "warp_reduce_bitand",
    "warp_reduce_bitor",
]

FULL_MASK = 0xFFFFFFFF


def _value(what: str, value: Any, integer: bool = False) -> PrimExpr:
    b = current_builder(what)
    if b.kernel is None:
        raise BuildError(f"{what} must be inside a T.Kernel (it exchanges values between lanes)")
    e = convert(value)
    dt = e.dtype
    if dt.lanes != 1 or dt.is_bool or dt.is_handle or dt.kind == "float8" or dt.bits > 64:
        raise DTypeError(f"{what} takes a scalar number of up to 64 bits, got `{e}` of dtype {dt}")
    if integer and not dt.is_int:
        raise DTypeError(f"{what} takes an integer, got `{e}` of dtype {dt}; use T.cast")
    return e


def _lane(what: str, x: Any, name: str) -> PrimExpr:
    e = convert(x, int32) if isinstance(x, int) else convert(x)
    if not e.dtype.is_int or e.dtype.lanes != 1:
        raise DTypeError(f"{what}: {name} must be an integer, got `{e}` of dtype {e.dtype}")
    return e if e.dtype == int32 else cast(int32, e)


def _width(what: str, width: Any) -> PrimExpr:
    w = 32 if width is None else width
    c = const_value(convert(w))
    if c is None or c not in (1, 2, 4, 8, 16, 32):
        raise BuildError(f"{what}: width must be a power of two up to 32, got {width!r}")
    return convert(c, int32)


def shfl_xor(value: Any, offset: Any) -> PrimExpr:
    """`value` as held by lane `laneid ^ offset` (`__shfl_xor_sync(0xffffffff, value, offset)`)."""
    e = _value("T.shfl_xor", value)
    lane = _lane("T.shfl_xor", offset, "offset")
    return Call(e.dtype, "tsir.warp.shfl_xor_w", (e, lane, _width("T.shfl_xor", None)))


def shfl_down(value: Any, offset: Any) -> PrimExpr:
    """`value` as held by lane `laneid + offset` (a lane past the warp's end keeps its own)."""
    e = _value("T.shfl_down", value)
    lane = _lane("T.shfl_down", offset, "offset")
    return Call(e.dtype, "tsir.warp.shfl_down", (e, lane, _width("T.shfl_down", None)))


def shfl_up(value: Any, offset: Any) -> PrimExpr:
    """`value` as held by lane `laneid - offset` (a lane before the warp's start keeps its own)."""
    e = _value("T.shfl_up", value)
    lane = _lane("T.shfl_up", offset, "offset")
    return Call(e.dtype, "tsir.warp.shfl_up", (e, lane, _width("T.shfl_up", None)))


def shfl_sync(mask: Any, value: Any, srcLane: Any, width: Any = None) -> PrimExpr:  # noqa: N803
    """`__shfl_sync(mask, value, srcLane, width)`: `value` as held by lane `srcLane % width` of
    this lane's `width`-lane segment. Only the full mask (every lane takes part) is supported."""
    m = const_value(convert(mask)) if not isinstance(mask, int) else mask
    if m is None or (m & FULL_MASK) != FULL_MASK:
        raise BuildError(
            f"T.shfl_sync: mask {mask!r} names only some lanes; tsir's shuffles take the whole "
            f"warp "
            f"(mask 0xffffffff)"
        )
    e = _value("T.shfl_sync", value)
    lane = _lane("T.shfl_sync", srcLane, "srcLane")
    return Call(e.dtype, "tsir.warp.shfl_idx", (e, lane, _width("T.shfl_sync", width)))


def _reduce(kind: str, value: Any) -> PrimExpr:
    what = f"T.warp_reduce_{kind}"
    e = _value(what, value, integer=kind.startswith("bit"))
    return Call(e.dtype, f"tsir.warp.warp_reduce_{kind}", (e,))


def warp_reduce_sum(value: Any) -> PrimExpr:
    """The sum of `value` over the 32 lanes of the warp, in every lane."""
    return _reduce("sum", value)


def warp_reduce_max(value: Any) -> PrimExpr:
    """The maximum of `value` over the warp, in every lane (a NaN is ignored, as by fmaxf)."""
    return _reduce("max", value)


def warp_reduce_min(value: Any) -> PrimExpr:
    """The minimum of `value` over the warp, in every lane (a NaN is ignored, as by fminf)."""
    return _reduce("min", value)


def warp_reduce_bitand(value: Any) -> PrimExpr:
    """The bitwise AND of an integer `value` over the warp, in every lane."""
    return _reduce("bitand", value)


def warp_reduce_bitor(value: Any) -> PrimExpr:
    """The bitwise OR of an integer `value` over the warp, in every lane."""
    return _reduce("bitor", value)
