"""The Z3 fallback of `can_prove`: exact integer semantics, a deterministic budget, a cache.

A question is first put in a canonical form (`_Query`): nested tuples in which variables are
numbered by first appearance, together with the constraints that matter for it (dtype ranges, bound
ranges, the facts that share variables with it, transitively). Two questions that differ only in
variable names or identities have the same canonical form, which is the key of a process-wide cache.
Only on a miss is the form turned into Z3 terms and solved, in a fresh Z3 context with a resource
limit (`rlimit`, counted in solver steps rather than seconds), so the answer is a function of the
question alone.

Semantics encoded exactly: variables are mathematical integers constrained to their dtype's range;
`+ - *` are exact where bounds show they cannot leave the dtype and wrap (`r = t - 2^n*k`)
elsewhere; floordiv/floormod are written out as `a == b*q + r` with the remainder taking the
divisor's sign (Z3's own div/mod are Euclidean, which differs for negative divisors); a zero divisor
leaves q, r free. Anything else (loads, calls, floats, vectors) becomes an opaque value of its
dtype, or makes the answer "unknown" when it is the question itself that cannot be expressed.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from ..expr import (
    EQ,
    GE,
    GT,
    LE,
    LT,
    NE,
    Add,
    And,
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
    Select,
    Sub,
    Var,
)
from .bound import const_int_bound, dtype_range, floordiv_bound, mul_bound

if TYPE_CHECKING:
    from .context import Context

__all__ = ["Z3Result", "prove", "DEFAULT_RLIMIT", "clear_cache", "cache_info"]

DEFAULT_RLIMIT = 500_000
CACHE_SIZE = 1 << 16

PROVED, REFUTED, UNKNOWN = "proved", "refuted", "unknown"
Z3Result = str

_cache: OrderedDict[Any, str] = OrderedDict()
_cache_stats = {"hits": 0, "misses": 0}


def clear_cache() -> None:
    _cache.clear()


def cache_info() -> dict[str, int]:
    return {"size": len(_cache), **_cache_stats}


class Unsupported(Exception):
    pass


_CMP = {LT: "<", LE: "<=", EQ: "==", NE: "!="}


class _Query:
    """Canonical, identity-free form of `constraints => goal`."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.var_ids: dict[int, int] = {}
        self.vars: list[Var] = []
        self.sorts: list[str] = []  # per var: "int" or "bool"
        self.opaque_ids: dict[int, int] = {}
        self.opaque_sorts: list[Any] = []
        self.memo: dict[int, tuple] = {}
        self.constraints: list[tuple] = []
        self._pending: list[Var] = []
        self._in_subst: set[int] = set()
        self.seen_subst: set[int] = set()

    # terms ----------------------------------------------------------------------------------------
    def term(self, e: PrimExpr) -> tuple:
        hit = self.memo.get(id(e))
        if hit is None:
            hit = self._term(e)
            self.memo[id(e)] = hit
        return hit

    def _opaque(self, e: PrimExpr) -> tuple:
        dt = e.dtype.element
        i = self.opaque_ids.get(id(e))
        if i is None:
            i = len(self.opaque_sorts)
            self.opaque_ids[id(e)] = i
            if dt.is_bool:
                self.opaque_sorts.append("bool")
            else:
                self.opaque_sorts.append(dtype_range(dt) if dt.is_int else None)
        return ("o", i)

    def _var(self, v: Var) -> tuple:
        sub = self.ctx.substs.get(id(v))
        if sub is not None and id(v) not in self._in_subst:
            self.seen_subst.add(id(v))
            self._in_subst.add(id(v))
            try:
                return self.term(sub[1])
            finally:
                self._in_subst.discard(id(v))
        i = self.var_ids.get(id(v))
        if i is None:
            i = len(self.vars)
            self.var_ids[id(v)] = i
            self.vars.append(v)
            dt = v.dtype
            if dt.lanes != 1 or not (dt.is_int or dt.is_bool):
                raise Unsupported(f"variable of type {dt}")
            self.sorts.append("bool" if dt.is_bool else "int")
            self._pending.append(v)
        return ("v", i)

    def _wrap_if(self, t: tuple, lo: int, hi: int, e: PrimExpr) -> tuple:
        dt = e.dtype.element
        dlo, dhi = dtype_range(dt)
        if dlo <= lo and hi <= dhi:
            return t
        return ("wrap", dt.bits, dlo, dhi, t)

    def _term(self, e: PrimExpr) -> tuple:
        t = type(e)
        dt = e.dtype
        if dt.lanes != 1:
            raise Unsupported("vector")
        if t is IntImm:
            return ("b", bool(e.value)) if dt.is_bool else ("c", e.value)  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
        if t is Var:
            return self._var(e)  # pyright: ignore[reportArgumentType]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
        if dt.is_bool:
            return self._bool_term(e)
        if not dt.is_int:
            raise Unsupported(f"{dt} value")
        ctx = self.ctx
        if t in (Add, Sub, Mul):
            a, b = e.a, e.b  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
            ta, tb = self.term(a), self.term(b)
            (la, ha), (lb, hb) = const_int_bound(ctx, a), const_int_bound(ctx, b)
            if t is Add:
                return self._wrap_if(("+", ta, tb), la + lb, ha + hb, e)
            if t is Sub:
                return self._wrap_if(("-", ta, tb), la - hb, ha - lb, e)
            lo, hi = mul_bound((la, ha), (lb, hb))
            return self._wrap_if(("*", ta, tb), lo, hi, e)
        if t in (FloorDiv, FloorMod):
            a, b = e.a, e.b  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
            op = "fdiv" if t is FloorDiv else "fmod"
            term = (op, self.term(a), self.term(b))
            if t is FloorDiv:
                r = floordiv_bound(const_int_bound(ctx, a), const_int_bound(ctx, b))
                if r is not None:
                    return self._wrap_if(term, r[0], r[1], e)
            return term
        if t in (Min, Max):
            return ("min" if t is Min else "max", self.term(e.a), self.term(e.b))  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
        if t is Select:
            return ("ite", self.term(e.cond), self.term(e.true_value), self.term(e.false_value))  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
        if t is Cast:
            v = e.value  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
            src = v.dtype
            if src.is_bool:
                return ("b2i", self.term(v))
            if src.is_int:
                lo, hi = const_int_bound(ctx, v)
                return self._wrap_if(self.term(v), lo, hi, e)
            return self._opaque(e)
        if t is Let:
            return self._let(e)  # pyright: ignore[reportArgumentType]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
        if t is Call:
            return self._call(e)  # pyright: ignore[reportArgumentType]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
        return self._opaque(e)

    def _let(self, e: Let) -> tuple:
        self.ctx.substs.setdefault(id(e.var), (e.var, e.value))
        return self.term(e.body)

    def _call(self, e: Call) -> tuple:
        if len(e.args) == 2 and type(e.args[1]) is IntImm:
            x, s = e.args[0], e.args[1].value
            bits = e.dtype.bits
            if e.op == "shift_right" and 0 <= s < bits:
                return ("fdiv", self.term(x), ("c", 1 << s))
            if e.op == "shift_left" and 0 <= s < bits:
                lo, hi = const_int_bound(self.ctx, x)
                return self._wrap_if(("*", self.term(x), ("c", 1 << s)), lo << s, hi << s, e)
            if e.op == "bitwise_and" and s > 0 and (s + 1) & s == 0:
                return ("fmod", self.term(x), ("c", s + 1))
        return self._opaque(e)

    def _bool_term(self, e: PrimExpr) -> tuple:
        t = type(e)
        if t in (And, Or):
            return ("and" if t is And else "or", self.term(e.a), self.term(e.b))  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
        if t is Not:
            return ("not", self.term(e.a))  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
        if t in (LT, LE, EQ, NE, GT, GE):
            a, b = e.a, e.b  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
            if a.dtype.lanes != 1 or not (a.dtype.is_int or a.dtype.is_bool):
                return self._opaque(e)
            if t is GT:
                return ("<", self.term(b), self.term(a))
            if t is GE:
                return ("<=", self.term(b), self.term(a))
            return (_CMP[t], self.term(a), self.term(b))
        if t is Select:
            return ("ite", self.term(e.cond), self.term(e.true_value), self.term(e.false_value))  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
        if t is Cast:
            v = e.value  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
            if v.dtype.is_int and v.dtype.lanes == 1:
                return ("i2b", self.term(v))
            return self._opaque(e)
        if t is Let:
            return self._let(e)  # pyright: ignore[reportArgumentType]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
        return self._opaque(e)

    # constraints ----------------------------------------------------------------------------------
    def close(self) -> None:
        """Add the range constraints of every variable met, and the facts that share variables."""
        ctx = self.ctx
        facts = [f.cond for f in ctx.all_facts()]
        used = [False] * len(facts)
        fact_vars = [ctx.free_var_ids(c) for c in facts]
        while True:
            while self._pending:
                v = self._pending.pop(0)
                self._var_constraints(v)
            progress = False
            for i, c in enumerate(facts):
                if used[i] or not (
                    fact_vars[i] & self.var_ids.keys() or fact_vars[i] & self.seen_subst
                ):
                    continue
                used[i] = True
                progress = True
                saved = (len(self.vars), len(self.opaque_sorts), dict(self.memo))
                try:
                    self.constraints.append(self.term(c))
                except Unsupported:
                    # dropping a hypothesis is sound; undo the variables it introduced
                    del self.vars[saved[0] :], self.sorts[saved[0] :]
                    self.var_ids = {k: j for k, j in self.var_ids.items() if j < saved[0]}
                    del self.opaque_sorts[saved[1] :]
                    self.opaque_ids = {k: j for k, j in self.opaque_ids.items() if j < saved[1]}
                    self.memo = saved[2]
                    self._pending = [p for p in self._pending if id(p) in self.var_ids]
            if not progress and not self._pending:
                break

    def _var_constraints(self, v: Var) -> None:
        i = self.var_ids[id(v)]
        if self.sorts[i] == "bool":
            return
        lo, hi = dtype_range(v.dtype)
        self.constraints.append(("in", ("v", i), lo, hi))
        rng = self.ctx.ranges.get(id(v))
        if rng is not None:
            _, mn, ext = rng
            try:
                tm, te = self.term(mn), self.term(ext)
            except Unsupported:
                return
            self.constraints.append(("<=", tm, ("v", i)))
            self.constraints.append(("<", ("v", i), ("+", tm, te)))

    def key(self, goal: tuple, rlimit: int) -> tuple:
        return (goal, tuple(self.constraints), tuple(self.sorts), tuple(self.opaque_sorts), rlimit)


