"""Hash-consing of expressions, a canonical term order, and a small formatter for messages.

Inside the analyzer every expression is interned: structurally equal expressions are the same
object, so "same term" is an identity test, dictionaries keyed by `id()` combine like terms, and a
rewrite rule can tell that it changed nothing with `is`. User expressions are interned on entry
(`intern_tree`), which is also where mixed dtypes are rejected.
"""

from __future__ import annotations

from typing import Any

from ..dtype import DataType
from ..errors import ArithError
from ..expr import (
    EQ,
    GE,
    GT,
    LE,
    LT,
    NE,
    Add,
    And,
    BinaryOp,
    Broadcast,
    BufferLoad,
    Call,
    Cast,
    CmpOp,
    Div,
    FloatImm,
    FloorDiv,
    FloorMod,
    IntImm,
    Let,
    Max,
    Min,
    Mul,
    Not,
    Or,
    PrimExpr,
    Ramp,
    Select,
    StringImm,
    Sub,
    Var,
    convert,
)
from ..node import node_fields

__all__ = ["Interner", "fmt"]


class Interner:
    """The table of canonical nodes of one analyzer.

    It keeps every interned node alive, so `id(node)` is a stable key while the analyzer lives.
    """

    def __init__(self) -> None:
        self._table: dict[tuple[Any, ...], PrimExpr] = {}
        self._order: dict[int, tuple[Any, ...]] = {}
        self._var_seq: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._table)

    # construction ---------------------------------------------------------------------------------
    def mk(self, cls: type, *fields: Any) -> PrimExpr:
        """The canonical `cls(*fields)`; node fields must already be interned."""
        key = (cls, *[_field_key(f) for f in fields])
        hit = self._table.get(key)
        if hit is None:
            hit = cls(*fields)
            self._table[key] = hit
        return hit

    def find(self, cls: type, *fields: Any) -> PrimExpr | None:
        """The canonical `cls(*fields)` if it was ever built, else None (builds nothing)."""
        return self._table.get((cls, *[_field_key(f) for f in fields]))

    def int(self, value: int, dt: DataType) -> PrimExpr:
        key = (IntImm, value, dt)
        hit = self._table.get(key)
        if hit is None:
            hit = IntImm(value, dt)
            self._table[key] = hit
        return hit

    def float(self, value: float, dt: DataType) -> PrimExpr:
        key = (FloatImm, value.hex(), dt)  # hex keeps -0.0 apart from 0.0
        hit = self._table.get(key)
        if hit is None:
            hit = FloatImm(value, dt)
            self._table[key] = hit
        return hit

    def const(self, value: int | float, dt: DataType) -> PrimExpr:
        return self.float(float(value), dt) if dt.is_float else self.int(int(value), dt)

    def var(self, v: Var) -> Var:
        key = (Var, id(v))
        if key not in self._table:
            self._table[key] = v
            self._var_seq[id(v)] = len(self._var_seq)
        return v

    def intern_tree(self, e: PrimExpr, memo: dict[int, PrimExpr] | None = None) -> PrimExpr:
        """Intern a user expression bottom-up, checking dtypes on the way."""
        if memo is None:
            memo = {}
        return self._intern(e, memo)

    def _intern(self, e: Any, memo: dict[int, PrimExpr]) -> Any:
        if not isinstance(e, PrimExpr):
            if isinstance(e, tuple):
                return tuple(self._intern(x, memo) for x in e)
            return e
        hit = memo.get(id(e))
        if hit is not None:
            return hit
        if isinstance(e, Var):
            out: PrimExpr = self.var(e)
        elif isinstance(e, IntImm):
            out = self.int(e.value, e.dtype)
        elif isinstance(e, FloatImm):
            out = self.float(e.value, e.dtype)
        else:
            fields = [self._intern(getattr(e, f.name), memo) for f in node_fields(e)]
            if isinstance(e, _SAME_DTYPE):
                fields = self._coerce_literals(e, fields)
            _check_dtypes(e, fields)
            out = self.mk(type(e), *fields)
        memo[id(e)] = out
        return out

    def _coerce_literals(self, e: PrimExpr, fields: list[Any]) -> list[Any]:
        """Python numbers in a raw node (`Min(x, 100)`) take the dtype of the other operand."""
        a, b = fields
        if isinstance(a, PrimExpr) and isinstance(b, PrimExpr):
            return fields
        if not isinstance(a, PrimExpr) and not isinstance(b, PrimExpr):
            a, b = convert(a), convert(b)
        elif not isinstance(a, PrimExpr):
            a = convert(a, b.dtype)
        else:
            b = convert(b, a.dtype)
        return [self._intern(a, {}), self._intern(b, {})]

    # order ----------------------------------------------------------------------------------------
    def order_key(self, e: PrimExpr) -> tuple[Any, ...]:
        """A total order on interned terms, independent of identity (names, then structure)."""
        k = self._order.get(id(e))
        if k is not None:
            return k
        if isinstance(e, Var):
            k = (0, e.name, str(e.dtype), self._var_seq.get(id(e), 0))
        elif isinstance(e, (IntImm, FloatImm)):
            k = (1, e.value, str(e.dtype))
        else:
            parts: list[Any] = [2, type(e).__name__]
            for f in node_fields(e):
                parts.append(self._field_order(getattr(e, f.name)))
            k = tuple(parts)
        self._order[id(e)] = k
        return k

    def _field_order(self, f: Any) -> Any:
        if isinstance(f, PrimExpr):
            return self.order_key(f)
        if isinstance(f, tuple):
            return tuple(self._field_order(x) for x in f)
        if isinstance(f, (int, str)):
            return (3, f)
        if isinstance(f, DataType):
            return (3, str(f))
        return (4, type(f).__name__, getattr(f, "name", ""), id(f))


