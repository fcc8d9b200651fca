"""Reference semantics of debug.h (T.print): entries of the one device-call table
(device_calls.py). Each active lane prints the line the device prints (same text, `%f` / integer
formatting), in lane order, to stdout. At the tile level inside T.Parallel the lanes are the
nest's iterations, which belong to no thread yet: printing there is refused."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import numpy as np

from ..expr import Call
from .device_calls import device_call
from .errors import InterpretUnsupportedError
from .lanes import Mask

if TYPE_CHECKING:
    from .executor import Executor

_ZERO = np.zeros(1, dtype=np.int32)


def _ids(ex: Executor, lane: int) -> str:
    block, thread = ex.ctx.lanes.who(lane)
    b = (*block, 0, 0, 0)[:3]
    t = (*thread, 0, 0, 0)[:3]
    return f"BlockIdx=({b[0]}, {b[1]}, {b[2]}), ThreadIdx=({t[0]}, {t[1]}, {t[2]})"


def _lanes(ex: Executor, mask: Mask) -> np.ndarray:
    if getattr(ex, "in_parallel", False):
        raise InterpretUnsupportedError(
            "T.print inside T.Parallel: its iterations belong to no thread until the nest is "
            "lowered; print outside the nest, or check the lowered stages"
        )
    return mask.idx


def _fmt(value: Any) -> str:
    if isinstance(value, (np.floating, float)):
        return "%f" % float(value)
    return str(int(value))


def _at(x: np.ndarray, lane: int) -> Any:
    return x[lane] if x.shape[0] > 1 else x[0]


@device_call("tsir.debug.print_msg")
def _print_msg(ex: Executor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    """print_msg(msg): the message and the ids."""
    msg = ex.ev.eval(e.args[0], mask)
    for lane in _lanes(ex, mask).tolist():
        sys.stdout.write(f"msg='{msg}' {_ids(ex, lane)}\n")
    return _ZERO


@device_call("tsir.debug.print_value")
def _print_value(ex: Executor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    """print_value(msg, dtype, v): one line per active lane."""
    msg, dtype = ex.ev.eval(e.args[0], mask), ex.ev.eval(e.args[1], mask)
    v = ex.ev.eval(e.args[2], mask)
    for lane in _lanes(ex, mask).tolist():
        sys.stdout.write(
            f"msg='{msg}' {_ids(ex, lane)}: dtype={dtype} value={_fmt(_at(v, lane))}\n"
        )
    return _ZERO


@device_call("tsir.debug.print_buffer_value")
def _print_buffer_value(ex: Executor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    """print_buffer_value(msg, buffer, index, dtype, v): one line per active lane."""
    msg, name = ex.ev.eval(e.args[0], mask), ex.ev.eval(e.args[1], mask)
    index, dtype = ex.ev.eval(e.args[2], mask), ex.ev.eval(e.args[3], mask)
    v = ex.ev.eval(e.args[4], mask)
    for lane in _lanes(ex, mask).tolist():
        sys.stdout.write(
            f"msg='{msg}' {_ids(ex, lane)}: buffer={name}, index={int(_at(index, lane))}, "
            f"dtype={dtype} value={_fmt(_at(v, lane))}\n"
        )
    return _ZERO
