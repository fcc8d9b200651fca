"""Expressions.

Python operators on expressions build nodes (`a + b` is `Add`, `a == b` is `EQ`), `//` and `%` are floor
division and floor modulo, Python literals take the dtype of the other operand, integer constants fold,
and arithmetic between two different IR dtypes is an error that asks for an explicit `T.cast`.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from .dtype import DataType, bool_, float32, int32
from .dtype import dtype as as_dtype
from .errors import ArithError, BuildError, DTypeError
from .node import Node, binder, node

if TYPE_CHECKING:
    from .buffer import Buffer

__all__ = [
    "PrimExpr",
    "Var",
    "IntImm",
    "FloatImm",
    "StringImm",
    "BinaryOp",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "FloorDiv",
    "FloorMod",
    "Min",
    "Max",
    "CmpOp",
    "EQ",
    "NE",
    "LT",
    "LE",
    "GT",
    "GE",
    "And",
    "Or",
    "Not",
    "Select",
    "Cast",
    "Ramp",
    "Broadcast",
    "BufferLoad",
    "Call",
    "Let",
    "convert",
    "const",
    "ExprLike",
    "is_const_int",
    "const_value",
    "implicit_promotion",
    "PromotionRule",
]


class PrimExpr(Node):
    """Base of all expressions. Every expression has a `dtype`."""

    __slots__ = ()
    dtype: DataType

    # arithmetic -------------------------------------------------------------------------------------
    def __add__(self, other: Any) -> PrimExpr:
        return binary(Add, self, other)

    def __radd__(self, other: Any) -> PrimExpr:
        return binary(Add, other, self)

    def __sub__(self, other: Any) -> PrimExpr:
        return binary(Sub, self, other)

    def __rsub__(self, other: Any) -> PrimExpr:
        return binary(Sub, other, self)

    def __mul__(self, other: Any) -> PrimExpr:
        return binary(Mul, self, other)

    def __rmul__(self, other: Any) -> PrimExpr:
        return binary(Mul, other, self)

    def __truediv__(self, other: Any) -> PrimExpr:
        return binary(Div, self, other)

    def __rtruediv__(self, other: Any) -> PrimExpr:
        return binary(Div, other, self)

    def __floordiv__(self, other: Any) -> PrimExpr:
        return binary(FloorDiv, self, other)

    def __rfloordiv__(self, other: Any) -> PrimExpr:
        return binary(FloorDiv, other, self)

    def __mod__(self, other: Any) -> PrimExpr:
        return binary(FloorMod, self, other)

    def __rmod__(self, other: Any) -> PrimExpr:
        return binary(FloorMod, other, self)

    def __neg__(self) -> PrimExpr:
        return binary(Sub, 0, self) if not self.dtype.is_unsigned else binary(Sub, 0, self)

    def __pos__(self) -> PrimExpr:
        return self

    # comparisons ------------------------------------------------------------------------------------
    def __lt__(self, other: Any) -> PrimExpr:
        return binary(LT, self, other)

    def __le__(self, other: Any) -> PrimExpr:
        return binary(LE, self, other)

    def __gt__(self, other: Any) -> PrimExpr:
        return binary(GT, self, other)

    def __ge__(self, other: Any) -> PrimExpr:
        return binary(GE, self, other)

    def __eq__(self, other: Any) -> Any:
        if not isinstance(other, (PrimExpr, int, float, bool)):
            return NotImplemented
        return binary(EQ, self, other)

    def __ne__(self, other: Any) -> Any:
        if not isinstance(other, (PrimExpr, int, float, bool)):
            return NotImplemented
        return binary(NE, self, other)

    __hash__ = Node.__hash__

    # logic ------------------------------------------------------------------------------------------
    def __and__(self, other: Any) -> PrimExpr:
        return logical_or_bitwise(And, "bitwise_and", self, other)

    def __rand__(self, other: Any) -> PrimExpr:
        return logical_or_bitwise(And, "bitwise_and", other, self)

    def __or__(self, other: Any) -> PrimExpr:
        return logical_or_bitwise(Or, "bitwise_or", self, other)

    def __ror__(self, other: Any) -> PrimExpr:
        return logical_or_bitwise(Or, "bitwise_or", other, self)

    def __xor__(self, other: Any) -> PrimExpr:
        a, b = _unify(self, other, "^")
        return Call(a.dtype, "bitwise_xor", (a, b))

    def __lshift__(self, other: Any) -> PrimExpr:
        a, b = _unify(self, other, "<<")
        return Call(a.dtype, "shift_left", (a, b))

    def __rshift__(self, other: Any) -> PrimExpr:
        a, b = _unify(self, other, ">>")
        return Call(a.dtype, "shift_right", (a, b))

    def __invert__(self) -> PrimExpr:
        if self.dtype.is_bool:
            return Not(self)
        return Call(self.dtype, "bitwise_not", (self,))

    def __bool__(self) -> bool:
        raise BuildError(
            f"the truth value of the symbolic expression `{self}` is unknown while building; "
            "use `with T.If(cond):` for control flow, `T.all(...)`/`T.any(...)` to combine "
            "conditions, and `is None` for presence checks"
        )

    def __index__(self) -> int:
        raise BuildError(f"`{self}` is symbolic and cannot be used as a Python integer")

    def astype(self, dt: Any) -> PrimExpr:
        return cast(as_dtype(dt), self)


ExprLike = PrimExpr | int | float | bool


@node
class Var(PrimExpr):
    """A scalar variable, identified by the object (the name is only for printing)."""

    name: str
    dtype: DataType = int32

    def __post_init__(self) -> None:
        if not isinstance(self.dtype, DataType):
            object.__setattr__(self, "dtype", as_dtype(self.dtype))


@node
class IntImm(PrimExpr):
    """An integer (or bool) constant; its value is always in range for its dtype."""

    value: int
    dtype: DataType = int32

    def __post_init__(self) -> None:
        if not isinstance(self.dtype, DataType):
            object.__setattr__(self, "dtype", as_dtype(self.dtype))

    def __bool__(self) -> bool:
        return bool(self.value)

    def __index__(self) -> int:
        return self.value

    def __int__(self) -> int:
        return self.value


@node
class FloatImm(PrimExpr):
    value: float
    dtype: DataType = float32

    def __post_init__(self) -> None:
        if not isinstance(self.dtype, DataType):
            object.__setattr__(self, "dtype", as_dtype(self.dtype))

    def __float__(self) -> float:
        return self.value


@node
class StringImm(PrimExpr):
    value: str

    @property
    def dtype(self) -> DataType:  # pyright: ignore[reportIncompatibleVariableOverride]  # computed from the operands (a property over the base's dtype field)
        return DataType("handle")


class BinaryOp(PrimExpr):
    __slots__ = ()
    a: PrimExpr
    b: PrimExpr

    @property
    def dtype(self) -> DataType:  # pyright: ignore[reportIncompatibleVariableOverride]  # computed from the operands (a property over the base's dtype field)
        return self.a.dtype


@node
class Add(BinaryOp):
    a: PrimExpr
    b: PrimExpr


@node
class Sub(BinaryOp):
    a: PrimExpr
    b: PrimExpr


@node
class Mul(BinaryOp):
    a: PrimExpr
    b: PrimExpr


@node
class Div(BinaryOp):
    """True division of floats (integer division is FloorDiv)."""

    a: PrimExpr
    b: PrimExpr


@node
class FloorDiv(BinaryOp):
    a: PrimExpr
    b: PrimExpr


@node
class FloorMod(BinaryOp):
    a: PrimExpr
    b: PrimExpr


@node
class Min(BinaryOp):
    a: PrimExpr
    b: PrimExpr


@node
class Max(BinaryOp):
    a: PrimExpr
    b: PrimExpr


class CmpOp(PrimExpr):
    __slots__ = ()
    a: PrimExpr
    b: PrimExpr

    @property
    def dtype(self) -> DataType:  # pyright: ignore[reportIncompatibleVariableOverride]  # computed from the operands (a property over the base's dtype field)
        return bool_.with_lanes(self.a.dtype.lanes)


def _comparison_truth(cmp: CmpOp, is_eq: bool) -> bool:
    """`bool(a == b)` / `bool(a != b)` of two expressions.

    Only an identical pair has a known answer (an expression equals itself). Anything else is a
    run-time value: a Python `if`, `while`, `and`, `or`, `not` or `in` on it would silently decide a
    branch the GPU should take, so it raises (DESIGN: comparisons `==` and `!=` included).
    """
    if cmp.a is cmp.b:
        return True
    op = "==" if is_eq else "!="
    raise BuildError(
        f"the truth value of `{cmp.a} {op} {cmp.b}` is only known on the GPU; a Python `if`, "
        "`while`, `and`, `or`, `not` or `in` cannot decide it while building. Use "
        "`with T.If(cond):` (or `T.if_then_else`) for control flow and `T.all(...)`/`T.any(...)` to "
        "combine conditions; to compare IR objects themselves, use `is`"
    )


@node
class EQ(CmpOp):
    a: PrimExpr
    b: PrimExpr

    def __bool__(self) -> bool:
        return _comparison_truth(self, True)


@node
class NE(CmpOp):
    a: PrimExpr
    b: PrimExpr

    def __bool__(self) -> bool:
        return not _comparison_truth(self, False)


@node
class LT(CmpOp):
    a: PrimExpr
    b: PrimExpr


@node
class LE(CmpOp):
    a: PrimExpr
    b: PrimExpr


@node
class GT(CmpOp):
    a: PrimExpr
    b: PrimExpr


@node
class GE(CmpOp):
    a: PrimExpr
    b: PrimExpr


@node
class And(PrimExpr):
    a: PrimExpr
    b: PrimExpr

    @property
    def dtype(self) -> DataType:  # pyright: ignore[reportIncompatibleVariableOverride]  # computed from the operands (a property over the base's dtype field)
        return self.a.dtype


@node
class Or(PrimExpr):
    a: PrimExpr
    b: PrimExpr

    @property
    def dtype(self) -> DataType:  # pyright: ignore[reportIncompatibleVariableOverride]  # computed from the operands (a property over the base's dtype field)
        return self.a.dtype


@node
class Not(PrimExpr):
    a: PrimExpr

    @property
    def dtype(self) -> DataType:  # pyright: ignore[reportIncompatibleVariableOverride]  # computed from the operands (a property over the base's dtype field)
        return self.a.dtype


@node
class Select(PrimExpr):
    """`cond ? true_value : false_value`; both sides may be evaluated (no side effects allowed)."""

    cond: PrimExpr
    true_value: PrimExpr
    false_value: PrimExpr

    @property
    def dtype(self) -> DataType:  # pyright: ignore[reportIncompatibleVariableOverride]  # computed from the operands (a property over the base's dtype field)
        return self.true_value.dtype


@node
class Cast(PrimExpr):
    dtype: DataType
    value: PrimExpr


@node
class Ramp(PrimExpr):
    """The vector `base, base + stride, ..., base + (lanes-1)*stride`."""

    base: PrimExpr
    stride: PrimExpr
    lanes: int

    @property
    def dtype(self) -> DataType:  # pyright: ignore[reportIncompatibleVariableOverride]  # computed from the operands (a property over the base's dtype field)
        return self.base.dtype.with_lanes(self.lanes)


@node
class Broadcast(PrimExpr):
    value: PrimExpr
    lanes: int

    @property
    def dtype(self) -> DataType:  # pyright: ignore[reportIncompatibleVariableOverride]  # computed from the operands (a property over the base's dtype field)
        return self.value.dtype.with_lanes(self.lanes)


@node
class BufferLoad(PrimExpr):
    """`buffer[indices]`; a Ramp as the last index loads a vector."""

    buffer: Buffer
    indices: tuple[PrimExpr, ...]

    @property
    def dtype(self) -> DataType:  # pyright: ignore[reportIncompatibleVariableOverride]  # computed from the operands (a property over the base's dtype field)
        lanes = self.indices[-1].dtype.lanes if self.indices else 1
        return self.buffer.dtype.with_lanes(lanes)


@node
class Call(PrimExpr):
    """A call of an intrinsic (`op` names an entry of `tsir.intrin`) or of an extern device function."""

    dtype: DataType
    op: str
    args: tuple[PrimExpr, ...]


@node
class Let(PrimExpr):
    var: Var = binder()
    value: PrimExpr
    body: PrimExpr

    @property
    def dtype(self) -> DataType:  # pyright: ignore[reportIncompatibleVariableOverride]  # computed from the operands (a property over the base's dtype field)
        return self.body.dtype


# ---------------------------------------------------------------------------------------------------
# construction helpers


def const(value: int | float | bool, dt: DataType | str | None = None) -> PrimExpr:
    """A constant of the given dtype (inferred from the Python type when omitted)."""
    if dt is None:
        dt = bool_ if isinstance(value, bool) else int32 if isinstance(value, int) else float32
    dt = as_dtype(dt)
    if dt.is_float:
        return FloatImm(float(value), dt)
    if isinstance(value, float):
        if not value.is_integer():
            raise DTypeError(f"the float literal {value} cannot be a {dt} constant; use T.cast")
        value = int(value)
    return IntImm(wrap_int(int(value), dt), dt)


def wrap_int(value: int, dt: DataType) -> int:
    """Bring an integer into the range of dt with two's-complement wrapping (C semantics)."""
    if dt.is_bool:
        return 1 if value else 0
    bits = dt.bits
    value &= (1 << bits) - 1
    if dt.kind == "int" and value >= 1 << (bits - 1):
        value -= 1 << bits
    return value


