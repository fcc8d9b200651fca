"""The element-math half of `tsir.T`: casts, selects, min/max, the math intrinsics, and typed
constants (`T.float16(0.5)`)."""

from __future__ import annotations

from typing import Any

from ..dtype import bool_
from ..dtype import dtype as as_dtype
from ..errors import ArithError, DTypeError
from ..expr import Broadcast as _Broadcast
from ..expr import Call, FloatImm, IntImm, Max, Min, PrimExpr, Select, binary, convert
from ..expr import Ramp as _Ramp
from ..expr import cast as _cast
from ..intrin import MATH_UNARY

__all__ = [
    "cast",
    "if_then_else",
    "infinity",
    "ceildiv",
    "max",
    "min",
    "abs",
    "all",
    "any",
    *MATH_UNARY,
    "Ramp",
    "Broadcast",
]


def as_cond(cond: Any, what: str) -> PrimExpr:
    c = convert(cond)
    if not c.dtype.is_bool:
        raise DTypeError(f"{what} needs a boolean condition, got `{c}` of dtype {c.dtype}")
    return c


def cast(value: Any, dtype: Any) -> PrimExpr:
    return _cast(as_dtype(dtype), value)


def ceildiv(a: Any, b: Any) -> Any:
    """Ceiling division of integers (a Python int when both are ints)."""
    if isinstance(a, int) and isinstance(b, int) and not isinstance(a, bool):
        if b == 0:
            raise ArithError(f"T.ceildiv({a}, 0): division by zero")
        return -(-a // b)
    if isinstance(b, int):
        return (convert(a) + (b - 1)) // b
    return (convert(a, b.dtype) + b - 1) // b


def if_then_else(cond: Any, t: Any, f: Any) -> PrimExpr:
    c = as_cond(cond, "T.if_then_else")
    if isinstance(t, PrimExpr):
        fe = convert(f, t.dtype)
        te = t
    else:
        fe = convert(f)
        te = convert(t, fe.dtype)
    if te.dtype != fe.dtype:
        raise DTypeError(
            f"T.if_then_else branches have different dtypes: {te.dtype} and {fe.dtype}"
        )
    if isinstance(c, IntImm):
        return te if c.value else fe
    return Select(c, te, fe)


def infinity(dtype: Any) -> PrimExpr:
    dt = as_dtype(dtype)
    if not dt.is_float:
        raise DTypeError(f"T.infinity needs a float dtype, got {dt}")
    return FloatImm(float("inf"), dt)


def max(a: Any, b: Any) -> PrimExpr:  # noqa: A001
    return binary(Max, a, b)


def min(a: Any, b: Any) -> PrimExpr:  # noqa: A001
    return binary(Min, a, b)


def abs(x: Any) -> PrimExpr:  # noqa: A001
    e = convert(x)
    if e.dtype.is_unsigned or e.dtype.is_bool:
        return e
    return Call(e.dtype, "abs", (e,))


def all(*conds: Any) -> PrimExpr:  # noqa: A001
    """The conjunction of conditions (True for none)."""
    if not conds:
        return IntImm(1, bool_)
    out = as_cond(conds[0], "T.all")
    for c in conds[1:]:
        out = out & as_cond(c, "T.all")
    return out


def any(*conds: Any) -> PrimExpr:  # noqa: A001
    """The disjunction of conditions (False for none)."""
    if not conds:
        return IntImm(0, bool_)
    out = as_cond(conds[0], "T.any")
    for c in conds[1:]:
        out = out | as_cond(c, "T.any")
    return out


def _math(name: str) -> Any:
    def fn(x: Any) -> PrimExpr:
        e = convert(x)
        if not e.dtype.is_float:
            raise DTypeError(
                f"T.{name} needs a floating-point operand, got `{e}` of dtype {e.dtype}; use T.cast"
            )
        return Call(e.dtype, name, (e,))

    fn.__name__ = name
    fn.__doc__ = f"Element-wise {name} of a floating-point expression."
    return fn


for _name in MATH_UNARY:
    globals()[_name] = _math(_name)


def Ramp(base: Any, stride: Any, lanes: int) -> PrimExpr:  # noqa: N802  (the node's name)
    """The vector `base, base + stride, ...` of `lanes` integers (the printer's form of a vector
    index after VectorizeLoop)."""
    b = convert(base)
    if not isinstance(lanes, int) or isinstance(lanes, bool) or lanes < 2:
        raise DTypeError(f"T.Ramp: lanes must be an int >= 2, got {lanes!r}")
    return _Ramp(b, convert(stride, b.dtype), lanes)


def Broadcast(value: Any, lanes: int) -> PrimExpr:  # noqa: N802  (the node's name)
    """`value` in each of `lanes` lanes (the printer's form of a vector of one value)."""
    if not isinstance(lanes, int) or isinstance(lanes, bool) or lanes < 2:
        raise DTypeError(f"T.Broadcast: lanes must be an int >= 2, got {lanes!r}")
    return _Broadcast(convert(value), lanes)


def typed_constant(name: str) -> Any:
    """`T.int64(5)`, `T.float16(0.5)`, `T.bool(True)`, `T.float32("-inf")`: a constant of the named
    dtype (an expression argument is cast). The printer writes constants this way when a bare
    literal would get another dtype. Resolved here, not as globals, so `bool`, `int` stay builtins."""
    try:
        dt = as_dtype(name)
    except Exception:
        dt = None
    if dt is None or str(dt) != name or dt.lanes != 1 or dt.is_handle:
        raise AttributeError(f"module 'tsir.T' has no attribute {name!r}")

    def make(value: Any) -> PrimExpr:
        if isinstance(value, PrimExpr):
            return _cast(dt, value)
        if isinstance(value, str) and dt.is_float:
            value = float(value)  # "inf", "-inf", "nan"
        return convert(value, dt)

    make.__name__ = name
    return make
