"""Rewrite rules for comparisons, boolean logic, select and casts.

Integer comparisons are decided by intervals and facts when possible, otherwise normalized to one of
`P + k < N`, `P + k == N`, `P + k != N` with P and N sums of positive terms and the common factor of
the coefficients divided out, so equivalent conditions print the same and cancel in `And`/`Or`.
Float comparisons are only folded: `x == x` is false for NaN, so no identity holds in general.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..dtype import bool_
from ..expr import EQ, GE, GT, LE, LT, NE, Cast, IntImm, Not, Or, PrimExpr, Select
from .bound import const_int_bound, dtype_range, fits
from .canonical import Sum, build, mono_order, norm_coeff
from .facts import cmp_difference, prove_le0

if TYPE_CHECKING:
    from .context import Context

__all__ = [
    "rewrite_cmp",
    "rewrite_and_or",
    "rewrite_not",
    "rewrite_select",
    "rewrite_cast",
    "decide_cmp",
    "NEGATE",
]

NEGATE = {LT: GE, LE: GT, GT: LE, GE: LT, EQ: NE, NE: EQ}
_SWAP = {GT: LT, GE: LE}


def _true(ctx: Context, value: bool) -> PrimExpr:
    return ctx.interner.int(int(value), bool_)


def decide_cmp(
    ctx: Context, t: type, d: Sum, depth: int = 1, only_true: bool = False
) -> bool | None:
    """Truth of `d <op> 0` (d exact) when intervals and facts settle it (`only_true`: do not
    spend time showing that it is false)."""

    def le0(x: Sum) -> bool:
        return prove_le0(ctx, x, depth)

    if t is GT:
        t, d = LT, -d
    elif t is GE:
        t, d = LE, -d
    if t is LT or t is LE:
        strict = d.add_const(1) if t is LT else d
        if le0(strict):
            return True
        return None if only_true else (False if le0((-d).add_const(0 if t is LT else 1)) else None)
    if not d.terms:
        eq: bool | None = d.const == 0
    elif d.const % d.gcd():
        eq = False
    elif t is EQ and only_true:
        eq = True if (le0(d) and le0(-d)) else None
    elif le0(d.add_const(1)) or le0((-d).add_const(1)):
        eq = False
    elif le0(d) and le0(-d):
        eq = True
    else:
        eq = None
    if eq is None:
        return None
    return eq if t is EQ else not eq


def rewrite_cmp(ctx: Context, e: PrimExpr) -> PrimExpr | None:
    t = type(e)
    a, b = e.a, e.b  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
    dt = a.dtype
    if dt.lanes != 1:
        return None
    known = ctx.known.get(id(e))
    if known is not None:
        ctx.bound_decisions += 1
        return _true(ctx, known)
    if dt.is_bool:
        return _bool_cmp(ctx, e)
    if not dt.is_int:
        return None
    if a is b:
        return _true(ctx, t in (EQ, LE, GE))
    d = cmp_difference(ctx, e)
    if d is None:
        return _cmp_by_bounds(ctx, e)
    decision = decide_cmp(ctx, t, d)
    if decision is not None:
        ctx.bound_decisions += 1
        return _true(ctx, decision)
    return _normalize(ctx, t, d, e)


def _bool_cmp(ctx: Context, e: PrimExpr) -> PrimExpr | None:
    t = type(e)
    if t not in (EQ, NE):
        return None
    a, b = e.a, e.b  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
    if type(a) is IntImm:
        a, b = b, a
    if type(b) is not IntImm:
        return None
    want = bool(b.value) == (t is EQ)  # e is `a` when want, else `not a`
    return a if want else ctx.interner.mk(Not, a)


def _cmp_by_bounds(ctx: Context, e: PrimExpr) -> PrimExpr | None:
    t = type(e)
    (la, ha), (lb, hb) = const_int_bound(ctx, e.a), const_int_bound(ctx, e.b)  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
    r: bool | None = None
    if t in (LT, GT):
        lo_side, hi_side = ((la, ha), (lb, hb)) if t is LT else ((lb, hb), (la, ha))
        r = True if lo_side[1] < hi_side[0] else False if lo_side[0] >= hi_side[1] else None
    elif t in (LE, GE):
        lo_side, hi_side = ((la, ha), (lb, hb)) if t is LE else ((lb, hb), (la, ha))
        r = True if lo_side[1] <= hi_side[0] else False if lo_side[0] > hi_side[1] else None
    elif ha < lb or hb < la:
        r = t is NE
    if r is not None:
        ctx.bound_decisions += 1
        return _true(ctx, r)
    if t in _SWAP:
        return ctx.interner.mk(_SWAP[t], e.b, e.a)  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
    return None


def _normalize(ctx: Context, t: type, d: Sum, e: PrimExpr) -> PrimExpr | None:
    dt = e.a.dtype  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
    # everything becomes `d < 0`, `d == 0` or `d != 0`
    if t is LE:
        d, t = d.add_const(-1), LT
    elif t is GT:
        d, t = -d, LT
    elif t is GE:
        d, t = (-d).add_const(-1), LT
    g = d.gcd()
    if g > 1:
        terms = {m: c // g for m, c in d.terms.items()}
        d = Sum(None, terms, d.const // g)  # floor: exact for ==/!= (g divides it), right for <
    if t is not LT:
        first = min(d.terms, key=lambda m: mono_order(ctx, m))
        if d.terms[first] < 0:
            d = -d
    pos = {m: c for m, c in d.terms.items() if c > 0}
    neg = {m: -c for m, c in d.terms.items() if c < 0}
    k = d.const
    lhs = Sum(dt, pos, k if k > 0 else 0)
    rhs = Sum(dt, neg, -k if k < 0 else 0)
    for s in (lhs, rhs):
        if (
            any(norm_coeff(c, dt) != c for c in s.terms.values())
            or norm_coeff(s.const, dt) != s.const
        ):
            return None
        lo, hi = dtype_range(dt)
        if not (lo <= s.const <= hi) or not fits(ctx, s):
            return None
    it = ctx.interner
    if t is LT and rhs.const == 1:  # P < N + 1 reads better as P <= N
        t, rhs = LE, Sum(dt, rhs.terms, 0)
    out = it.mk(t, build(ctx, lhs), build(ctx, rhs))
    return None if out is e else out


# --------------------------------------------------------------------------------------------------
# logic


def _flatten(e: PrimExpr, cls: type, out: list[PrimExpr]) -> None:
    if type(e) is cls:
        _flatten(e.a, cls, out)  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
        _flatten(e.b, cls, out)  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
    else:
        out.append(e)


def rewrite_and_or(ctx: Context, e: PrimExpr) -> PrimExpr | None:
    """Flatten, drop neutral constants, absorb (x and not x -> false), dedupe, sort."""
    cls = type(e)
    if e.dtype.lanes != 1:
        return None
    absorbing = cls is Or  # the constant that decides the whole: False for And, True for Or
    known = ctx.known.get(id(e))
    if known is not None:
        return _true(ctx, known)
    ops: list[PrimExpr] = []
    _flatten(e, cls, ops)
    it = ctx.interner
    uniq: list[PrimExpr] = []
    seen: set[int] = set()
    for x in ops:
        if type(x) is IntImm:
            if bool(x.value) == absorbing:
                return _true(ctx, absorbing)
            continue
        if id(x) not in seen:
            seen.add(id(x))
            uniq.append(x)
    for x in uniq:
        neg = it.find(Not, x)
        if neg is not None and id(neg) in seen:
            return _true(ctx, absorbing)
    if len(uniq) > 1 and any(type(x) in NEGATE for x in uniq):
        for x in uniq:
            if type(x) in NEGATE and x.a.dtype.is_int:  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
                if id(ctx.simplify(it.mk(Not, x))) in seen:  # x and its complement
                    return _true(ctx, absorbing)
    if not uniq:
        return _true(ctx, not absorbing)
    uniq.sort(key=it.order_key)
    out = uniq[0]
    for x in uniq[1:]:
        out = it.mk(cls, out, x)
    return None if out is e else out


def rewrite_not(ctx: Context, e: Not) -> PrimExpr | None:
    a = e.a
    if type(a) is Not:
        return a.a
    if type(a) in NEGATE and (a.a.dtype.is_int or a.a.dtype.is_bool):  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
        return ctx.interner.mk(NEGATE[type(a)], a.a, a.b)  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
    known = ctx.known.get(id(a))
    if known is not None:
        return _true(ctx, not known)
    return None


def rewrite_select(ctx: Context, e: Select) -> PrimExpr | None:
    it = ctx.interner
    c, x, y = e.cond, e.true_value, e.false_value
    if x is y:
        return x
    if type(c) is Not:
        return it.mk(Select, c.a, y, x)
    if e.dtype == bool_ and type(x) is IntImm and type(y) is IntImm:
        return c if x.value else it.mk(Not, c)
    return None


def rewrite_cast(ctx: Context, e: Cast) -> PrimExpr | None:
    v = e.value
    if v.dtype == e.dtype:
        return v
    if type(v) is Cast and e.dtype.lanes == 1:
        x = v.value
        src, mid, dst = x.dtype, v.dtype, e.dtype
        if src.is_int and mid.is_int and dst.is_int:
            lo, hi = const_int_bound(ctx, x)
            mlo, mhi = dtype_range(mid)
            if mlo <= lo and hi <= mhi:  # the inner cast is exact for every value of x
                return x if src == dst else ctx.interner.mk(Cast, dst, x)
    return None