def convert(value: Any, like: DataType | None = None) -> PrimExpr:
    """Turn a Python literal into a constant expression with the dtype of `like` when given."""
    if isinstance(value, PrimExpr):
        return value
    if isinstance(value, bool):
        if like is not None and like.element.is_bool:
            return IntImm(int(value), bool_)
        return IntImm(int(value), like.element if like is not None else bool_)
    if isinstance(value, int):
        if like is None:
            dt = int32 if -(1 << 31) <= value < (1 << 31) else DataType("int64")
            return IntImm(value, dt)
        like = like.element
        if like.is_float:
            return FloatImm(float(value), like)
        if like.is_bool:
            raise DTypeError(f"the integer literal {value} used with a bool expression")
        if not (like.min_value() <= value <= like.max_value()):
            raise DTypeError(f"the literal {value} does not fit {like}")
        return IntImm(value, like)
    if isinstance(value, float):
        if like is None:
            return FloatImm(value, float32)
        like = like.element
        if not like.is_float:
            raise DTypeError(
                f"the float literal {value} is used with a {like} expression; "
                f"write T.cast(..., 'float32') to compute in floating point"
            )
        return FloatImm(value, like)
    if hasattr(value, "dtype") and hasattr(value, "item"):  # numpy scalar
        return const(value.item(), as_dtype(str(value.dtype)))
    raise BuildError(f"cannot use {type(value).__name__} {value!r} as an expression")


