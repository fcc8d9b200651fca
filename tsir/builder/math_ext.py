"""Element math beyond the unary intrinsics: `T.pow`, `T.fma`, `T.sigmoid`, `T.clamp`,
`T.isnan`/`T.isinf` and `T.reinterpret` (TileLang's / TVM's names and argument orders).

`T.sigmoid` and `T.clamp` are built from existing nodes (`1 / (1 + exp(-x))`, `min(max(x, lo),
hi)`), so every pass, the code generator and the interpreter already know them; the others are
intrinsics of `tsir.intrin` with a CUDA spelling per dtype in the code generator and numpy
semantics in the interpreter. Operands follow DESIGN's rule: Python literals take the other
operand's dtype, two IR dtypes must agree (T.cast otherwise).
"""

from __future__ import annotations

from typing import Any

from ..dtype import DataType, bool_
from ..dtype import dtype as as_dtype
from ..errors import DTypeError
from ..expr import Call, Div, IntImm, Max, Min, PrimExpr, binary, convert

__all__ = ["pow", "fma", "sigmoid", "clamp", "isnan", "isinf", "reinterpret"]


def _float_operands(what: str, *values: Any) -> tuple[PrimExpr, ...]:
    """The operands as expressions of one float dtype (literals take the others' dtype)."""
    like: DataType | None = next((v.dtype for v in values if isinstance(v, PrimExpr)), None)
    exprs = tuple(convert(v, like) for v in values)
    dt = exprs[0].dtype
    for e in exprs[1:]:
        if e.dtype != dt:
            raise DTypeError(
                f"{what} mixes {dt} (`{exprs[0]}`) and {e.dtype} (`{e}`); convert one side with "
                f"T.cast"
            )
    if not dt.is_float:
        raise DTypeError(f"{what} needs floating-point operands, got {dt}; use T.cast")
    return exprs


def pow(x: Any, y: Any) -> PrimExpr:  # noqa: A001  (TileLang's name)
    """`x ** y` (CUDA powf/pow; half types compute in float32)."""
    a, b = _float_operands("T.pow", x, y)
    return Call(a.dtype, "pow", (a, b))


def fma(a: Any, b: Any, c: Any) -> PrimExpr:
    """`a * b + c` rounded once (CUDA fmaf/fma/__hfma)."""
    x, y, z = _float_operands("T.fma", a, b, c)
    return Call(x.dtype, "fma", (x, y, z))


def sigmoid(x: Any) -> PrimExpr:
    """`1 / (1 + exp(-x))` in the operand's dtype."""
    (e,) = _float_operands("T.sigmoid", x)
    return binary(Div, 1, 1 + Call(e.dtype, "exp", (-e,)))


def clamp(x: Any, min_val: Any, max_val: Any) -> PrimExpr:
    """`min(max(x, min_val), max_val)` (TileLang's `T.clamp(dst, min_val, max_val)`); NaN bounds
    are ignored, as by CUDA's fmaxf/fminf."""
    e = convert(x)
    return binary(Min, binary(Max, e, min_val), max_val)


def _classify(name: str, x: Any) -> PrimExpr:
    e = convert(x)
    if e.dtype.lanes != 1:
        raise DTypeError(f"T.{name} takes a scalar, got `{e}` of dtype {e.dtype}")
    if not e.dtype.is_float:
        return IntImm(0, bool_)  # an integer is never NaN or infinite (TVM folds it the same)
    return Call(bool_, name, (e,))


def isnan(x: Any) -> PrimExpr:
    """Whether `x` is NaN (a bool expression; False for integers)."""
    return _classify("isnan", x)


def isinf(x: Any) -> PrimExpr:
    """Whether `x` is +inf or -inf (a bool expression; False for integers)."""
    return _classify("isinf", x)


def reinterpret(dtype: Any, value: Any) -> PrimExpr:
    """The bits of `value` read as `dtype` (TVM's `T.reinterpret(dtype, value)`): both have the same
    width, e.g. float32 <-> int32/uint32, float16 <-> int16."""
    dt = as_dtype(dtype)
    e = convert(value)
    for d, what in ((dt, "the target dtype"), (e.dtype, f"`{e}`")):
        if d.lanes != 1 or d.is_bool or d.is_handle:
            raise DTypeError(f"T.reinterpret: {what} must be a scalar number type, got {d}")
    if dt.bits != e.dtype.bits:
        raise DTypeError(
            f"T.reinterpret({dt}, ...): `{e}` is {e.dtype} ({e.dtype.bits} bits), {dt} has "
            f"{dt.bits}; reinterpret needs one width"
        )
    if dt == e.dtype:
        return e
    return Call(dt, "reinterpret", (e,))
