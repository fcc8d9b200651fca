"""The simplifier driver: bottom-up, a rule table indexed by node type, each node run to a fixpoint.

Children are simplified first (a `Select` with a decided condition, and `And`/`Or` with a deciding
first operand, skip the operand that is never evaluated, as C does); constants fold with the dtype's
semantics; then the rules for the node's type are tried in order until none applies. A rule's output
is simplified again, so a rule may return new, unsimplified subterms. Results are cached per
analyzer state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..dtype import bool_
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
    Select,
    StringImm,
    Sub,
    Var,
)
from ..node import node_fields
from .canonical import build, sum_of
from .const_fold import NoFold, cast_value, compare, float_binary, int_binary, wrap
from .intern import fmt
from .rewrite_arith import (
    rewrite_div_const,
    rewrite_div_symbolic,
    rewrite_minmax,
    rewrite_mod_const,
    rewrite_mod_symbolic,
    rewrite_ring,
)
from .rewrite_logic import (
    rewrite_and_or,
    rewrite_cast,
    rewrite_cmp,
    rewrite_not,
    rewrite_select,
)

if TYPE_CHECKING:
    from .context import Context

__all__ = ["simplify", "simplify_rules", "substitute"]

Rule = Callable[[Any, Any], "PrimExpr | None"]

simplify_rules: dict[type, tuple[Rule, ...]] = {
    Add: (rewrite_ring,),
    Sub: (rewrite_ring,),
    Mul: (rewrite_ring,),
    FloorDiv: (rewrite_div_const, rewrite_div_symbolic),
    FloorMod: (rewrite_mod_const, rewrite_mod_symbolic),
    Min: (rewrite_minmax,),
    Max: (rewrite_minmax,),
    EQ: (rewrite_cmp,),
    NE: (rewrite_cmp,),
    LT: (rewrite_cmp,),
    LE: (rewrite_cmp,),
    GT: (rewrite_cmp,),
    GE: (rewrite_cmp,),
    And: (rewrite_and_or,),
    Or: (rewrite_and_or,),
    Not: (rewrite_not,),
    Select: (rewrite_select,),
    Cast: (rewrite_cast,),
}

MAX_ROUNDS = 16  # rule applications on one node before giving up (a safety net, never hit in tests)

_CONST = (IntImm, FloatImm)


def simplify(ctx: Context, e: PrimExpr) -> PrimExpr:
    """Simplify an interned expression."""
    cache = ctx.cache.simp
    hit = cache.get(id(e))
    if hit is not None:
        return hit
    cur = _children(ctx, e)
    if ctx.known and type(cur) is not IntImm:
        known = ctx.known.get(id(cur))  # an assumed literal (a bool variable, a disjunction, ...)
        if known is not None:
            cur = ctx.interner.int(int(known), bool_)
    for _ in range(MAX_ROUNDS):
        nxt = None
        for rule in simplify_rules.get(type(cur), ()):
            nxt = rule(ctx, cur)
            if nxt is not None and nxt is not cur:
                break
            nxt = None
        if nxt is None:
            break
        cur = _children(ctx, nxt)
    cache[id(e)] = cur
    cache[id(cur)] = cur
    return cur


def _children(ctx: Context, e: PrimExpr) -> PrimExpr:
    """e with simplified children, folded if they are all constants."""
    t = type(e)
    if t in _CONST or t is StringImm:
        return e
    if t is Var:
        sub = ctx.substs.get(id(e))
        return simplify(ctx, sub[1]) if sub is not None else e
    if t is Select:
        c = simplify(ctx, e.cond)  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
        if type(c) is IntImm:
            return simplify(ctx, e.true_value if c.value else e.false_value)  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
        x = simplify(ctx, e.true_value)  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
        y = simplify(ctx, e.false_value)  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
        return ctx.interner.mk(Select, c, x, y)
    if t is And or t is Or or ((t is Min or t is Max) and e.dtype.lanes == 1):
        return _chain(ctx, e)
    if t is Let:
        return _let(ctx, e)  # pyright: ignore[reportArgumentType]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
    if (t is Add or t is Sub or t is Mul) and e.dtype.lanes == 1 and e.dtype.is_int:
        return _ring(ctx, e)
    fields = []
    same = True
    for f in node_fields(e):
        v = getattr(e, f.name)
        if isinstance(v, PrimExpr):
            nv: Any = simplify(ctx, v)
        elif isinstance(v, tuple):
            nv = tuple(simplify(ctx, x) if isinstance(x, PrimExpr) else x for x in v)
            if all(p is q for p, q in zip(nv, v)):
                nv = v
        else:
            nv = v
        same = same and nv is v
        fields.append(nv)
    if (t is FloorDiv or t is FloorMod) and type(fields[1]) is IntImm and fields[1].value == 0:
        if type(e.b) is IntImm:  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
            # a literal zero divisor is a bug in the input: say so
            int_binary(t.__name__, 0, 0, e.dtype, what=lambda: fmt(e))
        # one that only appears after simplifying (in a branch that may never run) stays as written
        fields[1] = e.b  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
        same = fields[0] is e.a  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
    out = e if same else ctx.interner.mk(t, *fields)
    return _fold(ctx, out)


def _ring(ctx: Context, e: PrimExpr) -> PrimExpr:
    """A tree of + - * simplifies as one Sum: its atoms are simplified, the interior nodes are not
    (simplifying every prefix of a long sum separately would cost quadratic time or worse)."""
    it = ctx.interner

    def go(x: PrimExpr) -> PrimExpr:
        t = type(x)
        if t is Add or t is Sub or t is Mul:
            a, b = go(x.a), go(x.b)  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
            return x if (a is x.a and b is x.b) else it.mk(t, a, b)  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
        return simplify(ctx, x)

    return build(ctx, sum_of(ctx, go(e)))


def _chain(ctx: Context, e: PrimExpr) -> PrimExpr:
    """A nest of one associative operator (and, or, min, max): its operands are simplified left to
    right (and/or stop at a deciding constant, as C does), the nest itself is rebuilt as it was."""
    t = type(e)
    it = ctx.interner
    absorbing = (t is Or) if (t is And or t is Or) else None

    def go(x: PrimExpr) -> PrimExpr:
        if type(x) is not t:
            return simplify(ctx, x)
        a = go(x.a)  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
        if absorbing is not None and type(a) is IntImm and bool(a.value) == absorbing:
            return a
        b = go(x.b)  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
        if absorbing is not None and type(b) is IntImm and bool(b.value) == absorbing:
            return b
        out = x if (a is x.a and b is x.b) else it.mk(t, a, b)  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
        return _fold(ctx, out)

    return go(e)


def _let(ctx: Context, e: Let) -> PrimExpr:
    # Expressions are pure, so a let is inlined: the body then simplifies with the value in place.
    value = simplify(ctx, e.value)
    return simplify(ctx, substitute(ctx, e.body, {id(e.var): value}))


def substitute(ctx: Context, e: PrimExpr, mapping: dict[int, PrimExpr]) -> PrimExpr:
    """Replace subterms (variables or any interned node, by id); the result is interned."""
    memo: dict[int, PrimExpr] = {}

    def go(x: Any) -> Any:
        if isinstance(x, tuple):
            return tuple(go(y) for y in x)
        if not isinstance(x, PrimExpr):
            return x
        hit = memo.get(id(x))
        if hit is not None:
            return hit
        if id(x) in mapping:
            out = mapping[id(x)]
        elif isinstance(x, (Var, IntImm, FloatImm, StringImm)):
            out = x
        else:
            fields = [go(getattr(x, f.name)) for f in node_fields(x)]
            out = ctx.interner.mk(type(x), *fields)
        memo[id(x)] = out
        return out

    return go(e)


# --------------------------------------------------------------------------------------------------
# constant folding


def _fold(ctx: Context, e: PrimExpr) -> PrimExpr:
    t = type(e)
    it = ctx.interner
    try:
        if isinstance(e, BinaryOp):
            a, b = e.a, e.b
            if not isinstance(a, _CONST) or not isinstance(b, _CONST):
                return e
            if t in (FloorDiv, FloorMod) and b.value == 0:
                return e
            dt = e.dtype
            if dt.is_int and t is not Div:
                return it.int(int_binary(t.__name__, a.value, b.value, dt, what=lambda: fmt(e)), dt)  # pyright: ignore[reportArgumentType]  # an int dtype's constants are IntImm
            if dt.is_float:
                return it.float(float_binary(t.__name__, a.value, b.value, dt), dt)
            return e
        if isinstance(e, CmpOp):
            a, b = e.a, e.b
            if isinstance(a, _CONST) and isinstance(b, _CONST):
                return it.int(int(compare(t.__name__, a.value, b.value)), bool_)
            return e
        if t is And or t is Or:
            a, b = e.a, e.b  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
            if type(a) is IntImm and type(b) is IntImm:
                v = (a.value and b.value) if t is And else (a.value or b.value)
                return it.int(int(bool(v)), bool_)
            return e
        if t is Not:
            a = e.a  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
            return it.int(int(not a.value), bool_) if type(a) is IntImm else e
        if t is Cast:
            v = e.value  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
            if type(v) in _CONST and e.dtype.lanes == 1:
                return it.const(cast_value(v.value, v.dtype, e.dtype), e.dtype)
            return e
        if t is Call:
            return _fold_call(ctx, e)  # pyright: ignore[reportArgumentType]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
    except NoFold:
        return e
    return e


_BITWISE = {
    "bitwise_and": lambda x, y: x & y,
    "bitwise_or": lambda x, y: x | y,
    "bitwise_xor": lambda x, y: x ^ y,
}


def _fold_call(ctx: Context, e: Call) -> PrimExpr:
    args = e.args
    dt = e.dtype
    if not dt.is_int or dt.lanes != 1 or not all(type(a) is IntImm for a in args):
        return e
    vals = [a.value for a in args]  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
    if e.op == "bitwise_not" and len(vals) == 1:
        return ctx.interner.int(wrap(~vals[0], dt), dt)
    if len(vals) != 2:
        return e
    x, y = vals
    if e.op in _BITWISE:
        return ctx.interner.int(wrap(_BITWISE[e.op](x, y), dt), dt)
    if e.op in ("shift_left", "shift_right") and 0 <= y < dt.bits:
        v = x << y if e.op == "shift_left" else x >> y
        return ctx.interner.int(wrap(v, dt), dt)
    return e
