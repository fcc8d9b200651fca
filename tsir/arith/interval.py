"""The interval stage of `can_prove`: intervals and linear facts, with case splits.

What simplification leaves undecided gets a deeper look here: two steps of fact combination instead
of one (`i < k` and `k <= j` give `i < j`), conjunctions and disjunctions split, and up to two case
splits on a select, min or max inside a comparison (`min(a, b) < M` holds if it holds with a under
`a <= b` and with b under `b < a`), each case simplified under its assumption.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from ..expr import GE, LE, IntImm, Max, Min, Not, Or, PrimExpr, Select, Var
from .facts import cmp_difference, split_and
from .rewrite_logic import NEGATE, decide_cmp
from .simplify import simplify, substitute

if TYPE_CHECKING:
    from .context import Context

__all__ = ["prove_by_intervals"]

Assume = Callable[[Any], AbstractContextManager[Any]]


def prove_by_intervals(ctx: Context, s: PrimExpr, assume: Assume, splits: int = 2) -> bool:
    """True when `s` (simplified) holds by intervals and facts, with up to `splits` case splits."""
    conj = split_and(s)
    if len(conj) > 1:
        return all(prove_by_intervals(ctx, x, assume, splits) for x in conj)
    if type(s) is Or:
        a, b = s.a, s.b
        return prove_by_intervals(ctx, a, assume, splits) or prove_by_intervals(
            ctx, b, assume, splits
        )
    if type(s) not in NEGATE:
        return False
    d = cmp_difference(ctx, s)
    if d is not None and decide_cmp(ctx, type(s), d, depth=2, only_true=True):
        return True
    if splits == 0:
        return False
    node = _find_branching(s)
    if node is None:
        return False
    it = ctx.interner
    t = type(node)
    if t is Select:
        cases = [(node.cond, node.true_value), (it.mk(Not, node.cond), node.false_value)]  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
    else:
        a, b = node.a, node.b  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
        first = it.mk(LE, a, b) if t is Min else it.mk(GE, a, b)
        cases = [(first, a), (it.mk(Not, first), b)]
    for cond, value in cases:
        with assume(cond):
            case = simplify(ctx, substitute(ctx, s, {id(node): value}))
            if type(case) is IntImm:
                if not case.value:
                    return False
            elif not prove_by_intervals(ctx, case, assume, splits - 1):
                return False
    return True


def _find_branching(e: PrimExpr) -> PrimExpr | None:
    """The first scalar integer select/min/max inside a condition (pre-order), if any."""
    stack = [e]
    while stack:
        x = stack.pop()
        t = type(x)
        if t in (Select, Min, Max) and x.dtype.lanes == 1 and x.dtype.is_int:
            return x
        if t in (IntImm, Var):
            continue
        kids = [getattr(x, f) for f in getattr(t, "__dataclass_fields__", {})]
        stack.extend(k for k in reversed(kids) if isinstance(k, PrimExpr))
    return None
