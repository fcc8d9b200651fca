"""Constant folding with each dtype's real semantics.

Integers wrap (two's complement, C semantics), `//` and `%` round toward minus infinity, floats are
IEEE binary formats rounded to nearest-even after every operation. The value-level functions here
are shared by the simplifier (`fold_node`) and by the reference interpreter (`evaluate`), so what
the simplifier folds is exactly what the interpreter computes.

Deliberately not folded (the result would depend on how code generation lowers the operation):
arithmetic and casts producing float8, float min/max involving NaN or signed zeros, float-to-int
casts of NaN or out-of-range values (undefined behaviour in C).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ..dtype import DataType
from ..errors import ArithError
from ..expr import wrap_int

__all__ = [
    "NoFold",
    "wrap",
    "round_float",
    "int_binary",
    "float_binary",
    "compare",
    "cast_value",
]


class NoFold(Exception):
    """Raised by a value function when folding would guess at device semantics."""


def wrap(value: int, dt: DataType) -> int:
    return wrap_int(value, dt)


# --------------------------------------------------------------------------------------------------
# floats

_MANTISSA_BITS = {"float16": 11, "bfloat16": 8, "float32": 24, "float64": 53}


def _f32_to_bf16(v: float) -> float:
    bits = int(np.array([v], dtype=np.float32).view(np.uint32)[0])
    if math.isnan(v):
        return v
    # round to nearest even on the 16 dropped bits
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    return float(np.array([bits], dtype=np.uint32).view(np.float32)[0])


def round_float(v: float, dt: DataType) -> float:
    """Round a float64 value to dt (correct for the result of one +, -, *, / of dt values)."""
    name = dt.name
    if name == "float64":
        return v
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        if name == "float32":
            return float(np.float32(v))
        if name == "float16":
            return float(np.float16(v))
        if name == "bfloat16":
            return _f32_to_bf16(float(np.float32(v)))
    raise NoFold(name)


def _int_to_float(v: int, dt: DataType) -> float:
    """Correctly rounded integer -> float conversion (round to nearest even)."""
    p = _MANTISSA_BITS.get(dt.name)
    if p is None:
        raise NoFold(dt.name)
    n = abs(v)
    if n.bit_length() > p:
        shift = n.bit_length() - p
        q, r = divmod(n, 1 << shift)
        half = 1 << (shift - 1)
        if r > half or (r == half and q & 1):
            q += 1
        n = q << shift
    # n now has at most p significant bits; float64 holds it exactly unless it overflows
    try:
        f = float(n)
    except OverflowError:
        f = math.inf
    f = round_float(f, dt)  # only overflow to inf can still happen here
    return -f if v < 0 else f


def float_binary(op: str, a: float, b: float, dt: DataType) -> float:
    if op == "Add":
        r = a + b
    elif op == "Sub":
        r = a - b
    elif op == "Mul":
        r = a * b
    elif op == "Div":
        if b == 0.0:
            if a == 0.0 or math.isnan(a):
                r = math.nan
            else:
                r = math.copysign(math.inf, a) * math.copysign(1.0, b)
        else:
            r = a / b
    elif op in ("Min", "Max"):
        if (
            math.isnan(a)
            or math.isnan(b)
            or (a == b and math.copysign(1, a) != math.copysign(1, b))
        ):
            raise NoFold(op)
        r = min(a, b) if op == "Min" else max(a, b)
    else:
        raise NoFold(op)
    return round_float(r, dt)


# --------------------------------------------------------------------------------------------------
# integers


def _floordiv(a: int, b: int) -> int:
    return a // b


def _floormod(a: int, b: int) -> int:
    return a % b


_INT_OPS: dict[str, Callable[[int, int], int]] = {
    "Add": lambda a, b: a + b,
    "Sub": lambda a, b: a - b,
    "Mul": lambda a, b: a * b,
    "FloorDiv": _floordiv,
    "FloorMod": _floormod,
    "Min": min,
    "Max": max,
}


def int_binary(op: str, a: int, b: int, dt: DataType, what: Callable[[], str] | None = None) -> int:
    """`a op b` in dt. Division by zero raises ArithError; `what()` describes the expression."""
    if op in ("FloorDiv", "FloorMod") and b == 0:
        sym = "//" if op == "FloorDiv" else "%"
        text = what() if what is not None else f"{a} {sym} 0"
        raise ArithError(
            f"constant {'division' if op == 'FloorDiv' else 'modulo'} by zero in `{text}` ({dt}); "
            "guard the divisor or fix the constant"
        )
    fn = _INT_OPS.get(op)
    if fn is None:
        raise NoFold(op)
    return wrap(fn(a, b), dt)


_CMP: dict[str, Callable[[object, object], bool]] = {
    "EQ": lambda a, b: a == b,
    "NE": lambda a, b: a != b,
    "LT": lambda a, b: a < b,  # pyright: ignore[reportOperatorIssue]  # numbers of one kind, by the table's construction
    "LE": lambda a, b: a <= b,  # pyright: ignore[reportOperatorIssue]  # numbers of one kind, by the table's construction
    "GT": lambda a, b: a > b,  # pyright: ignore[reportOperatorIssue]  # numbers of one kind, by the table's construction
    "GE": lambda a, b: a >= b,  # pyright: ignore[reportOperatorIssue]  # numbers of one kind, by the table's construction
}


def compare(op: str, a: int | float, b: int | float) -> bool:
    """IEEE comparison for floats (NaN compares unequal to everything), exact for integers."""
    return _CMP[op](a, b)


def cast_value(v: int | float, src: DataType, dst: DataType) -> int | float:
    """C conversion of one scalar value from src to dst."""
    if dst.is_bool:
        return 1 if v != 0 else 0  # NaN != 0 is true, as in C
    if dst.is_int:
        if src.is_float:
            f = float(v)
            if math.isnan(f) or math.isinf(f):
                raise NoFold("cast")
            t = math.trunc(f)
            if not (dst.min_value() <= t <= dst.max_value()):
                raise NoFold("cast")  # undefined behaviour in C
            return t
        return wrap(int(v), dst)
    if dst.is_float:
        if dst.name not in _MANTISSA_BITS:
            raise NoFold("cast")
        if src.is_float:
            return round_float(float(v), dst)
        return _int_to_float(int(v), dst)
    raise NoFold("cast")
