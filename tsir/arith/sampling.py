"""A cheap refuter: evaluate a condition at a few points inside the ranges and assumptions.

Most questions a pass asks that are not provable have an obvious counterexample (a corner of the
ranges). Finding one by evaluation spares the Z3 call. This can only ever turn "proved" into "not
proved", never the other way, so it is safe even where a point is chosen imperfectly.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from ..errors import ArithError
from ..expr import PrimExpr, Var
from .bound import const_int_bound
from .const_fold import NoFold
from .evaluate import evaluate

if TYPE_CHECKING:
    from .context import Context

__all__ = ["find_counterexample"]

TRIES = 12


def find_counterexample(ctx: Context, goal: PrimExpr) -> dict[Var, int] | None:
    """Values (within ranges, satisfying the relevant facts) that make `goal` false, or None."""
    facts = _relevant_facts(ctx, goal)
    order = _variables(ctx, [goal, *facts])
    if order is None:
        return None
    rng = random.Random(0)  # deterministic: the same question gets the same points
    for attempt in range(TRIES):
        env = _point(ctx, order, attempt, rng)
        if env is None:
            continue
        try:
            if not all(evaluate(f, env) == 1 for f in facts):
                continue
            if evaluate(goal, env) == 0:
                return env
        except (ArithError, NoFold):
            return None  # something not evaluable (a load, a division by zero): leave it to Z3
    return None


def _relevant_facts(ctx: Context, goal: PrimExpr) -> list[PrimExpr]:
    """Facts sharing variables with the goal, transitively."""
    facts = [(f.cond, ctx.free_var_ids(f.cond)) for f in ctx.all_facts()]
    seen = set(ctx.free_var_ids(goal))
    out: list[PrimExpr] = []
    used = [False] * len(facts)
    progress = True
    while progress:
        progress = False
        for k, (cond, vids) in enumerate(facts):
            if not used[k] and vids & seen:
                used[k] = progress = True
                seen |= vids
                out.append(cond)
    return out


def _collect(e: PrimExpr, out: dict[int, Var]) -> None:
    stack = [e]
    while stack:
        x = stack.pop()
        if isinstance(x, Var):
            out[id(x)] = x
            continue
        for name in getattr(type(x), "__dataclass_fields__", {}):
            c = getattr(x, name)
            for y in c if isinstance(c, tuple) else (c,):
                if isinstance(y, PrimExpr):
                    stack.append(y)


def _variables(ctx: Context, exprs: list[PrimExpr]) -> list[Var] | None:
    """The variables of the expressions and of their ranges, dependencies first, or None when one
    cannot be sampled (a vector, a float, a substituted or cyclic variable)."""
    objs: dict[int, Var] = {}
    for e in exprs:
        _collect(e, objs)
    order: list[Var] = []
    state: dict[int, int] = {}  # 1: visiting, 2: done

    def visit(vid: int) -> bool:
        if state.get(vid) == 2:
            return True
        if state.get(vid) == 1 or vid in ctx.substs:
            return False
        state[vid] = 1
        rng = ctx.ranges.get(vid)
        if rng is not None:
            _collect(rng[1], objs)
            _collect(rng[2], objs)
            for dep in ctx.free_var_ids(rng[1]) | ctx.free_var_ids(rng[2]):
                if not visit(dep):
                    return False
        state[vid] = 2
        v = objs[vid]
        if not (v.dtype.is_int or v.dtype.is_bool) or v.dtype.lanes != 1:
            return False
        order.append(v)
        return True

    it = ctx.interner
    for v in sorted(list(objs.values()), key=lambda v: it.order_key(it.var(v))):
        if not visit(id(v)):
            return None
    return order


def _point(
    ctx: Context, order: list[Var], attempt: int, rng: random.Random
) -> dict[Var, int] | None:
    env: dict[Var, int] = {}
    for k, v in enumerate(order):
        lo, hi = const_int_bound(ctx, v)
        r = ctx.ranges.get(id(v))
        if r is not None:
            try:
                rlo = evaluate(r[1], env)
                rhi = rlo + evaluate(r[2], env) - 1
            except (ArithError, NoFold):
                return None
            lo, hi = max(lo, int(rlo)), min(hi, int(rhi))
        if lo > hi:
            return None
        if attempt < 4:  # corners: all low, all high, alternating
            pick_hi = attempt == 1 or (attempt >= 2 and (k + attempt) % 2 == 1)
            x = hi if pick_hi else lo
        else:
            x = rng.randint(lo, hi) if hi - lo < 1 << 62 else lo
        for m, want in ctx.var_mod.get(
            id(v), ()
        ):  # an assumed `v % m == r`: the nearest such value
            x += (want - x) % m
            if x > hi:
                x -= m
        if x < lo:
            return None
        env[v] = x
    return env
