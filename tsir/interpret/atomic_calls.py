"""Reference semantics of atomic.h (T.atomic_add/max/min with a memory order, T.atomic_addx2/x4):
entries of the one device-call table (device_calls.py).

Lanes update in lane order and each gets the value its update saw. The interpreter executes with
sequential consistency, so a memory order changes nothing here (it orders the device's memory
accesses; the template argument is only checked to be one of TileLang's ids). A vector add updates
each element atomically, from a pointer aligned to the vector (a misaligned one faults on the
device: MisalignedAccessError); float2/float4 adds exist in global memory only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..expr import Call
from .device_calls import device_call
from .errors import InterpretUnsupportedError
from .lanes import Mask
from .memory import Pointer

if TYPE_CHECKING:
    from .executor import Executor

_ZERO = np.zeros(1, dtype=np.int32)


def _pointer(ex: Executor, e: Any, mask: Mask, what: str) -> Pointer:
    p = ex.ev.eval(e, mask)
    if not isinstance(p, Pointer):
        raise InterpretUnsupportedError(f"{what} expects an address (address_of), got `{e}`")
    return p


def _order(targs: tuple[str, ...], e: Call) -> None:
    if len(targs) != 1 or targs[0] not in ("0", "1", "2", "3", "4", "5"):
        raise InterpretUnsupportedError(
            f"{e.op}: expected a memory-order id 0..5 as template argument"
        )


def _scalar(op: str) -> Callable[..., Any]:
    def run(ex: Executor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
        _order(targs, e)
        ptr = _pointer(ex, e.args[0], mask, f"atomic_{op}")
        value = ex.ev.eval(e.args[1], mask)
        return ex.mem.atomic_update(ptr, value, mask, op)

    run.__doc__ = f"atomic_{op}<ORDER>(&x, v) -> old: lane-ordered read-modify-write."
    return run


for _op in ("add", "max", "min"):
    device_call(f"tsir.atomic.atomic_{_op}")(_scalar(_op))


def _element(ex: Executor, ptr: Pointer, k: int) -> Pointer:
    """The pointer to the element `k` places after `ptr` along the buffer's last dimension."""
    if k == 0:
        return ptr
    index = (*ptr.index[:-1], ptr.index[-1] + k)
    view = ptr.view
    off, _ = view.offsets([np.asarray(i) for i in index])
    if view.table is not None and not np.array_equal(
        np.broadcast_to(off, ptr.elem.shape), ptr.elem + k
    ):
        raise InterpretUnsupportedError(
            f"a vector atomic into `{view.name}`, whose layout does not keep the vector's elements "
            f"next to each other"
        )
    return Pointer(view, ptr.elem + k, index, ptr.rank)


def _vector(n: int, f32: bool) -> Callable[..., Any]:
    def run(ex: Executor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
        ptr = _pointer(ex, e.args[0], mask, e.op)
        view = ptr.view
        if f32 and view.scope not in ("global", "symmetric"):
            raise InterpretUnsupportedError(
                f"{e.op} into `{view.name}` ({view.scope}): float2/float4 atomics exist in global "
                f"memory only"
            )
        lanes, _, el = ex.mem.ptr_lanes(ptr, mask)
        width = n * view.itemsize
        ex.mem._alignment(
            view, view.byte_offset + el * view.itemsize, lanes, width, f"{n}-wide atomic add"
        )
        for k in range(n):
            value = ex.ev.eval(e.args[1 + k], mask)
            ex.mem.atomic_update(_element(ex, ptr, k), value, mask, "add")
        return _ZERO

    run.__doc__ = f"atomic_add_x{n}(&x[0], v0, ..., v{n - 1}): x[k] += v_k, each atomically."
    return run


device_call("tsir.atomic.atomic_add_x2")(_vector(2, False))
device_call("tsir.atomic.atomic_add_x2_f32")(_vector(2, True))
device_call("tsir.atomic.atomic_add_x4_f32")(_vector(4, True))
