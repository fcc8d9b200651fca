"""Reference semantics of warp.h (T.shfl_xor/down/up/sync, T.warp_reduce_*): entries of the one
device-call table (device_calls.py).

Every lane of the warp takes part (mask 0xffffffff, CUDA's `__shfl_*_sync` rules for `width`): a
warp with inactive lanes, or a block whose threads are not whole warps, is a DivergentWarpError.
They run at the thread level and, for statements outside T.Parallel, at the tile level (where the
lanes are the block's threads too); inside a T.Parallel nest they have no meaning (its iterations
belong to no thread until the nest is lowered) and are refused.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..expr import Call
from .device_calls import device_call
from .errors import DivergentWarpError, InterpretUnsupportedError
from .lanes import Mask
from .values import NARROW_FLOATS, np_dtype

if TYPE_CHECKING:
    from .executor import Executor

__all__ = ["shuffle"]

Source = Callable[[np.ndarray, np.ndarray, int], tuple[np.ndarray, np.ndarray]]


def _check(ex: Executor, mask: Mask, what: str) -> None:
    if getattr(ex, "in_parallel", False):
        raise InterpretUnsupportedError(
            f"{what} inside T.Parallel: its iterations belong to no thread until the nest is "
            f"lowered, so there is no warp to exchange values in; shuffle outside T.Parallel"
        )
    lm = ex.ctx.lanes
    if lm.per_block % 32:
        raise DivergentWarpError(
            f"{what} needs whole warps, but the block has {lm.per_block} threads{ex.ctx.where()}",
            accesses=[ex.ctx.access("shuffle", mask.idx[:1])],
        )
    ex.full_warps(mask, what)


def shuffle(
    ex: Executor, value: np.ndarray, src: Source, arg: np.ndarray, width: int, mask: Mask, what: str
) -> np.ndarray:
    """`value` as held by the source lane `src(laneid, arg, width)` gives, where that lane is
    valid (else each lane keeps its own), in every lane of `mask`."""
    _check(ex, mask, what)
    if value.shape[0] == 1:
        return value  # every lane holds the same value
    lm = ex.ctx.lanes
    lane = (lm.thread_of_lane % 32).astype(np.int64)
    a = np.broadcast_to(arg.astype(np.int64), lane.shape)
    source, valid = src(lane, a, width)
    partner = np.arange(lane.shape[0]) - lane + np.where(valid, source, lane)
    return value[partner]


def _xor(lane: np.ndarray, m: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    s = lane ^ (m & 31)
    return s, s < (lane // width + 1) * width


def _down(lane: np.ndarray, d: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    return lane + d, (lane % width) + d < width


def _up(lane: np.ndarray, d: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    return lane - d, (lane % width) >= d


def _idx(lane: np.ndarray, s: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    return lane // width * width + (s & (width - 1)), np.ones(lane.shape, dtype=bool)


def _shuffle_call(src: Source, what: str) -> Callable[..., Any]:
    def run(ex: Executor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
        value = ex.ev.eval(e.args[0], mask)
        arg = ex.ev.eval(e.args[1], mask)
        width = ex.ev.uniform_int(e.args[2], f"the width of {what}")
        return shuffle(ex, value, src, arg, width, mask, what)

    run.__doc__ = f"{what}(value, lane, width): CUDA's rule for the source lane and `width`."
    return run


for _name, _src, _what in (
    ("shfl_xor_w", _xor, "T.shfl_xor"),
    ("shfl_down", _down, "T.shfl_down"),
    ("shfl_up", _up, "T.shfl_up"),
    ("shfl_idx", _idx, "T.shfl_sync"),
):
    device_call(f"tsir.warp.{_name}")(_shuffle_call(_src, _what))


def _combine(kind: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if kind == "sum":
        return a + b
    if kind in ("max", "min"):
        if a.dtype.kind == "f":
            return np.fmax(a, b) if kind == "max" else np.fmin(a, b)
        return np.maximum(a, b) if kind == "max" else np.minimum(a, b)
    return np.bitwise_and(a, b) if kind == "bitand" else np.bitwise_or(a, b)


def _warp_reduce(kind: str) -> Callable[..., Any]:
    what = f"T.warp_reduce_{kind}"

    def run(ex: Executor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
        value = ex.ev.eval(e.args[0], mask)
        _check(ex, mask, what)
        out_dt = np_dtype(e.dtype)
        n = ex.ctx.lanes.n
        v = np.broadcast_to(value, (n,)).astype(out_dt)
        narrow = e.dtype.name in NARROW_FLOATS
        lane = (ex.ctx.lanes.thread_of_lane % 32).astype(np.int64)
        base = np.arange(n) - lane
        # The header's butterfly, step by step, rounding to the dtype after each step.
        for m in (16, 8, 4, 2, 1):
            other = v[base + (lane ^ m)]
            if narrow:
                v = _combine(kind, v.astype(np.float32), other.astype(np.float32)).astype(out_dt)
            else:
                v = _combine(kind, v, other).astype(out_dt)
        return v

    run.__doc__ = f"{what}(v): the butterfly over the 32 lanes; every lane gets the result."
    return run


for _kind in ("sum", "max", "min", "bitand", "bitor"):
    device_call(f"tsir.warp.warp_reduce_{_kind}")(_warp_reduce(_kind))
