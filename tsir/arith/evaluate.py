"""A reference interpreter for scalar expressions, with each dtype's exact semantics.

It shares its value functions with constant folding (`const_fold`), so folding and evaluation agree
by construction; tests use it as the ground truth that simplification must preserve.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ArithError
from ..expr import (
    And,
    BinaryOp,
    Call,
    Cast,
    CmpOp,
    FloatImm,
    FloorDiv,
    FloorMod,
    IntImm,
    Let,
    Not,
    Or,
    PrimExpr,
    Select,
    Var,
)
from .const_fold import NoFold, cast_value, compare, float_binary, int_binary, wrap
from .intern import fmt

__all__ = ["evaluate"]


def evaluate(expr: PrimExpr, env: Mapping[Var, int | float | bool]) -> int | float:
    """The value of `expr` when each Var takes its value from `env` (bools as 0/1).

    Raises ArithError on division by zero, an unbound variable, or a node it cannot evaluate
    (loads, unknown calls, vectors); `NoFold` for operations whose result C leaves undefined.
    """
    return _Eval(env).run(expr)


class _Eval:
    def __init__(self, env: Mapping[Var, Any]) -> None:
        self.env: dict[int, Any] = {
            id(v): (int(x) if isinstance(x, bool) else x) for v, x in env.items()
        }
        self.memo: dict[int, Any] = {}

    def run(self, e: PrimExpr) -> Any:
        hit = self.memo.get(id(e))
        if hit is None:
            hit = self._eval(e)
            self.memo[id(e)] = hit
        return hit

    def _eval(self, e: PrimExpr) -> Any:
        t = type(e)
        dt = e.dtype
        if dt.lanes != 1:
            raise ArithError(f"evaluate handles scalars only, got `{fmt(e)}` of {dt}")
        if t is IntImm or t is FloatImm:
            return e.value  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
        if t is Var:
            if id(e) not in self.env:
                raise ArithError(f"evaluate: no value for variable `{e.name}`")  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
            v = self.env[id(e)]
            return wrap(int(v), dt) if (dt.is_int or dt.is_bool) else float(v)
        if isinstance(e, BinaryOp):
            a, b = self.run(e.a), self.run(e.b)
            if dt.is_float:
                return float_binary(t.__name__, a, b, dt)
            if t is FloorDiv or t is FloorMod:
                return int_binary(t.__name__, a, b, dt, what=lambda: fmt(e))
            return int_binary(t.__name__, a, b, dt)
        if isinstance(e, CmpOp):
            return int(compare(t.__name__, self.run(e.a), self.run(e.b)))
        if t is And:
            return int(bool(self.run(e.a)) and bool(self.run(e.b)))  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
        if t is Or:
            return int(bool(self.run(e.a)) or bool(self.run(e.b)))  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
        if t is Not:
            return int(not self.run(e.a))  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
        if t is Select:
            c = self.run(e.cond)  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
            return self.run(e.true_value if c else e.false_value)  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
        if t is Cast:
            v = e.value  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
            return cast_value(self.run(v), v.dtype, dt)
        if t is Let:
            self.env[id(e.var)] = self.run(e.value)  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
            return self.run(e.body)  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
        if t is Call:
            return self._call(e)  # pyright: ignore[reportArgumentType]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
        raise ArithError(f"evaluate cannot evaluate `{fmt(e)}` ({t.__name__})")

    def _call(self, e: Call) -> Any:
        args = [self.run(a) for a in e.args]
        dt = e.dtype
        if e.op == "bitwise_not" and len(args) == 1:
            return wrap(~args[0], dt)
        if len(args) == 2 and dt.is_int:
            x, y = args
            if e.op == "bitwise_and":
                return wrap(x & y, dt)
            if e.op == "bitwise_or":
                return wrap(x | y, dt)
            if e.op == "bitwise_xor":
                return wrap(x ^ y, dt)
            if e.op in ("shift_left", "shift_right"):
                if not 0 <= y < dt.bits:
                    raise NoFold("shift")
                return wrap(x << y if e.op == "shift_left" else x >> y, dt)
        raise ArithError(f"evaluate cannot evaluate the call `{fmt(e)}`")
