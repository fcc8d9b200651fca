"""Expressions as Python builder text, with the names and marks shared by every printer.

The text is what the builder evaluates back into the same node: `a + b * c` with Python's own
precedence (so exactly the parentheses Python needs), `//` and `%` for floor division and modulo,
`T.min`, `T.if_then_else`, `T.cast(x, "float16")`, `T.exp(x)`. Integer and bool operators `&`, `|`,
`^`, `<<`, `>>`, `~` print as operators because that is how the builder spells them.

Constants print as Python literals where the builder would give the literal the same dtype (an int32
or float32 alone, or any dtype next to an operand of that dtype: `x + 1` with an int64 `x` is an
int64 `1`), otherwise typed: `T.int64(5)`, `T.float16(0.5)`, `T.bool(True)`. Infinities print as
`T.infinity("float32")`; `-inf` and NaN, which no literal spells, as `T.float32("-inf")`.

Vectors have no builder form; they print as `T.Ramp(base, stride, lanes)` (the lanes
`base, base + stride, ...`) and `T.Broadcast(value, lanes)` (`lanes` copies of `value`), the
spelling TVMScript uses. Other text forms that do not rebuild: `T.Let(x, value, body)` and
`T.call_intrin("dtype", "op", *args)` for calls without builder sugar.
"""

from __future__ import annotations

import json
import keyword
import math
import re
from collections.abc import Callable
from typing import Any, TypeGuard

from .buffer import Buffer, BufferRegion, Range
from .dtype import DataType, float32, int32
from .expr import (
    EQ,
    GE,
    GT,
    LE,
    LT,
    NE,
    Add,
    And,
    Broadcast,
    BufferLoad,
    Call,
    Cast,
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
    const_value,
    folds_when_built,
)
from .intrin import DEVICE_FUNCTIONS, MATH_UNARY
from .node import Node, node_fields
from .structural import deep_recursion, structural_equal

__all__ = [
    "Namer",
    "ExprPrinter",
    "MARK_BEGIN",
    "MARK_END",
    "quote",
    "dtype_text",
    "print_expr",
    "is_full_region",
    "is_unit_region",
    "element_form_fits",
    "element_text",
    "CALL_SUGAR",
]

# Sentinels around the text of the marked node; the statement printer turns them into a `^^^` line.
MARK_BEGIN = "\x02"
MARK_END = "\x03"

# Python precedence, loosest first: comparisons < | < ^ < & < shifts < + - < * / // % < unary
# < atom.
P_CMP, P_OR, P_XOR, P_AND, P_SHIFT, P_ADD, P_MUL, P_UNARY, P_ATOM = range(1, 10)

BINARY_OPS: dict[type, tuple[str, int]] = {
    Add: ("+", P_ADD),
    Sub: ("-", P_ADD),
    Mul: ("*", P_MUL),
    Div: ("/", P_MUL),
    FloorDiv: ("//", P_MUL),
    FloorMod: ("%", P_MUL),
    And: ("&", P_AND),
    Or: ("|", P_OR),
    EQ: ("==", P_CMP),
    NE: ("!=", P_CMP),
    LT: ("<", P_CMP),
    LE: ("<=", P_CMP),
    GT: (">", P_CMP),
    GE: (">=", P_CMP),
}
# Integer intrinsics the builder creates from Python operators.
CALL_OPERATORS: dict[str, tuple[str, int]] = {
    "bitwise_and": ("&", P_AND),
    "bitwise_or": ("|", P_OR),
    "bitwise_xor": ("^", P_XOR),
    "shift_left": ("<<", P_SHIFT),
    "shift_right": (">>", P_SHIFT),
}
# Python has no reflected `<<`, `>>`, `^` on PrimExpr, and `1 < x` becomes `x > 1`: a literal may
# not stand on the left of these operators.
_NO_LEFT_LITERAL = {"<<", ">>", "^", "==", "!=", "<", "<=", ">", ">="}
# Calls written `T.<name>(args)` by the builder: the math intrinsics of their own name, and the
# device functions that declare the builder function making them (tsir.intrin.DEVICE_FUNCTIONS).
CALL_SUGAR: dict[str, str] = {
    **{n: f"T.{n}" for n in MATH_UNARY},
    "abs": "T.abs",
    **{f.name: f.builder for f in DEVICE_FUNCTIONS.values() if f.builder and not f.statement},
}

_RESERVED = frozenset({"T", "tsir", "f"}) | frozenset(keyword.kwlist)


def quote(s: str) -> str:
    """A double-quoted Python string literal."""
    return json.dumps(s)


def dtype_text(dt: DataType) -> str:
    return quote(str(dt))