# -- implicit promotion (TileLang's rules, for the compatibility layer only) -----------------------
#
# DESIGN's rule for the builder is explicit: two different IR dtypes in one operation are an error
# that asks for T.cast. TileLang (TVM) promotes instead; `tsir.compat.tilelang` pushes its rule here
# while it builds a TileLang program, so those files run unchanged. The rule maps a pair of
# different dtypes to the one both sides are cast to, or None to keep the error.

PromotionRule = Callable[[DataType, DataType], "DataType | None"]
_promotion = threading.local()


@contextlib.contextmanager
def implicit_promotion(rule: PromotionRule) -> Iterator[None]:
    """While active, `a op b` on two different dtypes casts both to `rule(a.dtype, b.dtype)` (when
    not None), and a Python float next to an integer expression is a float32 constant."""
    stack: list[PromotionRule] = getattr(_promotion, "stack", None) or []
    _promotion.stack = [*stack, rule]
    try:
        yield
    finally:
        _promotion.stack = stack


def _promotion_rule() -> PromotionRule | None:
    stack = getattr(_promotion, "stack", None)
    return stack[-1] if stack else None


def _unify(a: Any, b: Any, opname: str) -> tuple[PrimExpr, PrimExpr]:
    rule = _promotion_rule()
    if rule is not None:
        # TVM makes a Python float a float32 constant: next to an integer it promotes the integer.
        if isinstance(a, float) and isinstance(b, PrimExpr) and not b.dtype.element.is_float:
            a = FloatImm(a, float32)
        elif isinstance(b, float) and isinstance(a, PrimExpr) and not a.dtype.element.is_float:
            b = FloatImm(b, float32)
    if isinstance(a, PrimExpr):
        b = convert(b, a.dtype)
    elif isinstance(b, PrimExpr):
        a = convert(a, b.dtype)
    else:
        a, b = convert(a), convert(b)
    if a.dtype != b.dtype:
        # A scalar combined with a vector broadcasts.
        if a.dtype.element == b.dtype.element:
            if a.dtype.lanes == 1:
                return Broadcast(a, b.dtype.lanes), b
            if b.dtype.lanes == 1:
                return a, Broadcast(b, a.dtype.lanes)
        promoted = rule(a.dtype, b.dtype) if rule is not None else None
        if promoted is not None:
            return cast(promoted, a), cast(promoted, b)
        raise DTypeError(
            f"`{opname}` mixes {a.dtype} (`{a}`) and {b.dtype} (`{b}`); "
            f"convert one side explicitly with T.cast"
        )
    return a, b


