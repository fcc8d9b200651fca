"""`T.print(obj=None, msg="", warp_group_id=0, warp_id=0)`: printing from device code, TileLang's
semantics (tsir/debug.h; every line names the block and the thread):

- an expression: printed by every thread that runs the statement (`msg` defaults to
  `expr<...>`);
- a shared tile or a fragment (through a shared copy): every element, by one thread of each block,
  thread `warp_group_id * 128 + warp_id * 32` (y and z 0); a global buffer: by that thread too;
- a thread's own registers (`T.alloc_local` / `T.alloc_var`): every element, by every thread;
- nothing (`T.print(msg="...")`): the message, by every thread.

The interpreter prints the same lines to stdout (lanes in order; the GPU's order is its own).
"""

from __future__ import annotations

from typing import Any

from ..buffer import Buffer
from ..dtype import DataType
from ..errors import BuildError
from ..expr import BufferLoad, Call, PrimExpr, StringImm, cast, convert
from ..printer_expr import print_expr
from ..stmt import Evaluate
from .frame import current_builder
from .memory import alloc_shared, copy
from .structure import If, serial

__all__ = ["print"]

_INT32 = DataType("int32")


def _widened(value: PrimExpr) -> PrimExpr:
    """The value as debug.h takes it: long long, unsigned long long or double."""
    dt = value.dtype
    if dt.is_unsigned:
        wide = DataType("uint64")
    elif dt.is_int or dt.is_bool:
        wide = DataType("int64")
    else:
        wide = DataType("float64")
    return value if dt == wide else cast(wide, value)


def _emit_call(op: str, *args: PrimExpr) -> None:
    current_builder("T.print").frame.emit(Evaluate(Call(_INT32, f"tsir.debug.{op}", args)))


def _print_elements(buf: Buffer, msg: str, name: str | None = None) -> None:
    """Every element of `buf`, in row-major order (named `name`, default its own)."""
    count = 1
    for d in buf.shape:
        count = count * d
    for i in serial(count):
        idx: list[PrimExpr] = []
        rest: PrimExpr = i
        for d in reversed(buf.shape[1:]):
            idx.append(rest % d)
            rest = rest // d
        idx.append(rest)
        value = BufferLoad(buf, tuple(reversed(idx)))
        _emit_call(
            "print_buffer_value",
            StringImm(msg),
            StringImm(name or buf.name),
            i,
            StringImm(str(buf.dtype)),
            _widened(value),
        )


def print(  # noqa: A001  (TileLang's name)
    obj: Any = None, msg: str = "", warp_group_id: int = 0, warp_id: int = 0
) -> None:
    """Print `obj` (an expression, a buffer, or nothing) from device code (module docstring)."""
    b = current_builder("T.print")
    k = b.kernel
    if k is None:
        raise BuildError("T.print must be inside a T.Kernel (it prints from device code)")
    if not isinstance(msg, str):
        raise BuildError(f"T.print: msg must be a string, got {msg!r}")
    if obj is None:
        if not msg:
            raise BuildError("T.print() needs something to print: a value, a buffer or msg=")
        _emit_call("print_msg", StringImm(msg))
        return
    if isinstance(obj, Buffer):
        label = msg or f"buffer<{obj.name}, {obj.dtype}>"
        if obj.scope in ("local", "local.var"):
            _print_elements(obj, label)
            return
        main = warp_group_id * 128 + warp_id * 32
        cond = k.thread_vars[0] == main
        for v in k.thread_vars[1:]:
            cond = cond & (v == 0)
        name = obj.name
        if obj.scope == "local.fragment":  # its elements are spread over the threads
            smem = alloc_shared(obj.shape, obj.dtype)
            copy(obj, smem)
            obj = smem
        elif obj.scope not in ("shared", "shared.dyn", "global", "symmetric"):
            raise BuildError(f"T.print: buffers in {obj.scope} are not supported")
        with If(cond):
            _print_elements(obj, label, name)
        return
    value = convert(obj)
    if value.dtype.lanes != 1 or value.dtype.is_handle:
        raise BuildError(
            f"T.print takes a scalar value or a buffer, got `{print_expr(value)}` of dtype "
            f"{value.dtype}"
        )
    label = msg or f"expr<{print_expr(value)}>"
    _emit_call("print_value", StringImm(label), StringImm(str(value.dtype)), _widened(value))
