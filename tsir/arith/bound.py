"""Constant integer bounds (intervals) of expressions, respecting ranges, substitutions and facts.

`const_int_bound` bounds the value an expression actually takes (after wrapping): when the interval
of an operation leaves its dtype, the result could be anything in the dtype, and the bound says so.
`sum_bound` bounds a `Sum` over the mathematical integers, which is what the rewrite rules need.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..dtype import DataType
from ..expr import (
    EQ,
    GE,
    GT,
    LE,
    LT,
    NE,
    Add,
    And,
    Broadcast,
    Call,
    Cast,
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
    Sub,
    Var,
)

if TYPE_CHECKING:
    from .canonical import Sum
    from .context import Context

__all__ = ["const_int_bound", "sum_bound", "fits", "dtype_range", "Bound"]

Bound = tuple[int, int]


def dtype_range(dt: DataType) -> Bound:
    if dt.is_bool:
        return (0, 1)
    if dt.is_int:
        return (int(dt.min_value()), int(dt.max_value()))
    raise TypeError(str(dt))


def _clamp(lo: int, hi: int, dt: DataType) -> Bound:
    dlo, dhi = dtype_range(dt)
    if lo < dlo or hi > dhi:
        return (dlo, dhi)  # the math result may wrap: any value of the dtype
    return (lo, hi)


def const_int_bound(ctx: Context, e: PrimExpr) -> Bound:
    """Bound of an interned integer or bool expression (vectors: over all lanes)."""
    cache = ctx.cache.bound
    hit = cache.get(id(e))
    if hit is not None:
        return hit
    hits = ctx.guard_hits
    fn = _RULES.get(type(e))
    dt = e.dtype.element
    b = fn(ctx, e) if fn is not None else dtype_range(dt)
    if ctx.guard_hits == hits:  # a result cut short by the cycle guard is not cached
        cache[id(e)] = b
    return b


def _imm(ctx: Context, e: IntImm) -> Bound:
    return (e.value, e.value)


def _var(ctx: Context, v: Var) -> Bound:
    dt = v.dtype.element
    lo, hi = dtype_range(dt)
    vid = id(v)
    sub = ctx.substs.get(vid)
    if sub is not None:
        if vid in ctx.guard:  # a let variable seen inside its own value: cannot happen in valid IR
            ctx.guard_hits += 1
            return (lo, hi)
        ctx.guard.add(vid)
        try:
            return const_int_bound(ctx, sub[1])
        finally:
            ctx.guard.discard(vid)
    table = ctx.var_bounds()
    b = table.get(vid)
    return b if b is not None else (lo, hi)


def _add(ctx: Context, e: Add) -> Bound:
    a, b = const_int_bound(ctx, e.a), const_int_bound(ctx, e.b)
    return _clamp(a[0] + b[0], a[1] + b[1], e.dtype.element)


def _sub(ctx: Context, e: Sub) -> Bound:
    a, b = const_int_bound(ctx, e.a), const_int_bound(ctx, e.b)
    return _clamp(a[0] - b[1], a[1] - b[0], e.dtype.element)


def mul_bound(a: Bound, b: Bound) -> Bound:
    c = (a[0] * b[0], a[0] * b[1], a[1] * b[0], a[1] * b[1])
    return (min(c), max(c))


def _mul(ctx: Context, e: Mul) -> Bound:
    if e.a is e.b:
        lo, hi = const_int_bound(ctx, e.a)
        sq = (lo * lo, hi * hi)
        r = (0 if lo <= 0 <= hi else min(sq), max(sq))
    else:
        r = mul_bound(const_int_bound(ctx, e.a), const_int_bound(ctx, e.b))
    return _clamp(r[0], r[1], e.dtype.element)


def floordiv_bound(a: Bound, b: Bound) -> Bound | None:
    """Bound of floor(a / b) over nonzero b in the interval; None if b can only be 0."""
    parts = []
    if b[0] <= -1:
        parts.append((b[0], min(b[1], -1)))
    if b[1] >= 1:
        parts.append((max(b[0], 1), b[1]))
    vals = [x // y for lo, hi in parts for x in a for y in (lo, hi)]
    if not vals:
        return None
    return (min(vals), max(vals))


def _floordiv(ctx: Context, e: FloorDiv) -> Bound:
    dt = e.dtype.element
    r = floordiv_bound(const_int_bound(ctx, e.a), const_int_bound(ctx, e.b))
    return dtype_range(dt) if r is None else _clamp(r[0], r[1], dt)


def floormod_bound(a: Bound, b: Bound) -> Bound:
    if b[0] > 0:
        if a[0] >= 0 and a[1] < b[0]:
            return a
        if b[0] == b[1] and a[0] // b[0] == a[1] // b[0]:
            k = a[0] // b[0] * b[0]
            return (a[0] - k, a[1] - k)
        hi = b[1] - 1
        if a[0] >= 0:
            hi = min(hi, a[1])
        return (0, hi)
    if b[1] < 0:
        return (b[0] + 1, 0)
    return (min(0, b[0] + 1), max(0, b[1] - 1))


def _floormod(ctx: Context, e: FloorMod) -> Bound:
    return floormod_bound(const_int_bound(ctx, e.a), const_int_bound(ctx, e.b))


def _min(ctx: Context, e: Min) -> Bound:
    a, b = const_int_bound(ctx, e.a), const_int_bound(ctx, e.b)
    return (min(a[0], b[0]), min(a[1], b[1]))


def _max(ctx: Context, e: Max) -> Bound:
    a, b = const_int_bound(ctx, e.a), const_int_bound(ctx, e.b)
    return (max(a[0], b[0]), max(a[1], b[1]))


def _select(ctx: Context, e: Select) -> Bound:
    c = e.cond
    if type(c) is IntImm:
        return const_int_bound(ctx, e.true_value if c.value else e.false_value)
    a, b = const_int_bound(ctx, e.true_value), const_int_bound(ctx, e.false_value)
    return (min(a[0], b[0]), max(a[1], b[1]))


def _cast(ctx: Context, e: Cast) -> Bound:
    dst = e.dtype.element
    src = e.value.dtype.element
    if dst.is_bool:
        return (0, 1)
    if not (src.is_int or src.is_bool):
        return dtype_range(dst)
    lo, hi = const_int_bound(ctx, e.value)
    return _clamp(lo, hi, dst)


def _bool(ctx: Context, e: PrimExpr) -> Bound:
    return (0, 1)


def _let(ctx: Context, e: Let) -> Bound:
    ctx.substs.setdefault(id(e.var), (e.var, e.value))  # a let variable has exactly one value
    return const_int_bound(ctx, e.body)


def _ramp(ctx: Context, e: Ramp) -> Bound:
    b, s = const_int_bound(ctx, e.base), const_int_bound(ctx, e.stride)
    n = e.lanes - 1
    return _clamp(b[0] + min(0, s[0] * n), b[1] + max(0, s[1] * n), e.dtype.element)


def _broadcast(ctx: Context, e: Broadcast) -> Bound:
    return const_int_bound(ctx, e.value)


def _call(ctx: Context, e: Call) -> Bound:
    dt = e.dtype.element
    full = dtype_range(dt)
    if len(e.args) != 2 or not dt.is_int:
        return full
    x, y = e.args
    if e.op in ("shift_right", "shift_left") and type(y) is IntImm and 0 <= y.value < dt.bits:
        lo, hi = const_int_bound(ctx, x)
        if e.op == "shift_right":
            return (lo >> y.value, hi >> y.value)
        return _clamp(lo << y.value, hi << y.value, dt)
    if e.op == "bitwise_and":
        a, b = const_int_bound(ctx, x), const_int_bound(ctx, y)
        his = [r[1] for r in (a, b) if r[0] >= 0]
        if his:
            return (0, min(his))
    return full


_RULES: dict[type, Callable[..., Bound]] = {
    IntImm: _imm,
    Var: _var,
    Add: _add,
    Sub: _sub,
    Mul: _mul,
    FloorDiv: _floordiv,
    FloorMod: _floormod,
    Min: _min,
    Max: _max,
    Select: _select,
    Cast: _cast,
    EQ: _bool,
    NE: _bool,
    LT: _bool,
    LE: _bool,
    GT: _bool,
    GE: _bool,
    And: _bool,
    Or: _bool,
    Not: _bool,
    Let: _let,
    Ramp: _ramp,
    Broadcast: _broadcast,
    Call: _call,
}


# --------------------------------------------------------------------------------------------------
# Sums over the mathematical integers


def mono_bound(ctx: Context, mono: tuple[int, ...]) -> Bound:
    out = (1, 1)
    i = 0
    while i < len(mono):
        j = i
        while j < len(mono) and mono[j] == mono[i]:
            j += 1
        lo, hi = const_int_bound(ctx, ctx.node_by_id[mono[i]])
        p = j - i
        if p == 1:
            b = (lo, hi)
        else:
            c = (lo**p, hi**p)
            b = (0 if (p % 2 == 0 and lo <= 0 <= hi) else min(c), max(c))
            if p % 2 == 1:
                b = (min(c), max(c))
        out = mul_bound(out, b)
        i = j
    return out


def sum_bound(ctx: Context, s: Sum) -> Bound:
    lo = hi = s.const
    for mono, c in s.terms.items():
        mlo, mhi = mono_bound(ctx, mono)
        if c > 0:
            lo += c * mlo
            hi += c * mhi
        else:
            lo += c * mhi
            hi += c * mlo
    return (lo, hi)


def fits(ctx: Context, s: Sum) -> bool:
    """True when the Sum's mathematical value always lies in its dtype (so no wrapping happened).

    A constant counts too: uint8 200 is kept as the coefficient -56, whose value is not 200."""
    if s.dtype is None:
        return True  # an exact Sum does not wrap
    lo, hi = sum_bound(ctx, s)
    dlo, dhi = dtype_range(s.dtype)
    return dlo <= lo and hi <= dhi