_FOLD_INT = {
    "Add": lambda x, y: x + y,
    "Sub": lambda x, y: x - y,
    "Mul": lambda x, y: x * y,
    "FloorDiv": lambda x, y: x // y,
    "FloorMod": lambda x, y: x % y,
    "Min": min,
    "Max": max,
}
_FOLD_CMP = {
    "EQ": lambda x, y: x == y,
    "NE": lambda x, y: x != y,
    "LT": lambda x, y: x < y,
    "LE": lambda x, y: x <= y,
    "GT": lambda x, y: x > y,
    "GE": lambda x, y: x >= y,
}


def folds_when_built(e: PrimExpr) -> bool:
    """Whether `binary` would not rebuild the binary node `e` from its operands as they are (it
    folds constants and the integer identities): the printer then spells the node out."""
    name = type(e).__name__
    a, b = getattr(e, "a", None), getattr(e, "b", None)
    if not isinstance(a, PrimExpr) or not isinstance(b, PrimExpr):
        return False
    if isinstance(a, IntImm) and isinstance(b, IntImm) and (name in _FOLD_INT or name in _FOLD_CMP):
        return True
    if not a.dtype.is_int:
        return False
    if name == "Add":
        return _is_zero(a) or _is_zero(b)
    if name == "Sub":
        return _is_zero(b)
    if name == "Mul":
        return _is_one(a) or _is_one(b) or _is_zero(a) or _is_zero(b)
    if name in ("FloorDiv", "FloorMod"):
        return _is_one(b)
    return False