class Namer:
    """Python identifiers for Vars and Buffers, unique within one printed unit.

    A node keeps the first name it gets; a second node with the same name gets `name_1`, `name_2`,
    ... in printing order, so the text is deterministic. `T`, `tsir`, `f` and keywords are taken.
    """

    def __init__(self) -> None:
        self.names: dict[Node, str] = {}
        self.used: set[str] = set(_RESERVED)

    def define(self, obj: Node, base: str) -> str:
        name = self.names.get(obj)
        if name is not None:
            return name
        base = re.sub(r"\W", "_", base) or "v"
        if base[0].isdigit():
            base = "v" + base
        name, k = base, 1
        while name in self.used:
            name = f"{base}_{k}"
            k += 1
        self.used.add(name)
        self.names[obj] = name
        return name

    def __call__(self, obj: Var | Buffer) -> str:
        return self.names.get(obj) or self.define(obj, obj.name)


def _is_const(e: Any) -> TypeGuard[IntImm | FloatImm]:
    return isinstance(e, (IntImm, FloatImm))


def _literal_dtype(e: IntImm | FloatImm, like: DataType | None) -> DataType:
    """The dtype the builder gives the Python literal of `e` next to an operand of dtype `like`."""
    if like is not None:
        return like.element
    if isinstance(e, FloatImm):
        return float32
    if e.dtype.is_bool:
        return e.dtype
    return int32 if -(1 << 31) <= e.value < (1 << 31) else DataType("int64")


