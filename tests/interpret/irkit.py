"""Helpers for writing thread-level IR by hand in tests: the builder for structure, raw nodes for
device calls (what passes emit and the builder does not offer)."""

from __future__ import annotations

from typing import Any

import tsir
from tsir import T
from tsir.dtype import DataType
from tsir.expr import BufferLoad, Call, IntImm, PrimExpr
from tsir.stmt import Evaluate

I32 = DataType("int32")
F32 = DataType("float32")
HANDLE = DataType("handle")


def emit(stmt: Any) -> None:
    """Append a raw statement to the builder block being written."""
    from tsir.builder.frame import current_builder

    current_builder("emit").frame.emit(stmt)


def call(dtype: Any, op: str, *args: Any) -> Call:
    return Call(
        tsir.dtype(dtype) if not isinstance(dtype, DataType) else dtype,
        op,
        tuple(a if isinstance(a, PrimExpr) else tsir.convert(a) for a in args),
    )


def evaluate(dtype: Any, op: str, *args: Any) -> None:
    emit(Evaluate(call(dtype, op, *args)))


def addr(load: BufferLoad) -> Call:
    return Call(HANDLE, "address_of", (load,))


def const(v: int) -> IntImm:
    return IntImm(v, I32)


_ = T


# -- the Hopper headers ----------------------------------------------------------------------------


def u32(load: BufferLoad) -> Call:
    """`tsir::shared_u32(&load)`: the shared-window address the Hopper headers take."""
    return call("uint32", "tsir.mbarrier.shared_u32", addr(load))


def tensor_map(buf: Any, box: tuple[int, ...], swizzle: int) -> Call:
    """The IR form of a TMA tensor map of the whole global buffer `buf`."""
    zero = buf[tuple(0 for _ in buf.shape)]
    return call("handle", "tma_descriptor", addr(zero), *box, swizzle)


def mb(fn: str, *args: Any) -> None:
    """An mbarrier.h call as a statement (`mb("mbarrier_wait", u32(bar[0]), 0)`)."""
    evaluate("int32", f"tsir.mbarrier.{fn}", *args)


def tma(fn: str, *args: Any) -> None:
    evaluate("int32", f"tsir.tma.{fn}", *args)


def wg(fn: str, *args: Any) -> None:
    evaluate("int32", f"tsir.wgmma.{fn}", *args)


def desc(address: Any, lbo: int, sbo: int, swizzle: int) -> Call:
    """`tsir::wgmma_desc(address, lbo, sbo, layout type)` (1 = 128B, 2 = 64B, 3 = 32B, 0 none)."""
    return call("uint64", "tsir.wgmma.wgmma_desc", address, lbo, sbo, swizzle)