def binary(cls: type, a: Any, b: Any) -> PrimExpr:
    """Build `cls(a, b)` from user operands: convert literals, check dtypes, fold constants."""
    a, b = _unify(a, b, _OP_SYMBOL.get(cls.__name__, cls.__name__))
    name = cls.__name__
    dt = a.dtype
    if name == "Div" and not dt.is_float:
        raise DTypeError(
            f"`/` on {dt} operands (`{a}`, `{b}`): use `//` for floor division of integers, "
            f"or T.cast to a float type"
        )
    if name in ("FloorDiv", "FloorMod") and isinstance(b, IntImm) and b.value == 0:
        raise ArithError(f"constant division by zero in `{a} {_OP_SYMBOL[name]} {b}`")
    if name in ("FloorDiv", "FloorMod") and dt.is_float:
        raise DTypeError(f"`{_OP_SYMBOL[name]}` needs integer operands, got {dt}")
    if isinstance(a, IntImm) and isinstance(b, IntImm):
        if name in _FOLD_INT:
            return IntImm(wrap_int(_FOLD_INT[name](a.value, b.value), dt), dt)
        if name in _FOLD_CMP:
            return IntImm(int(_FOLD_CMP[name](a.value, b.value)), bool_)
    if dt.is_int:
        # The identities that keep generated index arithmetic readable.
        if name == "Add":
            if _is_zero(b):
                return a
            if _is_zero(a):
                return b
        elif name == "Sub" and _is_zero(b):
            return a
        elif name == "Mul":
            if _is_one(b):
                return a
            if _is_one(a):
                return b
            if _is_zero(a) or _is_zero(b):
                return IntImm(0, dt)
        elif name == "FloorDiv" and _is_one(b):
            return a
        elif name == "FloorMod" and _is_one(b):
            return IntImm(0, dt)
    return cls(a, b)