def _field_key(f: Any) -> Any:
    if isinstance(f, tuple):
        return tuple(_field_key(x) for x in f)
    if isinstance(f, float):
        return f.hex()
    if f is None or isinstance(f, (int, str, DataType)):
        return f
    return id(f)  # nodes (interned, kept alive by the table) and buffers


_SAME_DTYPE = (Add, Sub, Mul, Div, FloorDiv, FloorMod, Min, Max, EQ, NE, LT, LE, GT, GE)


def _check_dtypes(e: PrimExpr, fields: list[Any]) -> None:
    if isinstance(e, _SAME_DTYPE):
        a, b = fields
        if a.dtype != b.dtype:
            raise ArithError(
                f"`{fmt(e)}` mixes {a.dtype} (`{fmt(a)}`) and {b.dtype} (`{fmt(b)}`); "
                "insert an explicit cast so both operands have one dtype"
            )
    elif isinstance(e, (And, Or)):
        a, b = fields
        if not (a.dtype.element.is_bool and b.dtype.element.is_bool) or a.dtype != b.dtype:
            raise ArithError(
                f"`{fmt(e)}` needs two bool operands of one type, got {a.dtype} and {b.dtype}"
            )
    elif isinstance(e, Select):
        _, t, f = fields
        if t.dtype != f.dtype:
            raise ArithError(
                f"`{fmt(e)}` mixes {t.dtype} (`{fmt(t)}`) and {f.dtype} (`{fmt(f)}`) "
                "in its branches; "
                "cast one branch"
            )


# --------------------------------------------------------------------------------------------------
# formatting for error messages (independent of tsir.printer)

_INFIX = {
    Add: "+",
    Sub: "-",
    Mul: "*",
    Div: "/",
    FloorDiv: "//",
    FloorMod: "%",
    EQ: "==",
    NE: "!=",
    LT: "<",
    LE: "<=",
    GT: ">",
    GE: ">=",
    And: "and",
    Or: "or",
}


def fmt(e: Any, limit: int = 200) -> str:
    """A one-line infix rendering of an expression, for messages."""
    text = _fmt(e)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _fmt(e: Any) -> str:
    if isinstance(e, Var):
        return e.name
    if isinstance(e, IntImm):
        return ("True" if e.value else "False") if e.dtype.is_bool else str(e.value)
    if isinstance(e, FloatImm):
        return repr(e.value)
    if isinstance(e, StringImm):
        return repr(e.value)
    op = _INFIX.get(type(e))
    if op is not None and isinstance(e, (BinaryOp, CmpOp, And, Or)):
        return f"({_fmt(e.a)} {op} {_fmt(e.b)})"
    if isinstance(e, (Min, Max)):
        return f"{type(e).__name__.lower()}({_fmt(e.a)}, {_fmt(e.b)})"
    if isinstance(e, Not):
        return f"not {_fmt(e.a)}"
    if isinstance(e, Select):
        return f"select({_fmt(e.cond)}, {_fmt(e.true_value)}, {_fmt(e.false_value)})"
    if isinstance(e, Cast):
        return f"{e.dtype}({_fmt(e.value)})"
    if isinstance(e, Ramp):
        return f"ramp({_fmt(e.base)}, {_fmt(e.stride)}, {e.lanes})"
    if isinstance(e, Broadcast):
        return f"broadcast({_fmt(e.value)}, {e.lanes})"
    if isinstance(e, BufferLoad):
        name = getattr(e.buffer, "name", "buffer")
        return f"{name}[{', '.join(_fmt(i) for i in e.indices)}]"
    if isinstance(e, Call):
        return f"{e.op}({', '.join(_fmt(a) for a in e.args)})"
    if isinstance(e, Let):
        return f"(let {e.var.name} = {_fmt(e.value)} in {_fmt(e.body)})"
    return f"<{type(e).__name__}>"