class ExprPrinter:
    """Renders expressions; `mark` (a node) is wrapped in MARK_BEGIN/MARK_END wherever it prints."""

    def __init__(self, namer: Namer, mark: Node | None = None):
        self.namer = namer
        self.mark = mark
        self._dispatch: dict[type, Callable[[Any, DataType | None], tuple[str, int]]] = {}

    def __call__(self, e: PrimExpr, like: DataType | None = None) -> str:
        return self.render(e, like)[0]

    def render(self, e: PrimExpr, like: DataType | None = None) -> tuple[str, int]:
        """(text, precedence). `like`: the dtype a bare literal in this position would take."""
        fn = self._dispatch.get(type(e))
        if fn is None:
            fn = self._dispatch[type(e)] = self._lookup(type(e))
        text, prec = fn(e, like)
        if e is self.mark:
            text = MARK_BEGIN + text + MARK_END
        return text, prec

    def _lookup(self, cls: type) -> Callable[[Any, DataType | None], tuple[str, int]]:
        for c in cls.__mro__:
            if c in BINARY_OPS:
                return self._binary
            fn = getattr(self, f"_{c.__name__}", None)
            if fn is not None:
                return fn
        return lambda e, like: (self.generic(e), P_ATOM)

    def operand(self, e: PrimExpr, prec: int, like: DataType | None, right: bool = False) -> str:
        text, p = self.render(e, like)
        if p < prec or (right and p == prec) or (p == prec == P_CMP):
            return f"({text})"
        return text

    # -- constants ---------------------------------------------------------------------------------
    def const(
        self, e: IntImm | FloatImm, like: DataType | None, typed: bool = False
    ) -> tuple[str, int]:
        if isinstance(e, FloatImm) and not math.isfinite(e.value):
            if e.value > 0:
                return f"T.infinity({dtype_text(e.dtype)})", P_ATOM
            return f"T.{e.dtype}({quote(repr(e.value))})", P_ATOM
        lit = repr(bool(e.value)) if e.dtype.is_bool else repr(e.value)
        if not typed and e.dtype.lanes == 1 and _literal_dtype(e, like) == e.dtype:
            return lit, (P_UNARY if lit.startswith("-") else P_ATOM)
        return f"T.{e.dtype}({lit})", P_ATOM

    def operand_node(self, e: PrimExpr) -> str:
        """An operand of a node constructor: a constant typed (`T.int32(0)`), else as usual."""
        if isinstance(e, (IntImm, FloatImm)):
            return self.const(e, None, typed=True)[0]
        return self(e)

    def _IntImm(self, e: IntImm, like: DataType | None) -> tuple[str, int]:
        return self.const(e, like)

    def _FloatImm(self, e: FloatImm, like: DataType | None) -> tuple[str, int]:
        return self.const(e, like)

    def _StringImm(self, e: StringImm, like: DataType | None) -> tuple[str, int]:
        return quote(e.value), P_ATOM

    def _Var(self, e: Var, like: DataType | None) -> tuple[str, int]:
        return self.namer(e), P_ATOM

    # -- operators ---------------------------------------------------------------------------------
    def pair(self, a: PrimExpr, b: PrimExpr, prec: int, symbol: str | None) -> tuple[str, str]:
        """Both operands of a binary builder call; literals get the dtype the builder would give."""
        if _is_const(a) and (_is_const(b) or (symbol in _NO_LEFT_LITERAL)):
            # Python would fold two literals itself (or swap a comparison): type the left one.
            left = self.const(a, None, typed=True)[0]
            if a is self.mark:
                left = MARK_BEGIN + left + MARK_END
        elif symbol is None:
            left = self(a, None if _is_const(b) else b.dtype)
        else:
            left = self.operand(a, prec, None if _is_const(b) else b.dtype)
        like_b = a.dtype
        if symbol is None:
            return left, self(b, like_b)
        return left, self.operand(b, prec, like_b, right=True)

    def _binary(self, e: Any, like: DataType | None) -> tuple[str, int]:
        if folds_when_built(e):
            # The operator would fold it (`0 * 32` is 0): the node spelled out rebuilds as it is.
            return (
                f"tsir.{type(e).__name__}({self.operand_node(e.a)}, {self.operand_node(e.b)})",
                P_ATOM,
            )
        symbol, prec = BINARY_OPS[type(e)]
        left, right = self.pair(e.a, e.b, prec, symbol)
        return f"{left} {symbol} {right}", prec

    def _Min(self, e: Min, like: DataType | None) -> tuple[str, int]:
        left, right = self.pair(e.a, e.b, P_ATOM, None)
        return f"T.min({left}, {right})", P_ATOM

    def _Max(self, e: Max, like: DataType | None) -> tuple[str, int]:
        left, right = self.pair(e.a, e.b, P_ATOM, None)
        return f"T.max({left}, {right})", P_ATOM

    def _Not(self, e: Not, like: DataType | None) -> tuple[str, int]:
        if _is_const(e.a):  # `~True` is the Python int -2
            return f"~{self.const(e.a, None, typed=True)[0]}", P_UNARY
        return f"~{self.operand(e.a, P_UNARY, None)}", P_UNARY

    def _Select(self, e: Select, like: DataType | None) -> tuple[str, int]:
        # T.if_then_else converts the false branch like the true one, or else the true one like
        # the false one.
        t, f = e.true_value, e.false_value
        if not _is_const(t):
            ts, fs = self(t), self(f, t.dtype)
        else:
            fs = self(f)
            ts = self(t, f.dtype)
        return f"T.if_then_else({self(e.cond)}, {ts}, {fs})", P_ATOM

    def _Cast(self, e: Cast, like: DataType | None) -> tuple[str, int]:
        value = self.const(e.value, None, typed=True)[0] if _is_const(e.value) else self(e.value)
        return f"T.cast({value}, {dtype_text(e.dtype)})", P_ATOM

    def _Call(self, e: Call, like: DataType | None) -> tuple[str, int]:
        if e.op in CALL_OPERATORS and len(e.args) == 2:
            symbol, prec = CALL_OPERATORS[e.op]
            left, right = self.pair(e.args[0], e.args[1], prec, symbol)
            return f"{left} {symbol} {right}", prec
        if e.op == "bitwise_not" and len(e.args) == 1:
            a = e.args[0]
            inner = (
                self.const(a, None, typed=True)[0]
                if _is_const(a)
                else self.operand(a, P_UNARY, None)
            )
            return f"~{inner}", P_UNARY
        args = [self(a) for a in e.args]
        sugar = CALL_SUGAR.get(e.op)
        if sugar is not None and not e.args:  # T.get_rank()
            return f"{sugar}()", P_ATOM
        if sugar is not None and len(e.args) == 1 and e.dtype == e.args[0].dtype:
            return f"{sugar}({', '.join(args)})", P_ATOM
        return f"T.call_intrin({', '.join([dtype_text(e.dtype), quote(e.op), *args])})", P_ATOM

    def _Ramp(self, e: Ramp, like: DataType | None) -> tuple[str, int]:
        return f"T.Ramp({self(e.base)}, {self(e.stride)}, {e.lanes})", P_ATOM

    def _Broadcast(self, e: Broadcast, like: DataType | None) -> tuple[str, int]:
        return f"T.Broadcast({self(e.value)}, {e.lanes})", P_ATOM

    def _BufferLoad(self, e: BufferLoad, like: DataType | None) -> tuple[str, int]:
        return f"{self.namer(e.buffer)}[{self.indices(e.indices)}]", P_ATOM

    def _Let(self, e: Let, like: DataType | None) -> tuple[str, int]:
        value = self(e.value)
        name = self.namer.define(e.var, e.var.name)
        return f"T.Let({name}, {value}, {self(e.body)})", P_ATOM

    def indices(self, indices: tuple[PrimExpr, ...]) -> str:
        return ", ".join(self(i) for i in indices) if indices else "()"

    # -- regions and other field values ------------------------------------------------------------
    def region(self, r: BufferRegion) -> str:
        """`A` for the whole buffer, else a `lo:hi` slice (an index for extent 1) per dimension."""
        name = self.namer(r.buffer)
        if is_full_region(r):
            text = name
        else:
            dims = ", ".join(self.slice(r.buffer, d, rng) for d, rng in enumerate(r.region))
            text = f"{name}[{dims}]"
        return MARK_BEGIN + text + MARK_END if r is self.mark else text

    def slice(self, buffer: Buffer, dim: int, rng: Range) -> str:
        lo, ext = rng.min, rng.extent
        if isinstance(ext, IntImm) and ext.value == 1 and ext.dtype == lo.dtype:
            return self(lo)  # the builder reads `A[i, 0:64]` as extent 1 in dimension 0
        zero = isinstance(lo, IntImm) and lo.value == 0
        if (
            zero
            and lo.dtype == buffer.shape[dim].dtype
            and structural_equal(ext, buffer.shape[dim])
        ):
            return ":"
        if zero:
            return f":{self(ext)}"
        if isinstance(ext, Sub) and structural_equal(ext.b, lo):
            return f"{self(lo)}:{self(ext.a)}"  # the builder's `hi - lo`
        if isinstance(lo, IntImm) and isinstance(ext, IntImm) and lo.dtype == ext.dtype:
            return f"{self(lo)}:{self(IntImm(lo.value + ext.value, lo.dtype))}"
        return f"{self(lo)}:{self(Add(lo, ext))}"  # readable; rebuilds as `hi - lo`

    def value(self, v: Any) -> str:
        """Any field value: expressions, buffers by name, regions, tuples, strings, enums."""
        if isinstance(v, PrimExpr):
            return self(v)
        if isinstance(v, Buffer):
            return self.namer(v)
        if isinstance(v, BufferRegion):
            return self.region(v)
        if isinstance(v, DataType):
            return dtype_text(v)
        if isinstance(v, Node):
            return self.generic(v)
        if isinstance(v, (tuple, list)):
            items = [self.value(x) for x in v]
            return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{self.value(k)}: {self.value(x)}" for k, x in v.items()) + "}"
        if isinstance(v, str):
            return quote(v)
        form = getattr(v, "print_form", None)  # a value that knows its form (a fragment's plan)
        return form(self) if form is not None else repr(v)

    def generic(self, n: Node) -> str:
        """A node's own `print_form(printer)` (tile ops, layouts), else `TypeName(field=value)`."""
        form = getattr(n, "print_form", None)
        text = form(self) if form is not None else self.fields_form(n)
        return MARK_BEGIN + text + MARK_END if n is self.mark else text

    def fields_form(self, n: Node) -> str:
        """`TypeName(field=value, ...)`: a node without a form of its own (it does not rebuild)."""
        fields = ", ".join(f"{f.name}={self.value(getattr(n, f.name))}" for f in node_fields(n))
        return f"{type(n).__name__}({fields})"


