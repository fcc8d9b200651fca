"""Reference semantics of tsir's device-header functions: ONE table, keyed by the call's name.

This is the one place where the meaning of a header function (codegen/include/tsir/*.h) is
written a second time, in numpy; each entry says which header function it mirrors. A call whose
name is not in the table raises `UnknownDeviceCallError` naming it: nothing is skipped.

Call names carry C++ template arguments in the op string today
(`tsir.gemm_sm80.gemm_ss<64, 64, 32, 2, 2, false, false, 64, 32, 64, 64>`); `parse_device_call`
is the only code that reads that spelling.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..expr import Call
from .errors import ExternCallError, InterpretUnsupportedError, UnknownDeviceCallError
from .lanes import Mask
from .memory import Pointer
from .mma import gemm_rs, gemm_ss

if TYPE_CHECKING:
    from .thread import ThreadExecutor

__all__ = ["DEVICE_CALLS", "device_call", "parse_device_call", "call_device"]

DeviceFn = Callable[["ThreadExecutor", Call, tuple[str, ...], Mask], Any]
DEVICE_CALLS: dict[str, DeviceFn] = {}


def device_call(name: str) -> Callable[[DeviceFn], DeviceFn]:
    def wrap(fn: DeviceFn) -> DeviceFn:
        if name in DEVICE_CALLS:
            raise ValueError(f"device call {name!r} registered twice")
        DEVICE_CALLS[name] = fn
        return fn

    return wrap


def parse_device_call(op: str) -> tuple[str, tuple[str, ...]]:
    """`"tsir.h.f<1, true>"` -> `("tsir.h.f", ("1", "true"))`: the name and its template "
    "arguments."""
    lt = op.find("<")
    if lt < 0:
        return op, ()
    if not op.endswith(">"):
        raise InterpretUnsupportedError(f"device call {op!r}: unbalanced template arguments")
    inner = op[lt + 1 : -1]
    args: list[str] = []
    depth, cur = 0, ""
    for ch in inner:
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        if ch == "," and depth == 0:
            args.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        args.append(cur.strip())
    return op[:lt], tuple(args)


def call_device(ex: ThreadExecutor, e: Call, mask: Mask) -> Any:
    name, targs = parse_device_call(e.op)
    fn = DEVICE_CALLS.get(name)
    if fn is None and name.startswith("extern:"):
        raise ExternCallError(
            f"`{name[len('extern:') :]}` is hand-written CUDA (T.call_extern / T.import_source): "
            f"the interpreter cannot run it, so this kernel can only be checked on the GPU"
            f"{ex.ctx.where()}"
        )
    if fn is None:
        raise UnknownDeviceCallError(
            f"no reference semantics for the device call `{e.op}` (known: "
            f"{', '.join(sorted(DEVICE_CALLS))}); "
            f"add an entry to tsir/interpret/device_calls.py"
        )
    return fn(ex, e, targs, mask)


_ZERO = np.zeros(1, dtype=np.int32)


def _ptr(ex: ThreadExecutor, e: Any, mask: Mask, what: str) -> Pointer:
    p = ex.ev.eval(e, mask)
    if not isinstance(p, Pointer):
        raise InterpretUnsupportedError(f"{what} expects an address (address_of), got `{e}`")
    return p


# -- async_copy.h ----------------------------------------------------------------------------------


@device_call("tsir.async_copy.cp_async_16")
def _cp_async_16(ex: ThreadExecutor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    """cp_async_16(smem, gmem, valid): 16 bytes global -> shared, landing at a later wait; with
    `valid` false the 16 shared bytes become zero and global memory is not read."""
    dst = _ptr(ex, e.args[0], mask, "cp_async_16")
    src = _ptr(ex, e.args[1], mask, "cp_async_16")
    valid = ex.ev.eval(e.args[2], mask)
    ex.async_copies.issue(dst, src, valid, mask)
    return _ZERO


@device_call("tsir.async_copy.cp_async_commit")
def _cp_async_commit(ex: ThreadExecutor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    """cp.async.commit_group: the thread's copies issued since the last commit form a group."""
    ex.async_copies.commit(mask)
    return _ZERO


@device_call("tsir.async_copy.cp_async_wait")
def _cp_async_wait(ex: ThreadExecutor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    """cp.async.wait_group N: all but the N most recent committed groups of the thread landed."""
    if len(targs) != 1 or not targs[0].lstrip("-").isdigit():
        raise InterpretUnsupportedError(
            f"cp_async_wait needs one integer template argument: {e.op}"
        )
    ex.async_copies.wait(int(targs[0]), mask)
    return _ZERO


# -- reduce.h --------------------------------------------------------------------------------------


@device_call("tsir.reduce.shfl_xor")
def _shfl_xor(ex: ThreadExecutor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    """shfl_xor(v, mask): __shfl_xor_sync(0xffffffff, v, mask), all 32 lanes taking part."""
    v = ex.ev.eval(e.args[0], mask)
    m = ex.ev.eval(e.args[1], mask)
    return ex.shfl_xor(v, m, mask)


# -- gemm_sm80.h -----------------------------------------------------------------------------------


@device_call("tsir.gemm_sm80.gemm_ss")
def _gemm_ss(ex: ThreadExecutor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    """gemm_ss<M, N, K, WARPS_M, WARPS_N, TRANS_A, TRANS_B, SWZ_A, LD_A, SWZ_B, LD_B>(A, B, c)."""
    if len(targs) != 11:
        raise InterpretUnsupportedError(f"gemm_ss takes 11 template arguments: {e.op}")
    gemm_ss(ex, targs, e.args, mask)
    return _ZERO


@device_call("tsir.gemm_sm80.gemm_rs")
def _gemm_rs(ex: ThreadExecutor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    """gemm_rs<M, N, K, WARPS_M, WARPS_N, TRANS_B, SWZ_B, LD_B>(a_registers, B, c)."""
    if len(targs) != 8:
        raise InterpretUnsupportedError(f"gemm_rs takes 8 template arguments: {e.op}")
    gemm_rs(ex, targs, e.args, mask)
    return _ZERO
