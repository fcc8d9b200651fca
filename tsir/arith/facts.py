"""Assumed facts: turning conditions into linear facts, and using them.

A fact `a < b` on integers becomes the linear fact `S_a - S_b + 1 <= 0` over the mathematical integers
(valid when neither side can wrap). Facts give variable bounds (`x < M` with M <= 4096 gives x <= 4095),
congruences (`x % 4 == 0`), and proofs of `S <= 0` by one step of linear reasoning: S <= 0 holds when
`S - k*F <= 0` holds on intervals for a fact `F <= 0` and some k > 0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..expr import EQ, GE, GT, LE, LT, NE, And, FloorMod, IntImm, Not, PrimExpr, Var
from .bound import Bound, dtype_range, fits, sum_bound
from .canonical import Sum, sum_of

if TYPE_CHECKING:
    from .context import Context, Fact

__all__ = [
    "linear_facts",
    "index_fact",
    "var_fact_bound",
    "prove_le0",
    "split_and",
    "cmp_difference",
]


def split_and(e: PrimExpr) -> list[PrimExpr]:
    if type(e) is And:
        return split_and(e.a) + split_and(e.b)  # type: ignore[attr-defined]
    return [e]


def cmp_difference(ctx: Context, e: PrimExpr) -> Sum | None:
    """`S_a - S_b` for an integer comparison whose sides cannot wrap, else None."""
    a, b = e.a, e.b  # type: ignore[attr-defined]
    dt = a.dtype
    if dt.lanes != 1 or not dt.is_int:
        return None
    sa, sb = sum_of(ctx, a), sum_of(ctx, b)
    if not (fits(ctx, sa) and fits(ctx, sb)):
        return None
    return sa.exact() - sb.exact()


def linear_facts(ctx: Context, cond: PrimExpr) -> list[tuple[Sum, str]]:
    """The linear forms of one (simplified) conjunct: [(S, "le"|"eq")] meaning S <= 0 / S == 0."""
    t = type(cond)
    if t is Not and type(cond.a) in _NEGATE:  # type: ignore[attr-defined]
        inner = cond.a  # type: ignore[attr-defined]
        t = _NEGATE[type(inner)]
        cond = t(inner.a, inner.b)
    if t not in (LT, LE, GT, GE, EQ):
        return []
    d = cmp_difference(ctx, cond)
    if d is None:
        return []
    if t is LT:
        return [(d.add_const(1), "le")]
    if t is LE:
        return [(d, "le")]
    if t is GT:
        return [((-d).add_const(1), "le")]
    if t is GE:
        return [(-d, "le")]
    return [(d, "eq")]


_NEGATE = {LT: GE, LE: GT, GT: LE, GE: LT, EQ: NE, NE: EQ}


def index_fact(ctx: Context, f: Fact) -> None:
    if f.linear is None:
        return
    s = f.linear
    for mono, c in s.terms.items():
        for aid in set(mono):
            ctx.atom_facts.setdefault(aid, []).append(f)
        if len(mono) == 1:
            ctx.var_facts.setdefault(mono[0], []).append(f)
    if f.rel == "eq" and len(s.terms) == 1:
        ((mono, c),) = s.terms.items()
        atom = ctx.node_by_id[mono[0]]
        # c * (v % m) + k == 0  ->  v % m == -k / c
        if len(mono) == 1 and type(atom) is FloorMod and type(atom.b) is IntImm:
            m = atom.b.value
            if m > 0 and -s.const % c == 0:
                r = -s.const // c
                if 0 <= r < m and isinstance(atom.a, Var):
                    ctx.var_mod.setdefault(id(atom.a), []).append((m, r))


def var_fact_bound(ctx: Context, v: Var) -> Bound:
    """Bounds on v implied by facts where v is a lone linear term: a*v + R <= 0 (or == 0)."""
    lo, hi = dtype_range(v.dtype.element)
    mono = (id(v),)
    for f in ctx.var_facts.get(id(v), ()):
        s = f.linear
        assert s is not None
        a = s.terms[mono]
        rest = Sum(s.dtype, {m: c for m, c in s.terms.items() if m != mono}, s.const)
        rlo, rhi = sum_bound(ctx, rest)
        for sign in ((1,) if f.rel == "le" else (1, -1)):
            aa, rmin = a * sign, (rlo if sign == 1 else -rhi)
            # aa*v <= -rmin
            if aa > 0:
                hi = min(hi, (-rmin) // aa)
            else:
                lo = max(lo, -(rmin // aa))  # ceil(-rmin / aa)
    return (lo, hi)


def prove_le0(ctx: Context, s: Sum) -> bool:
    """Prove S <= 0 over the integers, with intervals and one linear fact."""
    if sum_bound(ctx, s)[1] <= 0:
        return True
    if not ctx.atom_facts:
        return False
    seen: set[int] = set()
    for mono, c in s.terms.items():
        for aid in set(mono):
            for f in ctx.atom_facts.get(aid, ()):
                if id(f) in seen:
                    continue
                seen.add(id(f))
                if _try_fact(ctx, s, f):
                    return True
    return False


def _try_fact(ctx: Context, s: Sum, f: Fact) -> bool:
    fs = f.linear
    assert fs is not None
    # candidate multipliers: ratios of shared coefficients, and 1
    ks = {1}
    for mono, c in fs.terms.items():
        sc = s.terms.get(mono)
        if sc is not None and sc % c == 0:
            ks.add(sc // c)
    for k in sorted(ks):
        if k == 0 or (k < 0 and f.rel != "eq"):
            continue
        d = s.exact() - fs.exact().scale(k)
        if sum_bound(ctx, d)[1] <= 0:
            return True
    return False

