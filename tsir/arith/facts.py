"""Assumed facts: turning conditions into linear facts, and using them.

A fact `a < b` on integers becomes the linear fact `S_a - S_b + 1 <= 0` over the mathematical
integers (valid when neither side can wrap). Facts give variable bounds (`x < M` with M <= 4096
gives x <= 4095), congruences (`x % 4 == 0`), and proofs of `S <= 0` by one step of linear
reasoning: S <= 0 holds when `S - k*F <= 0` holds on intervals for a fact `F <= 0` and some k > 0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..expr import EQ, GE, GT, LE, LT, NE, And, FloorDiv, FloorMod, IntImm, Not, PrimExpr, Var
from .bound import Bound, const_int_bound, dtype_range, fits, sum_bound
from .canonical import Sum, atom_sum, sum_of

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
        return split_and(e.a) + split_and(e.b)
    return [e]


def cmp_difference(ctx: Context, e: PrimExpr) -> Sum | None:
    """`S_a - S_b` for an integer comparison whose sides cannot wrap, else None."""
    a, b = e.a, e.b  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
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
    if t is Not and type(cond.a) in _NEGATE:  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
        inner = cond.a  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
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
    if f.for_z3 and type(f.cond) is not IntImm:
        # the literal condition is true from now on (and the operand of a `not` is false)
        ctx.known[id(f.cond)] = True
        if type(f.cond) is Not:
            ctx.known[id(f.cond.a)] = False
    if f.linear is None:
        return
    s = f.linear
    for mono, _c in s.terms.items():
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
        for sign in (1,) if f.rel == "le" else (1, -1):
            aa, rmin = a * sign, (rlo if sign == 1 else -rhi)
            # aa*v <= -rmin
            if aa > 0:
                hi = min(hi, (-rmin) // aa)
            else:
                lo = max(lo, -(rmin // aa))  # ceil(-rmin / aa)
    return (lo, hi)


def propagate(ctx: Context) -> dict[int, Bound]:
    """Variable bounds of the current state: ranges and facts, propagated for a few rounds.

    Every entry is a valid bound at every point, so bounds computed from a half-built table are
    merely loose; the bound cache is dropped at the end so later queries see the final table."""
    table: dict[int, Bound] = {}
    ctx.cache.var_table = table
    try:
        for _ in range(3):
            changed = False
            for _vid, (var, mn, ext) in ctx.ranges.items():
                mlo, mhi = const_int_bound(ctx, mn)
                _, ehi = const_int_bound(ctx, ext)
                changed |= _tighten(table, var, mlo, mhi + ehi - 1)
            for vid in ctx.var_facts:
                var = ctx.node_by_id[vid]
                if type(var) is Var:
                    lo, hi = var_fact_bound(ctx, var)
                    changed |= _tighten(table, var, lo, hi)
            ctx.cache.bound.clear()
            if not changed:
                break
    finally:
        ctx.cache.bound.clear()
    return table


def _tighten(table: dict[int, Bound], v: Var, lo: int, hi: int) -> bool:
    old = table.get(id(v))
    olo, ohi = old if old is not None else dtype_range(v.dtype.element)
    nlo, nhi = max(olo, lo), min(ohi, hi)
    if nlo > nhi:  # an empty range or contradictory facts: nothing is reachable
        nhi = nlo
    if (nlo, nhi) == (olo, ohi):
        return False
    table[id(v)] = (nlo, nhi)
    return True


def prove_le0(ctx: Context, s: Sum, depth: int = 1) -> bool:
    """Prove S <= 0 over the integers: intervals, then up to `depth` steps of subtracting a positive
    multiple of a fact (assumed, a range, or the definition of a floordiv/floormod atom in S)."""
    if sum_bound(ctx, s)[1] <= 0:
        return True
    return _search(ctx, s, depth, [_BUDGET * depth])


_BUDGET = 48  # interval evaluations per step of depth


def _search(ctx: Context, s: Sum, depth: int, budget: list[int]) -> bool:
    for fs, rel in _candidates(ctx, s):
        for k in _multipliers(s, fs, rel):
            budget[0] -= 1
            if budget[0] < 0:
                return False
            r = s - fs.scale(k)
            if sum_bound(ctx, r)[1] <= 0:
                return True
            if depth > 1 and _search(ctx, r, depth - 1, budget):
                return True
    return False


def _multipliers(s: Sum, fs: Sum, rel: str) -> list[int]:
    ks: list[int] = []
    for mono, c in fs.terms.items():
        sc = s.terms.get(mono)
        if sc is not None and sc % c == 0:
            k = sc // c
            if k > 0 or rel == "eq":
                if k not in ks:
                    ks.append(k)
    return ks


def _candidates(ctx: Context, s: Sum) -> list[tuple[Sum, str]]:
    out: list[tuple[Sum, str]] = []
    seen: set[int] = set()
    atoms: list[int] = []
    for mono in s.terms:
        for aid in mono:
            if aid not in atoms:
                atoms.append(aid)
    for aid in atoms:
        for f in ctx.atom_facts.get(aid, ()):
            if id(f) not in seen:
                seen.add(id(f))
                out.append((f.linear, f.rel))  # pyright: ignore[reportArgumentType]  # narrowed by a check above that the checker cannot follow
    for aid in atoms:
        out.extend(definitions(ctx, ctx.node_by_id[aid]))
    return out


def definitions(ctx: Context, atom: PrimExpr) -> list[tuple[Sum, str]]:
    """Linear facts that define a floordiv/floormod atom: for D = X // d with d > 0,
    d*D <= X <= d*D + d - 1; for R = X % d, R == X - d*(X // d) and R <= d - 1."""
    cache = ctx.cache.defs
    hit = cache.get(id(atom))
    if hit is not None:
        return hit
    out: list[tuple[Sum, str]] = []
    t = type(atom)
    if t is FloorDiv or t is FloorMod:
        x, d = atom.a, atom.b  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
        if x.dtype.lanes == 1 and x.dtype.is_int and const_int_bound(ctx, d)[0] >= 1:
            sx, sd = sum_of(ctx, x), sum_of(ctx, d)
            if fits(ctx, sx) and fits(ctx, sd):
                it = ctx.interner
                div = atom if t is FloorDiv else it.mk(FloorDiv, x, d)
                dq = atom_sum(ctx, div).exact().mul(sd.exact())
                if dq is not None:
                    ex = sx.exact()
                    if t is FloorDiv:
                        out.append((dq - ex, "le"))
                        out.append((ex - dq - sd.exact() + Sum(None, {}, 1), "le"))
                    else:
                        r = atom_sum(ctx, atom).exact()
                        out.append((r + dq - ex, "eq"))
                        out.append((r - sd.exact() + Sum(None, {}, 1), "le"))  # R <= d - 1
    cache[id(atom)] = out
    return out