def prove(ctx: Context, goal: PrimExpr, rlimit: int) -> tuple[Z3Result, bool]:
    """(result, cache_hit) for `goal` (an interned bool expression) under the context."""
    q = _Query(ctx)
    try:
        g = q.term(goal)
        q.close()
    except Unsupported:
        return UNKNOWN, False
    except RecursionError:
        return UNKNOWN, False
    key = q.key(g, rlimit)
    hit = _cache.get(key)
    if hit is not None:
        _cache.move_to_end(key)
        _cache_stats["hits"] += 1
        return hit, True
    _cache_stats["misses"] += 1
    result, _ = _solve(q, g, rlimit, want_model=False)
    _cache[key] = result
    if len(_cache) > CACHE_SIZE:
        _cache.popitem(last=False)
    return result, False


def counterexample(ctx: Context, goal: PrimExpr, rlimit: int) -> dict[Var, int] | None:
    """Values of the variables that make `goal` false under the context, if Z3 finds some."""
    q = _Query(ctx)
    try:
        g = q.term(goal)
        q.close()
    except Unsupported:
        return None
    result, model = _solve(q, g, rlimit, want_model=True)
    return model if result == REFUTED else None


def _solve(q: _Query, goal: tuple, rlimit: int, want_model: bool) -> tuple[str, Any]:
    # Deliberately lazy: z3_encode imports the z3 solver, a heavy library loaded only when a
    # proof first needs it (most compiles never do).
    from .z3_encode import solve

    return solve(q.vars, q.sorts, q.opaque_sorts, q.constraints, goal, rlimit, want_model)
