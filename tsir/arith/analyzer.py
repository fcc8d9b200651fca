"""`Analyzer`: the one object passes talk to.

    ana = Analyzer()
    ana.bind(i, 0, 128)                      # i in [0, 128)
    ana.bind(by, 0, T.ceildiv(M, 128))       # symbolic extents are fine
    with ana.assume(M % 128 == 0):
        ana.can_prove(by * 128 + i < M)      # True: the bounds guard is dead
    ana.modular_set(x * 8 + 4)               # ModularSet(coeff=8, base=4)

`can_prove` tries, in order: simplification (rewrite rules that use bounds and facts), interval and
linear-fact reasoning on what is left, then Z3 (exact integer semantics, deterministic budget). "Not
proved" is always a safe answer; a wrong "proved" is a bug.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ..dtype import DataType, bool_
from ..errors import ArithError
from ..expr import FloorMod as _FloorMod
from ..expr import IntImm, PrimExpr, Var, convert
from . import z3_prover
from .bound import const_int_bound as _bound
from .bound import dtype_range, fits, sum_bound
from .canonical import atom_sum, sum_of
from .context import Context, Fact
from .facts import linear_facts, split_and
from .intern import fmt
from .interval import prove_by_intervals
from .modular import modular_set as _modular
from .sampling import find_counterexample
from .simplify import simplify as _simplify

__all__ = ["Analyzer", "ConstIntBound", "ModularSet", "Proof"]


@dataclass(frozen=True, slots=True)
class ConstIntBound:
    """Every value of the expression lies in [min_value, max_value]."""

    min_value: int
    max_value: int


@dataclass(frozen=True, slots=True)
class ModularSet:
    """Every value of the expression is `coeff * k + base` for some integer k (coeff 0: == base)."""

    coeff: int
    base: int

    def is_multiple_of(self, k: int) -> bool:
        return self.coeff % k == 0 and self.base % k == 0


@dataclass(frozen=True, slots=True)
class Proof:
    """The outcome of `Analyzer.prove`."""

    proved: bool
    method: str | None  # "rewrite", "interval" or "z3" when proved
    z3: str | None = None  # "proved", "refuted" or "unknown" when Z3 was asked
    disproved: bool = False  # the condition simplified to False: it never holds
    refuted: bool = False  # a counterexample exists (found by sampling or by Z3)

    def __bool__(self) -> bool:
        return self.proved


_STAT_KEYS = (
    "queries",
    "rewrite",
    "interval",
    "z3",
    "disproved",
    "sampled",
    "z3_refuted",
    "z3_unknown",
    "unproved",
    "cache_hits",
    "z3_cache_hits",
)


class Analyzer:
    """Simplification, bounds, modular sets and proofs over tsir integer expressions."""

    def __init__(self, *, z3_rlimit: int = z3_prover.DEFAULT_RLIMIT, use_z3: bool = True) -> None:
        self.z3_rlimit = z3_rlimit
        self.use_z3 = use_z3
        self._ctx = Context()
        self._stats: dict[str, int] = dict.fromkeys(_STAT_KEYS, 0)

    @property
    def stats(self) -> dict[str, int]:
        """How many `can_prove` questions each method settled (plus totals and cache hits)."""
        return dict(self._stats)

    # input ----------------------------------------------------------------------------------------
    def _intern(self, e: Any, what: str) -> PrimExpr:
        if isinstance(e, (bool, int)):
            e = convert(e)
        if not isinstance(e, PrimExpr):
            raise ArithError(f"{what} expects an expression, got {type(e).__name__} {e!r}")
        return self._ctx.interner.intern_tree(e)

    def _cond(self, cond: Any, what: str) -> PrimExpr:
        c = self._intern(cond, what)
        if not (c.dtype.is_bool and c.dtype.lanes == 1):
            raise ArithError(
                f"{what} expects a bool condition, got `{fmt(c)}` of type {c.dtype}; "
                "compare it explicitly (e.g. `e != 0`)"
            )
        return c

    # knowledge ------------------------------------------------------------------------------------
    def bind(self, var: Var, value: Any, extent: Any = None, *, override: bool = False) -> None:
        """Give `var` a range or a value.

        `bind(v, lo, extent)`: lo <= v < lo + extent.  `bind(v, rng)`: any object with `.min` and
        `.extent` (a `tsir.Range`).  `bind(v, expr)`: v == expr (the expression replaces v).
        Binding a bound variable again to something different needs `override=True`.
        """
        ctx = self._ctx
        if not isinstance(var, Var):
            raise ArithError(f"bind expects a Var, got {type(var).__name__}")
        ctx.interner.var(var)
        if extent is None and hasattr(value, "min") and hasattr(value, "extent"):
            value, extent = value.min, value.extent
        if extent is not None:
            if isinstance(value, int) and isinstance(extent, int):
                dlo, dhi = dtype_range(var.dtype)
                value, extent = max(value, dlo), min(value + extent, dhi + 1) - max(value, dlo)
                if value == dlo and extent == dhi - dlo + 1 and id(var) not in ctx.ranges:
                    return  # the whole dtype: nothing to record
            lo = self._intern(_range_const(value, var), "bind")
            ext = self._intern(_range_const(extent, var), "bind")
            for part in (lo, ext):
                if not (part.dtype.is_int and part.dtype.lanes == 1):
                    raise ArithError(
                        f"bind range of `{var.name}` needs integer bounds, got {part.dtype}"
                    )
            new: tuple[Any, ...] = ("range", lo, ext)
        else:
            e = self._intern(convert(value, var.dtype) if isinstance(value, int) else value, "bind")
            if e.dtype != var.dtype:
                raise ArithError(
                    f"bind `{var.name}` ({var.dtype}) to `{fmt(e)}` of type {e.dtype}; "
                    "cast the value"
                )
            if id(var) in ctx.free_var_ids(e):
                raise ArithError(
                    f"bind `{var.name}` to `{fmt(e)}`, which mentions `{var.name}` itself"
                )
            new = ("subst", e)
        old = ctx.ranges.get(id(var)), ctx.substs.get(id(var))
        if old != (None, None):
            same = (old[0] is not None and new[0] == "range" and old[0][1:] == new[1:]) or (
                old[1] is not None and new[0] == "subst" and old[1][1] is new[1]
            )
            if same:
                return
            if not override:
                raise ArithError(
                    f"`{var.name}` is already bound; pass override=True to rebind it to "
                    f"{'a new range' if new[0] == 'range' else f'`{fmt(new[1])}`'}"
                )
            ctx.ranges.pop(id(var), None)
            ctx.substs.pop(id(var), None)
            ctx.perm_facts = [f for f in ctx.perm_facts if f.var is not var]
            ctx.reindex()
        if new[0] == "range":
            ctx.ranges[id(var)] = (var, new[1], new[2])
            self._range_facts(var, new[1], new[2])
        else:
            ctx.substs[id(var)] = (var, new[1])
        ctx.after_bind()

    def _refine_ranges(self, touched: frozenset[int]) -> None:
        """Symbolic range bounds re-simplified under the new facts, as scoped linear facts:
        with M % 32 == 0, `by < (M + 31) // 32` also reads `by < M // 32`."""
        ctx = self._ctx
        for var, lo, ext in list(ctx.ranges.values()):
            if type(lo) is IntImm and type(ext) is IntImm:
                continue
            if not (ctx.free_var_ids(lo) | ctx.free_var_ids(ext)) & touched:
                continue
            lo2, ext2 = _simplify(ctx, lo), _simplify(ctx, ext)
            if lo2 is not lo or ext2 is not ext:
                self._range_facts(var, lo2, ext2, permanent=False)

    def _range_facts(self, var: Var, lo: PrimExpr, ext: PrimExpr, permanent: bool = True) -> None:
        """Symbolic ranges also become linear facts (lo - v <= 0, v - lo - ext + 1 <= 0)."""
        if type(lo) is IntImm and type(ext) is IntImm:
            return
        ctx = self._ctx
        if not var.dtype.is_int:
            return
        v = atom_sum(ctx, var).exact()
        sl, se = sum_of(ctx, lo), sum_of(ctx, ext)
        if not (fits(ctx, sl) and fits(ctx, se)):
            return
        for lin in ((sl.exact() - v), (v - sl.exact() - se.exact()).add_const(1)):
            f = Fact(ctx.interner.int(1, bool_), linear=lin, rel="le", for_z3=False, var=var)
            ctx.add_fact(f, permanent=permanent)

    @contextmanager
    def assume(self, cond: Any) -> Iterator[Analyzer]:
        """Within the block every method may use `cond` (a bool expression) as a fact."""
        c = self._cond(cond, "assume")
        ctx = self._ctx
        ctx.push()
        try:
            s = _simplify(ctx, c)
            for conj in split_and(s):
                if type(conj) is IntImm and conj.value:
                    continue
                lins = linear_facts(ctx, conj)
                if not lins:
                    ctx.add_fact(Fact(cond=conj))
                for i, (lin, rel) in enumerate(lins):
                    ctx.add_fact(Fact(cond=conj, linear=lin, rel=rel, for_z3=(i == 0)))
            self._refine_ranges(ctx.free_var_ids(c))
            yield self
        finally:
            ctx.pop()

    # queries --------------------------------------------------------------------------------------
    def simplify(self, expr: Any) -> PrimExpr:
        """An expression equal to `expr` for every value the context allows, in canonical form."""
        return _simplify(self._ctx, self._intern(expr, "simplify"))

    def const_int_bound(self, expr: Any) -> ConstIntBound:
        e = self._intern(expr, "const_int_bound")
        dt = e.dtype.element
        if not (dt.is_int or dt.is_bool):
            raise ArithError(f"const_int_bound needs an integer expression, got `{fmt(e)}` of {dt}")
        ctx = self._ctx
        lo, hi = _bound(ctx, e)
        s = _simplify(ctx, e)
        if s is not e:
            slo, shi = _bound(ctx, s)
            lo, hi = max(lo, slo), min(hi, shi)
        if e.dtype.lanes == 1 and dt.is_int:
            ss = sum_of(ctx, s)
            mlo, mhi = sum_bound(ctx, ss)
            dlo, dhi = dtype_range(dt)
            if dlo <= mlo and mhi <= dhi:
                lo, hi = max(lo, mlo), min(hi, mhi)
        return ConstIntBound(lo, hi)

    def modular_set(self, expr: Any) -> ModularSet:
        e = self._intern(expr, "modular_set")
        if not (e.dtype.element.is_int or e.dtype.element.is_bool):
            raise ArithError(
                f"modular_set needs an integer expression, got `{fmt(e)}` of {e.dtype}"
            )
        c, b = _modular(self._ctx, _simplify(self._ctx, e))
        return ModularSet(c, b)

    def is_multiple_of(self, expr: Any, k: int) -> bool:
        """True when every value of `expr` is a multiple of k (alignment / vector-width checks)."""
        if k <= 0:
            raise ArithError(f"is_multiple_of needs a positive k, got {k}")
        if self.modular_set(expr).is_multiple_of(k):
            return True
        e = self._intern(expr, "is_multiple_of")
        if not (e.dtype.is_int and e.dtype.lanes == 1) or k > e.dtype.max_value():
            return False
        return self.can_prove(
            self._ctx.interner.mk(_FloorMod, e, self._ctx.interner.int(k, e.dtype)) == 0
        )

    def can_prove(self, cond: Any, *, use_z3: bool | None = None) -> bool:
        """True only if `cond` holds for every value the ranges and assumptions allow."""
        return self.prove(cond, use_z3=use_z3).proved

    def can_prove_equal(self, a: Any, b: Any) -> bool:
        ea, eb = self._intern(a, "can_prove_equal"), self._intern(b, "can_prove_equal")
        if ea.dtype != eb.dtype:
            raise ArithError(
                f"can_prove_equal of {ea.dtype} `{fmt(ea)}` and {eb.dtype} `{fmt(eb)}`"
            )
        return self.can_prove(ea == eb)

    def prove(self, cond: Any, *, use_z3: bool | None = None) -> Proof:
        """Like `can_prove`, and says which method settled it (see `Proof`)."""
        ctx = self._ctx
        st = self._stats
        c = self._cond(cond, "can_prove")
        use_z3 = self.use_z3 if use_z3 is None else use_z3
        st["queries"] += 1
        key = id(c) * 2 + int(use_z3)
        hit = ctx.cache.prove.get(key)
        if hit is not None:
            st["cache_hits"] += 1
            return hit
        out = self._prove(c, use_z3)
        ctx.cache.prove[key] = out
        if out.proved:
            assert out.method is not None  # a proof names the method that settled it
            st[out.method] += 1
        else:
            st["unproved"] += 1
        return out

    def _prove(self, c: PrimExpr, use_z3: bool) -> Proof:
        ctx = self._ctx
        st = self._stats
        n0 = ctx.bound_decisions
        s = _simplify(ctx, c)
        if type(s) is IntImm:
            method = "rewrite" if ctx.bound_decisions == n0 else "interval"
            if not s.value:
                st["disproved"] += 1
            return Proof(bool(s.value), method if s.value else None, disproved=not s.value)
        if self._interval(s):
            return Proof(True, "interval")
        if find_counterexample(ctx, s) is not None:
            st["sampled"] += 1
            return Proof(False, None, refuted=True)
        if not use_z3:
            return Proof(False, None)
        r, hit = z3_prover.prove(ctx, s, self.z3_rlimit)
        if hit:
            st["z3_cache_hits"] += 1
        if r == z3_prover.PROVED:
            return Proof(True, "z3", z3=r)
        st["z3_refuted" if r == z3_prover.REFUTED else "z3_unknown"] += 1
        return Proof(False, None, z3=r, refuted=r == z3_prover.REFUTED)

    def _interval(self, s: PrimExpr) -> bool:
        return prove_by_intervals(self._ctx, s, self.assume)

    def counterexample(self, cond: Any) -> dict[Var, int] | None:
        """Values of the variables (in their ranges, under the assumptions) making `cond` false."""
        c = self._cond(cond, "counterexample")
        return z3_prover.counterexample(self._ctx, _simplify(self._ctx, c), self.z3_rlimit)


def _range_const(v: Any, var: Var) -> Any:
    """A Python int of a range as a constant: the var's dtype when it fits, else int64 (ranges are
    mathematical: the extent of a whole int32 range is 2^32)."""
    if not isinstance(v, int) or isinstance(v, bool):
        return v
    for dt in (var.dtype, DataType("int64")):
        if dt.is_int and dt.min_value() <= v <= dt.max_value():
            return IntImm(v, dt)
    raise ArithError(f"the range bound {v} of `{var.name}` does not fit int64")