def print_expr(expr: PrimExpr) -> str:
    """One expression as builder text (`a + b * c`, `T.cast(x, "float16")`)."""
    with deep_recursion():
        return ExprPrinter(Namer())(expr)


def is_full_region(r: BufferRegion) -> bool:
    """Whether `r` is what the builder makes of a bare buffer: `[0, dim)` in every dimension."""
    if len(r.region) != len(r.buffer.shape):
        return False
    for rng, dim in zip(r.region, r.buffer.shape, strict=True):
        lo = rng.min
        if not (isinstance(lo, IntImm) and lo.value == 0 and lo.dtype == dim.dtype):
            return False
        if not structural_equal(rng.extent, dim):
            return False
    return True


def is_unit_region(r: BufferRegion) -> bool:
    """Every extent is the constant 1 (of its min's dtype): the region of one element."""
    return all(
        isinstance(x.extent, IntImm) and x.extent.value == 1 and x.extent.dtype == x.min.dtype
        for x in r.region
    )


def element_form_fits(r: BufferRegion, other: BufferRegion) -> bool:
    """Whether the builder rebuilds `r` from `buf[mins]` given the other operand's extents."""
    ext = [e for e in other.extents if const_value(e) != 1]
    n = r.buffer.ndim
    if len(r.region) != n or len(ext) > n:
        return False
    expected = [IntImm(1, m.dtype) for m in r.mins[: n - len(ext)]] + ext
    return all(structural_equal(x.extent, e) for x, e in zip(r.region, expected, strict=True))


def element_text(p: ExprPrinter, r: BufferRegion) -> str:
    """`A[i, j]`: a region written as its first element (marked when it is the printer's mark)."""
    text = f"{p.namer(r.buffer)}[{p.indices(r.mins)}]"
    return MARK_BEGIN + text + MARK_END if r is p.mark else text
