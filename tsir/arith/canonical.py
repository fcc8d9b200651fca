"""The canonical form of integer ring expressions: a sum of coefficient x monomial plus a constant.

`+`, `-` and `*` on an n-bit integer type are the ring Z/2^n, so any rearrangement of a polynomial
(collecting like terms, expanding products, cancelling) gives the same *wrapped* value: a `Sum`
always evaluates, modulo 2^n, to the expression it came from. The Sum's value over the mathematical
integers can differ from the wrapped value only when it leaves the dtype's range; rules that are not
ring identities (floordiv, floormod, comparisons, min/max) therefore first check with
`bound.sum_bound` that it cannot.

Atoms are interned non-ring expressions (variables, floordiv/floormod, min/max, loads, ...); a
monomial is the sorted tuple of its atoms' ids; coefficients are kept as the representative in
(-2^(n-1), 2^(n-1)].
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..dtype import DataType
from ..expr import Add, FloorDiv, FloorMod, IntImm, Mul, PrimExpr, Sub, wrap_int

if TYPE_CHECKING:
    from .context import Context

__all__ = ["Sum", "Mono", "sum_of", "build", "norm_coeff", "atom_sum", "const_sum"]

Mono = tuple  # tuple[int, ...]: sorted ids of interned atoms

MAX_TERMS = 32  # a product that would expand past this many terms stays an atom


def norm_coeff(c: int, dt: DataType | None) -> int:
    if dt is None:  # an exact Sum over the mathematical integers
        return c
    m = 1 << dt.bits
    c %= m
    if c > m >> 1:
        c -= m
    return c


class Sum:
    """`const + sum(coeff * prod(atoms))` over one integer dtype (coefficients wrap), or over the
    mathematical integers when `dtype` is None (an *exact* Sum, for reasoning). Immutable."""

    __slots__ = ("dtype", "terms", "const")

    def __init__(self, dtype: DataType | None, terms: dict[Mono, int], const: int) -> None:
        self.dtype = dtype
        self.terms = terms
        self.const = const

    def exact(self) -> Sum:
        return self if self.dtype is None else Sum(None, self.terms, self.const)

    def is_const(self) -> bool:
        return not self.terms

    def __add__(self, other: Sum) -> Sum:
        dt = self.dtype
        terms = dict(self.terms)
        for m, c in other.terms.items():
            v = norm_coeff(terms.get(m, 0) + c, dt)
            if v:
                terms[m] = v
            else:
                terms.pop(m, None)
        return Sum(dt, terms, norm_coeff(self.const + other.const, dt))

    def scale(self, k: int) -> Sum:
        dt = self.dtype
        terms = {}
        for m, c in self.terms.items():
            v = norm_coeff(c * k, dt)
            if v:
                terms[m] = v
        return Sum(dt, terms, norm_coeff(self.const * k, dt))

    def __neg__(self) -> Sum:
        return self.scale(-1)

    def __sub__(self, other: Sum) -> Sum:
        return self + other.scale(-1)

    def add_const(self, k: int) -> Sum:
        return Sum(self.dtype, self.terms, norm_coeff(self.const + k, self.dtype))

    def without(self, monos: set[Mono] | list[Mono]) -> Sum:
        drop = set(monos)
        return Sum(self.dtype, {m: c for m, c in self.terms.items() if m not in drop}, self.const)

    def mul(self, other: Sum) -> Sum | None:
        """The expanded product, or None when it would be too large."""
        if self.is_const():
            return other.scale(self.const)
        if other.is_const():
            return self.scale(other.const)
        if (len(self.terms) + 1) * (len(other.terms) + 1) > MAX_TERMS:
            return None
        dt = self.dtype
        out = Sum(dt, {}, norm_coeff(self.const * other.const, dt))
        parts: dict[Mono, int] = {}
        for m1, c1 in self.terms.items():
            for m2, c2 in other.terms.items():
                m = tuple(sorted(m1 + m2))
                parts[m] = parts.get(m, 0) + c1 * c2
            if other.const:
                parts[m1] = parts.get(m1, 0) + c1 * other.const
        if self.const:
            for m2, c2 in other.terms.items():
                parts[m2] = parts.get(m2, 0) + c2 * self.const
        return out + Sum(dt, parts, 0)

    def gcd(self) -> int:
        """gcd of the non-constant coefficients (0 for a constant)."""
        from math import gcd

        g = 0
        for c in self.terms.values():
            g = gcd(g, c)
        return g


def const_sum(value: int, dt: DataType) -> Sum:
    return Sum(dt, {}, norm_coeff(value, dt))


def atom_sum(ctx: Context, e: PrimExpr) -> Sum:
    ctx.node_by_id[id(e)] = e
    return Sum(e.dtype, {(id(e),): 1}, 0)


def sum_of(ctx: Context, e: PrimExpr) -> Sum:
    """The canonical Sum of an interned integer scalar expression (context independent, cached)."""
    hit = ctx.sums.get(id(e))
    if hit is not None:
        return hit
    dt = e.dtype
    t = type(e)
    if t is IntImm:
        s = const_sum(e.value, dt)  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
    elif t is Add:
        s = _merge_divmod(ctx, sum_of(ctx, e.a) + sum_of(ctx, e.b))  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
    elif t is Sub:
        s = _merge_divmod(ctx, sum_of(ctx, e.a) - sum_of(ctx, e.b))  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
    elif t is Mul:
        p = sum_of(ctx, e.a).mul(sum_of(ctx, e.b))  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
        s = _merge_divmod(ctx, p) if p is not None else atom_sum(ctx, e)
    else:
        s = atom_sum(ctx, e)
    ctx.sums[id(e)] = s
    return s


def _const_of(e: PrimExpr) -> int | None:
    return e.value if type(e) is IntImm else None


def _merge_divmod(ctx: Context, s: Sum) -> Sum:
    """Fold the div/mod decompositions that tiling produces back together (ring identities):

    k*c*(y // c) + k*(y % c)          -> k*y
    k*y - k*c*(y // c)                -> k*(y % c)          (when k*y's terms all occur in the sum)
    k*c1*((y // c1) % c2) + k*(y % c1) -> k*(y % (c1*c2))
    """
    it = ctx.interner
    for _ in range(8):
        changed = False
        for mono in list(s.terms):
            k = s.terms.get(mono)
            if k is None or len(mono) != 1:
                continue
            atom = ctx.node_by_id[mono[0]]
            t = type(atom)
            if t is FloorMod:
                c = _const_of(atom.b)  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
                y = atom.a  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
                if c is None or c <= 0:
                    continue
                div = it.find(FloorDiv, y, atom.b)  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
                dmono = (id(div),) if div is not None else None
                if dmono is not None and s.terms.get(dmono) == norm_coeff(k * c, s.dtype):
                    s = s.without([mono, dmono]) + sum_of(ctx, y).scale(k)
                    changed = True
                    continue
                if type(y) is FloorDiv:
                    c1 = _const_of(y.b)
                    z = y.a
                    if c1 is None or c1 <= 0 or k % c1 != 0:
                        continue
                    inner = it.find(FloorMod, z, y.b)
                    if inner is None:
                        continue
                    imono = (id(inner),)
                    kk = norm_coeff(k // c1, s.dtype)
                    cc = c1 * c
                    if (
                        s.dtype is not None
                        and s.terms.get(imono) == kk
                        and cc <= s.dtype.max_value()
                    ):
                        merged = it.mk(FloorMod, z, it.int(cc, s.dtype))
                        s = s.without([mono, imono]) + atom_sum(ctx, merged).scale(kk)
                        changed = True
            elif t is FloorDiv:
                c = _const_of(atom.b)  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
                if c is None or c <= 0 or k % c != 0:
                    continue
                kk = -(k // c)
                y_sum = sum_of(ctx, atom.a).scale(kk)  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
                if y_sum.terms and all(s.terms.get(m) == v for m, v in y_sum.terms.items()):
                    mod = it.mk(FloorMod, atom.a, atom.b)  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
                    s = s.without([mono]) - y_sum + atom_sum(ctx, mod).scale(kk)
                    changed = True
        if not changed:
            break
    return s


# --------------------------------------------------------------------------------------------------
# back to expressions


def _mono_expr(ctx: Context, mono: Mono) -> PrimExpr:
    it = ctx.interner
    atoms = sorted((ctx.node_by_id[i] for i in mono), key=it.order_key)
    out = atoms[0]
    for a in atoms[1:]:
        out = it.mk(Mul, out, a)
    return out


def mono_order(ctx: Context, mono: Mono) -> tuple:
    """Higher degree first, then by the atoms' order (names)."""
    it = ctx.interner
    return (-len(mono), tuple(sorted(it.order_key(ctx.node_by_id[i]) for i in mono)))


def build(ctx: Context, s: Sum) -> PrimExpr:
    """The expression of a Sum: positive terms, then subtracted terms, then the constant."""
    it = ctx.interner
    dt = s.dtype
    assert dt is not None, "an exact Sum (no dtype) is for reasoning; it has no expression"
    half = 1 << (dt.bits - 1)
    order = sorted(s.terms.items(), key=lambda mc: mono_order(ctx, mc[0]))
    pos: list[PrimExpr] = []
    neg: list[PrimExpr] = []
    for mono, c in order:
        base = _mono_expr(ctx, mono)
        if c > 0 and not (c == half and dt.is_signed_int):
            pos.append(base if c == 1 else it.mk(Mul, base, it.int(c, dt)))
        elif c == half:  # -2^(n-1) is its own negation: keep it as a literal factor
            pos.append(it.mk(Mul, base, it.int(-c, dt)))
        else:
            neg.append(base if c == -1 else it.mk(Mul, base, it.int(-c, dt)))
    k = s.const
    out: PrimExpr | None = None
    for p in pos:
        out = p if out is None else it.mk(Add, out, p)
    if out is None:
        if not neg:
            return it.int(wrap_int(k, dt), dt)
        if k > 0 or (k == half and dt.is_signed_int):
            out = it.int(wrap_int(k, dt), dt)
            k = 0
        else:
            out = it.int(0, dt)
    for n in neg:
        out = it.mk(Sub, out, n)
    if k == half and dt.is_signed_int:  # -2^(n-1): add it as a literal
        out = it.mk(Add, out, it.int(-k, dt))
    elif k > 0:
        out = it.mk(Add, out, it.int(k, dt))
    elif k < 0:
        out = it.mk(Sub, out, it.int(-k, dt))
    return out
