"""Property tests: the analyzer never changes a value and never proves something false.

Ground truth is `tsir.arith.evaluate` (exact dtype semantics, wrapping included) on assignments
drawn inside the bound ranges. Expressions mix tile-style constants, symbolic divisors, min/max and
select, over int8 ... int64 and unsigned types, some variables spanning their whole dtype so
wrapping happens.
"""

from __future__ import annotations

import os
import random

from arith_strategies import Env, bool_exprs, envs, int_exprs, value_or_none
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tsir.arith import Analyzer
from tsir.arith.intern import fmt
from tsir.errors import ArithError
from tsir.expr import FloorDiv, FloorMod, IntImm, PrimExpr

# CI runs a fixed, derandomized sample; TSIR_ARITH_EXAMPLES=5000 TSIR_ARITH_RANDOM=1 explores
# further.
SETTINGS = settings(
    max_examples=int(os.environ.get("TSIR_ARITH_EXAMPLES", "200")),
    derandomize=os.environ.get("TSIR_ARITH_RANDOM", "") != "1",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SAMPLES = 24


def _has_literal_zero_divisor(e: object) -> bool:
    if isinstance(e, (FloorDiv, FloorMod)) and isinstance(e.b, IntImm) and e.b.value == 0:
        return True
    if isinstance(e, PrimExpr):
        for name in getattr(type(e), "__dataclass_fields__", {}):
            v = getattr(e, name)
            for x in v if isinstance(v, tuple) else (v,):
                if isinstance(x, PrimExpr) and _has_literal_zero_divisor(x):
                    return True
    return False


def _simplify_or_skip(ana: Analyzer, e: PrimExpr) -> PrimExpr:
    try:
        return ana.simplify(e)
    except ArithError:
        assert _has_literal_zero_divisor(e), f"simplify raised on {fmt(e)}"
        assume(False)
        raise


def _expr_and_env() -> st.SearchStrategy[tuple[Env, PrimExpr]]:
    return envs().flatmap(lambda env: st.tuples(st.just(env), int_exprs(env)))


def _cond_and_env() -> st.SearchStrategy[tuple[Env, PrimExpr]]:
    return envs().flatmap(lambda env: st.tuples(st.just(env), bool_exprs(env)))


@SETTINGS
@given(_expr_and_env(), st.integers(0, 2**32))
def test_simplify_preserves_value(pair: tuple[Env, PrimExpr], seed: int) -> None:
    """simplify(e) evaluates equal to e wherever e is defined."""
    env, e = pair
    ana = env.analyzer()
    s = _simplify_or_skip(ana, e)
    rng = random.Random(seed)
    for _ in range(SAMPLES):
        point = env.sample(rng)
        want = value_or_none(e, point)
        if want is None:
            continue
        got = value_or_none(s, point)
        assert got == want, f"{fmt(e)} -> {fmt(s)} at {point}: {want} became {got}"


@SETTINGS
@given(_expr_and_env())
def test_simplify_is_idempotent(pair: tuple[Env, PrimExpr]) -> None:
    """A fresh analyzer with the same ranges leaves simplify's output unchanged."""
    env, e = pair
    s = _simplify_or_skip(env.analyzer(), e)
    fresh = env.analyzer()
    s2 = fresh.simplify(s)
    assert s2 is fresh._ctx.interner.intern_tree(s), f"{fmt(e)} -> {fmt(s)} -> {fmt(s2)}"


@SETTINGS
@given(_expr_and_env(), st.integers(0, 2**32))
def test_bounds_and_modular_sets_hold(pair: tuple[Env, PrimExpr], seed: int) -> None:
    env, e = pair
    ana = env.analyzer()
    try:
        b = ana.const_int_bound(e)
        m = ana.modular_set(e)
    except ArithError:
        assert _has_literal_zero_divisor(e)
        return
    rng = random.Random(seed)
    for _ in range(SAMPLES):
        point = env.sample(rng)
        v = value_or_none(e, point)
        if v is None:
            continue
        assert b.min_value <= v <= b.max_value, f"{fmt(e)} = {v} outside {b} at {point}"
        if m.coeff:
            assert (v - m.base) % m.coeff == 0, f"{fmt(e)} = {v} not in {m} at {point}"
        else:
            assert v == m.base, f"{fmt(e)} = {v}, modular set says {m.base}"


@SETTINGS
@given(_cond_and_env(), st.integers(0, 2**32))
def test_can_prove_is_sound(pair: tuple[Env, PrimExpr], seed: int) -> None:
    """can_prove(c) is never true where a sampled assignment makes c false (Z3 included)."""
    env, c = pair
    ana = env.analyzer(z3_rlimit=50_000)
    try:
        proof = ana.prove(c)
    except ArithError:
        assert _has_literal_zero_divisor(c)
        return
    rng = random.Random(seed)
    for _ in range(SAMPLES):
        point = env.sample(rng)
        v = value_or_none(c, point)
        if v is None:
            continue
        if proof.proved:
            assert v == 1, f"proved {fmt(c)} by {proof.method}, false at {point}"
        if proof.disproved:
            assert v == 0, f"{fmt(c)} simplified to False, true at {point}"


@SETTINGS
@given(
    envs().flatmap(lambda env: st.tuples(st.just(env), bool_exprs(env), bool_exprs(env))),
    st.integers(0, 2**32),
)
def test_assumptions_are_used_soundly(pair: tuple[Env, PrimExpr, PrimExpr], seed: int) -> None:
    """Under `assume(a)`, proofs and simplifications hold on every sample that satisfies a."""
    env, a, c = pair
    ana = env.analyzer(z3_rlimit=50_000)
    rng = random.Random(seed)
    points = []
    for _ in range(200):
        p = env.sample(rng)
        if value_or_none(a, p) == 1:
            points.append(p)
        if len(points) >= SAMPLES:
            break
    assume(points)
    try:
        with ana.assume(a):
            proof = ana.prove(c)
            s = ana.simplify(c)
    except ArithError:
        assert _has_literal_zero_divisor(a) or _has_literal_zero_divisor(c)
        return
    for p in points:
        v = value_or_none(c, p)
        if v is None:
            continue
        if proof.proved:
            assert v == 1, f"under {fmt(a)}: proved {fmt(c)} by {proof.method}, false at {p}"
        got = value_or_none(s, p)
        assert got is None or got == v, f"under {fmt(a)}: {fmt(c)} -> {fmt(s)} changed at {p}"


@SETTINGS
@given(_cond_and_env(), st.integers(0, 2**32))
def test_z3_encoding_agrees_with_evaluation(pair: tuple[Env, PrimExpr], seed: int) -> None:
    """Z3 alone, on the unsimplified condition: a proof holds on samples, and a counterexample
    model really falsifies the condition (or divides by zero, which Z3 leaves unconstrained)."""
    from tsir.arith import z3_prover

    env, c = pair
    ana = env.analyzer()
    ctx = ana._ctx
    try:
        goal = ctx.interner.intern_tree(c)
    except ArithError:
        return
    verdict, _ = z3_prover.prove(ctx, goal, 50_000)
    if verdict == "proved":
        rng = random.Random(seed)
        for _ in range(SAMPLES):
            point = env.sample(rng)
            v = value_or_none(c, point)
            assert v in (None, 1), f"Z3 proved {fmt(c)}, false at {point}"
    elif verdict == "refuted":
        model = z3_prover.counterexample(ctx, goal, 50_000)
        assert model is not None
        for var, lo, ext in env.vars:
            value = model.get(var, lo)
            assert lo <= value < lo + ext, f"model {model} leaves the range of {var.name}"
        full = {var: model.get(var, lo) for var, lo, _ in env.vars}
        assert value_or_none(c, full) in (None, 0), f"Z3 refuted {fmt(c)} with {full}"