def logical_or_bitwise(cls: type, bitwise: str, a: Any, b: Any) -> PrimExpr:
    a, b = _unify(a, b, "&" if cls is And else "|")
    if a.dtype.element.is_bool:
        if isinstance(a, IntImm) and isinstance(b, IntImm):
            v = (a.value and b.value) if cls is And else (a.value or b.value)
            return IntImm(int(bool(v)), bool_)
        return cls(a, b)
    if a.dtype.is_int:
        return Call(a.dtype, bitwise, (a, b))
    raise DTypeError(
        f"`{'&' if cls is And else '|'}` needs bool or integer operands, got {a.dtype}"
    )


def cast(dt: DataType, value: Any) -> PrimExpr:
    value = convert(value, None if not isinstance(value, (int, float)) else dt)
    if value.dtype == dt:
        return value
    if isinstance(value, IntImm) and not dt.is_float and dt.lanes == 1:
        return IntImm(wrap_int(value.value, dt), dt)
    if isinstance(value, (IntImm, FloatImm)) and dt.is_float and dt.lanes == 1 and dt.bits >= 32:
        v = float(value.value)
        if dt.bits == 32 and math.isfinite(v):
            import struct

            v = struct.unpack("f", struct.pack("f", v))[0]
        return FloatImm(v, dt)
    return Cast(dt, value)


def _is_zero(e: PrimExpr) -> bool:
    return isinstance(e, IntImm) and e.value == 0


def _is_one(e: PrimExpr) -> bool:
    return isinstance(e, IntImm) and e.value == 1


def is_const_int(e: Any, value: int | None = None) -> bool:
    if isinstance(e, int) and not isinstance(e, bool):
        return value is None or e == value
    return isinstance(e, IntImm) and (value is None or e.value == value)


def const_value(e: Any) -> int | None:
    """The Python int of an integer constant, else None."""
    if isinstance(e, int) and not isinstance(e, bool):
        return e
    if isinstance(e, IntImm):
        return e.value
    return None


_OP_SYMBOL = {
    "Add": "+",
    "Sub": "-",
    "Mul": "*",
    "Div": "/",
    "FloorDiv": "//",
    "FloorMod": "%",
    "Min": "min",
    "Max": "max",
    "EQ": "==",
    "NE": "!=",
    "LT": "<",
    "LE": "<=",
    "GT": ">",
    "GE": ">=",
}
