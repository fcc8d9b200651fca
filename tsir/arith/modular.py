"""Modular sets: `e` is always `coeff * k + base` for some integer k.

`coeff == 0` means `e == base`; `(1, 0)` means nothing is known. Wrapping arithmetic keeps
congruences
modulo powers of two only, so when an operation may overflow its dtype the result keeps just the
power-of
-two part of the modulus (e.g. `x * 6` that may wrap is still known even: `(2, 0)`).
"""

from __future__ import annotations

from collections.abc import Callable
from math import gcd
from typing import TYPE_CHECKING

from ..expr import (
    Add,
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
    PrimExpr,
    Select,
    Sub,
    Var,
)
from .bound import const_int_bound, dtype_range, mul_bound
from .const_fold import wrap

if TYPE_CHECKING:
    from .context import Context

__all__ = ["modular_set", "MS"]

MS = tuple[int, int]
_TOP: MS = (1, 0)


def _norm(c: int, b: int) -> MS:
    c = abs(c)
    return (c, b % c) if c else (0, b)


def _wrap(ms: MS, dt, lo: int, hi: int) -> MS:
    """Keep what survives wrapping when the mathematical result [lo, hi] may leave dt."""
    dlo, dhi = dtype_range(dt)
    if dlo <= lo and hi <= dhi:
        return ms
    m = 1 << dt.bits
    c, b = ms
    p = gcd(c, m)  # gcd(0, 2^n) == 2^n: a constant that wrapped is still known mod 2^n
    if c == 0:
        return (0, wrap(b, dt))
    return (p, b % p)


def modular_set(ctx: Context, e: PrimExpr) -> MS:
    cache = ctx.cache.modular
    hit = cache.get(id(e))
    if hit is not None:
        return hit
    fn = _RULES.get(type(e))
    ms = fn(ctx, e) if fn is not None else _TOP
    cache[id(e)] = ms
    return ms


def _imm(ctx: Context, e: IntImm) -> MS:
    return (0, e.value)


def _combine(a: MS, b: MS) -> MS | None:
    """Intersection of two congruences (x = b1 mod c1 and x = b2 mod c2), None if empty."""
    (c1, b1), (c2, b2) = a, b
    if c1 == 0 or c2 == 0:
        return a if c1 == 0 else b
    g = gcd(c1, c2)
    if (b2 - b1) % g:
        return None
    lcm = c1 // g * c2
    # solve b1 + c1*t = b2 (mod c2)
    t = ((b2 - b1) // g * pow(c1 // g, -1, c2 // g)) % (c2 // g) if c2 // g > 1 else 0
    return (lcm, (b1 + c1 * t) % lcm)


def _var(ctx: Context, v: Var) -> MS:
    vid = id(v)
    if vid in ctx.guard:
        return _TOP
    ctx.guard.add(vid)
    try:
        sub = ctx.substs.get(vid)
        if sub is not None:
            return modular_set(ctx, sub[1])
        out = _TOP
        rng = ctx.ranges.get(vid)
        if rng is not None and type(rng[2]) is IntImm and rng[2].value == 1:
            out = modular_set(ctx, rng[1])
        for m, r in ctx.var_mod.get(vid, ()):
            out = _combine(out, (m, r)) or out
        return out
    finally:
        ctx.guard.discard(vid)


def _add_sub(ctx: Context, e: PrimExpr) -> MS:
    (c1, b1), (c2, b2) = modular_set(ctx, e.a), modular_set(ctx, e.b)  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
    la, ha = const_int_bound(ctx, e.a)  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
    lb, hb = const_int_bound(ctx, e.b)  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
    if type(e) is Add:
        ms, lo, hi = _norm(gcd(c1, c2), b1 + b2), la + lb, ha + hb
    else:
        ms, lo, hi = _norm(gcd(c1, c2), b1 - b2), la - hb, ha - lb
    return _wrap(ms, e.dtype.element, lo, hi)


def _mul(ctx: Context, e: Mul) -> MS:
    (c1, b1), (c2, b2) = modular_set(ctx, e.a), modular_set(ctx, e.b)
    ms = _norm(gcd(gcd(c1 * c2, c1 * b2), c2 * b1), b1 * b2)
    lo, hi = mul_bound(const_int_bound(ctx, e.a), const_int_bound(ctx, e.b))
    return _wrap(ms, e.dtype.element, lo, hi)


def _floordiv(ctx: Context, e: FloorDiv) -> MS:
    if type(e.b) is not IntImm or e.b.value <= 0:
        return _TOP
    k = e.b.value
    c, b = modular_set(ctx, e.a)
    if c % k == 0:
        return _norm(c // k, b // k)
    return _TOP


def _floormod(ctx: Context, e: FloorMod) -> MS:
    if type(e.b) is not IntImm or e.b.value <= 0:
        return _TOP
    k = e.b.value
    c, b = modular_set(ctx, e.a)
    if c % k == 0:
        return (0, b % k)
    g = gcd(c, k)
    return _norm(g, b)


def _union(a: MS, b: MS) -> MS:
    (c1, b1), (c2, b2) = a, b
    return _norm(gcd(gcd(c1, c2), b1 - b2), b1)


def _minmax(ctx: Context, e: PrimExpr) -> MS:
    return _union(modular_set(ctx, e.a), modular_set(ctx, e.b))  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`


def _select(ctx: Context, e: Select) -> MS:
    return _union(modular_set(ctx, e.true_value), modular_set(ctx, e.false_value))


def _cast(ctx: Context, e: Cast) -> MS:
    src, dst = e.value.dtype.element, e.dtype.element
    if not (src.is_int and dst.is_int):
        return _TOP
    lo, hi = const_int_bound(ctx, e.value)
    return _wrap(modular_set(ctx, e.value), dst, lo, hi)


def _let(ctx: Context, e: Let) -> MS:
    ctx.substs.setdefault(id(e.var), (e.var, e.value))
    return modular_set(ctx, e.body)


def _broadcast(ctx: Context, e: Broadcast) -> MS:
    return modular_set(ctx, e.value)


def _call(ctx: Context, e: Call) -> MS:
    if len(e.args) != 2 or type(e.args[1]) is not IntImm or not e.dtype.is_int:
        return _TOP
    x, s = e.args[0], e.args[1].value
    dt = e.dtype.element
    if e.op == "shift_left" and 0 <= s < dt.bits:
        c, b = modular_set(ctx, x)
        lo, hi = const_int_bound(ctx, x)
        return _wrap(_norm(c << s, b << s), dt, lo << s, hi << s)
    if e.op == "shift_right" and 0 <= s < dt.bits:
        c, b = modular_set(ctx, x)
        k = 1 << s
        return _norm(c // k, b // k) if c % k == 0 else _TOP
    if e.op == "bitwise_and" and s > 0 and (s + 1) & s == 0:  # x & (2^k - 1) == x % 2^k
        c, b = modular_set(ctx, x)
        k = s + 1
        return (0, b % k) if c % k == 0 else _norm(gcd(c, k), b)
    return _TOP


_RULES: dict[type, Callable[..., MS]] = {
    IntImm: _imm,
    Var: _var,
    Add: _add_sub,
    Sub: _add_sub,
    Mul: _mul,
    FloorDiv: _floordiv,
    FloorMod: _floormod,
    Min: _minmax,
    Max: _minmax,
    Select: _select,
    Cast: _cast,
    Let: _let,
    Broadcast: _broadcast,
    Call: _call,
}
