"""Host-side code generation: index expressions as Python source for the launcher.

Grid extents depend on dynamic dimensions and scalar parameters (`ceildiv(M, 128)`); the runtime
compiles these strings into its launch function once, so each launch evaluates plain Python.
"""

from __future__ import annotations

from tsir.errors import UnsupportedError
from tsir.expr import (
    EQ,
    GE,
    GT,
    LE,
    LT,
    NE,
    Add,
    And,
    Cast,
    FloorDiv,
    FloorMod,
    IntImm,
    Max,
    Min,
    Mul,
    Not,
    Or,
    PrimExpr,
    Select,
    Sub,
    Var,
)

__all__ = ["python_expr"]

_OPS = {Add: ("+", 12), Sub: ("-", 12), Mul: ("*", 13), FloorDiv: ("//", 13), FloorMod: ("%", 13)}
_CMP = {EQ: "==", NE: "!=", LT: "<", LE: "<=", GT: ">", GE: ">="}


def python_expr(e: PrimExpr) -> str:
    """Python source for an integer host expression (Python ints have floor semantics already)."""
    return _py(e)[0]


def _py(e: PrimExpr) -> tuple[str, int]:
    if isinstance(e, IntImm):
        return (str(e.value), 16) if e.value >= 0 else (f"({e.value})", 16)
    if isinstance(e, Var):
        return e.name, 16
    op = _OPS.get(type(e))
    if op is not None:
        sym, p = op
        a, pa = _py(e.a)  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
        b, pb = _py(e.b)  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
        return f"{_paren(a, pa, p)} {sym} {_paren(b, pb, p + 1)}", p
    if isinstance(e, (Min, Max)):
        fn = "min" if isinstance(e, Min) else "max"
        return f"{fn}({python_expr(e.a)}, {python_expr(e.b)})", 16
    if type(e) in _CMP:
        return f"({python_expr(e.a)} {_CMP[type(e)]} {python_expr(e.b)})", 16  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
    if isinstance(e, And):
        return f"({python_expr(e.a)} and {python_expr(e.b)})", 16
    if isinstance(e, Or):
        return f"({python_expr(e.a)} or {python_expr(e.b)})", 16
    if isinstance(e, Not):
        return f"(not {python_expr(e.a)})", 16
    if isinstance(e, Select):
        return (
            f"({python_expr(e.true_value)} if {python_expr(e.cond)} else {python_expr(e.false_value)})",
            16,
        )
    if isinstance(e, Cast) and e.dtype.is_int and e.value.dtype.is_int:
        return _py(e.value)
    raise UnsupportedError(
        f"`{e}` cannot be evaluated on the host (only integer arithmetic on parameters)"
    )


def _paren(text: str, p: int, need: int) -> str:
    return f"({text})" if p < need else text
