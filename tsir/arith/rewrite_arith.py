"""Rewrite rules for integer arithmetic: the canonical sum, floordiv, floormod, min and max.

Each rule takes an interned node whose children are already simplified and returns a replacement or
None. Rules that are not ring identities reason over the mathematical integers and first check
(`fits`) that the operand's Sum cannot have wrapped, so the rewrite is exact for every value the
expression can take.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..expr import Add, FloorDiv, FloorMod, IntImm, Min, PrimExpr
from .bound import const_int_bound, fits, sum_bound
from .canonical import Sum, atom_sum, build, sum_of
from .facts import prove_le0
from .modular import modular_set

if TYPE_CHECKING:
    from .context import Context

__all__ = [
    "rewrite_ring",
    "rewrite_div_const",
    "rewrite_div_symbolic",
    "rewrite_mod_const",
    "rewrite_mod_symbolic",
    "rewrite_minmax",
    "prove_le",
]


def _int_scalar(e: PrimExpr) -> bool:
    dt = e.dtype
    return dt.lanes == 1 and dt.is_int


def rewrite_ring(ctx: Context, e: PrimExpr) -> PrimExpr | None:
    """Add/Sub/Mul -> the canonical sum: like terms combined, constants folded, products expanded"""
    if not _int_scalar(e):
        return None
    out = build(ctx, sum_of(ctx, e))
    return None if out is e else out


def _const(e: PrimExpr) -> int | None:
    return e.value if type(e) is IntImm else None


def _split(s: Sum, c: int, reduce: bool) -> tuple[Sum, Sum]:
    """S = c*Q + R. Terms whose coefficient c divides go to Q; with `reduce`, other coefficients are
    split too, keeping their sign in R (|R's coefficient| < c). The constant is split with floor."""
    q: dict = {}
    r: dict = {}
    for mono, k in s.terms.items():
        if k % c == 0:
            q[mono] = k // c
        elif reduce and k > c:
            q[mono] = k // c
            r[mono] = k % c
        elif reduce and k < -c:  # -(|k| // c) * c - (|k| % c): magnitudes shrink, signs stay
            q[mono] = -(-k // c)
            r[mono] = -(-k % c)
        else:
            r[mono] = k
    return Sum(s.dtype, q, s.const // c), Sum(s.dtype, r, s.const % c)


def _window(ctx: Context, r: Sum, c: int) -> int | None:
    """k when floor(R / c) == k for every value of R, else None."""
    lo, hi = sum_bound(ctx, r.exact())
    return lo // c if lo // c == hi // c else None


def rewrite_div_const(ctx: Context, e: FloorDiv) -> PrimExpr | None:
    """(c*Q + R) // c -> Q + k when R stays in [k*c, (k+1)*c); (x // a) // b -> x // (a*b)."""
    c = _const(e.b)
    if c is None or c <= 0 or not _int_scalar(e):
        return None
    it = ctx.interner
    dt = e.dtype
    a = e.a
    if c == 1:
        return a
    if type(a) is FloorDiv and (c1 := _const(a.b)) is not None and c1 > 0:
        if c1 * c <= dt.max_value():
            return it.mk(FloorDiv, a.a, it.int(c1 * c, dt))
        return it.int(0, dt) if const_int_bound(ctx, a.a)[0] >= 0 else None
    s = sum_of(ctx, a)
    if not fits(ctx, s):
        lo, hi = const_int_bound(ctx, a)
        return it.int(lo // c, dt) if lo // c == hi // c else None
    q, r = _split(s, c, reduce=False)
    k = _window(ctx, r, c)
    if k is None:
        q2, r2 = _split(s, c, reduce=True)
        k = _window(ctx, r2, c)
        if k is not None:
            q, r = q2, r2
    if k is not None:
        return build(ctx, q.add_const(k))
    if s.const and s.terms:
        # the terms are known to be r mod c: (T + k) // c == T // c + (r + k) // c
        t = Sum(dt, s.terms, 0)
        mc, mb = modular_set(ctx, build(ctx, t))
        if mc and mc % c == 0 and fits(ctx, t):
            rest = (mb % c + s.const) // c
            return build(ctx, atom_sum(ctx, it.mk(FloorDiv, build(ctx, t), e.b)).add_const(rest))
    if q.terms and fits(ctx, r):
        # floor((c*Q + R) / c) == Q + floor(R / c) exactly; keep R's constant in [0, c)
        return it.mk(Add, build(ctx, q), it.mk(FloorDiv, build(ctx, r), e.b))
    return None


def _symbolic_divisor(ctx: Context, e: PrimExpr) -> int | None:
    """The id of a positive atom divisor, for (x*d + r) // d style rules."""
    d = e.b  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
    if type(d) is IntImm or not _int_scalar(e) or const_int_bound(ctx, d)[0] < 1:
        return None
    ds = sum_of(ctx, d)
    if len(ds.terms) != 1 or ds.const != 0:
        return None
    ((mono, k),) = ds.terms.items()
    return mono[0] if (len(mono) == 1 and k == 1) else None


def _split_sym(s: Sum, did: int) -> tuple[Sum, Sum]:
    q: dict = {}
    r: dict = {}
    for mono, k in s.terms.items():
        if did in mono:
            rest = list(mono)
            rest.remove(did)
            q[tuple(rest)] = k
        else:
            r[mono] = k
    return Sum(s.dtype, q, 0), Sum(s.dtype, r, s.const)


def _in_0_d(ctx: Context, r: Sum, did: int) -> bool:
    """0 <= R < d, for the atom d."""
    ex = r.exact()
    if not prove_le0(ctx, -ex):
        return False
    d = Sum(None, {(did,): 1}, 0)
    return prove_le0(ctx, (ex - d).add_const(1))


def _sum_from_q(q: Sum) -> Sum:
    # a monomial that was exactly d leaves the empty monomial: a constant
    const = q.terms.get((), 0)
    terms = {m: k for m, k in q.terms.items() if m}
    return Sum(q.dtype, terms, q.const + const)


def rewrite_div_symbolic(ctx: Context, e: FloorDiv) -> PrimExpr | None:
    """(x*d + r) // d -> x when 0 <= r < d, for a positive atom d (a dynamic tile size, stride)."""
    did = _symbolic_divisor(ctx, e)
    if did is None:
        return None
    s = sum_of(ctx, e.a)
    if not fits(ctx, s):
        return None
    q, r = _split_sym(s, did)
    if _in_0_d(ctx, r, did):
        return build(ctx, _sum_from_q(q))
    return None


def rewrite_mod_const(ctx: Context, e: FloorMod) -> PrimExpr | None:
    """(c*Q + R) % c -> R - k*c when R stays in [k*c, (k+1)*c); known residues; (x % a) % b."""
    c = _const(e.b)
    if c is None or c <= 0 or not _int_scalar(e):
        return None
    it = ctx.interner
    dt = e.dtype
    a = e.a
    if c == 1:
        return it.int(0, dt)
    mc, mb = modular_set(ctx, a)
    if mc % c == 0:
        return it.int(mb % c, dt)
    if type(a) is FloorMod and (c1 := _const(a.b)) is not None and c1 > 0 and c1 % c == 0:
        return it.mk(FloorMod, a.a, e.b)
    s = sum_of(ctx, a)
    if not fits(ctx, s):
        lo, hi = const_int_bound(ctx, a)
        if lo // c != hi // c:
            return None
        k = lo // c
        return a if k == 0 else it.mk(Add, a, it.int(-k * c, dt))
    _, r = _split(s, c, reduce=True)
    k = _window(ctx, r, c)
    if k is not None:
        return build(ctx, r.add_const(-k * c))
    if (r.terms != s.terms or r.const != s.const) and fits(ctx, r):
        return it.mk(FloorMod, build(ctx, r), e.b)
    return None


def rewrite_mod_symbolic(ctx: Context, e: FloorMod) -> PrimExpr | None:
    """(x*d + r) % d -> r % d, and -> r when 0 <= r < d, for a positive atom d."""
    did = _symbolic_divisor(ctx, e)
    if did is None:
        return None
    s = sum_of(ctx, e.a)
    if not fits(ctx, s):
        return None
    q, r = _split_sym(s, did)
    if _in_0_d(ctx, r, did):
        return build(ctx, r)
    if q.terms and fits(ctx, r):
        return ctx.interner.mk(FloorMod, build(ctx, r), e.b)
    return None


# --------------------------------------------------------------------------------------------------
# min / max


def prove_le(ctx: Context, a: PrimExpr, b: PrimExpr) -> bool:
    """a <= b for every value, by intervals and facts (no solver)."""
    sa, sb = sum_of(ctx, a), sum_of(ctx, b)
    if fits(ctx, sa) and fits(ctx, sb):
        return prove_le0(ctx, sa.exact() - sb.exact())
    return const_int_bound(ctx, a)[1] <= const_int_bound(ctx, b)[0]


def _flatten(e: PrimExpr, cls: type, out: list[PrimExpr]) -> None:
    if type(e) is cls:
        _flatten(e.a, cls, out)  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
        _flatten(e.b, cls, out)  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
    else:
        out.append(e)


MAX_MINMAX_PROOFS = 16  # past this many operands, only dedupe and sort (pairwise proofs are n^2)


def rewrite_minmax(ctx: Context, e: PrimExpr) -> PrimExpr | None:
    """min/max: drop operands another one provably dominates, dedupe, sort, re-nest."""
    cls = type(e)
    if e.a is e.b:  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
        return e.a  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
    if not _int_scalar(e):
        return None
    ops: list[PrimExpr] = []
    _flatten(e, cls, ops)
    uniq: list[PrimExpr] = []
    for x in ops:
        if not any(x is y for y in uniq):
            uniq.append(x)
    uniq.sort(key=ctx.interner.order_key)
    keep = list(uniq)
    i = 0
    while i < len(keep) and len(keep) <= MAX_MINMAX_PROOFS:
        x = keep[i]
        # for min, x is useless when some other y <= x; for max when x <= y
        if any(
            y is not x and (prove_le(ctx, y, x) if cls is Min else prove_le(ctx, x, y))
            for y in keep
        ):
            keep.pop(i)
        else:
            i += 1
    keep.sort(key=ctx.interner.order_key)
    it = ctx.interner
    out = keep[0]
    for x in keep[1:]:
        out = it.mk(cls, out, x)
    return None if out is e else out
