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
    return Call(tsir.dtype(dtype) if not isinstance(dtype, DataType) else dtype, op,
                tuple(a if isinstance(a, PrimExpr) else tsir.convert(a) for a in args))


def evaluate(dtype: Any, op: str, *args: Any) -> None:
    emit(Evaluate(call(dtype, op, *args)))


def addr(load: BufferLoad) -> Call:
    return Call(HANDLE, "address_of", (load,))


def const(v: int) -> IntImm:
    return IntImm(v, I32)


_ = T
