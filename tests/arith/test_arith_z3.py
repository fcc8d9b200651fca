"""The Z3 fallback: exact floor semantics, wrapping, budget, cache, determinism."""

from __future__ import annotations

from tsir.arith import Analyzer, z3_prover
from tsir.dtype import DataType
from tsir.expr import FloorDiv, FloorMod, IntImm, Min, Var

I32 = DataType("int32")


def c(v: int) -> IntImm:
    return IntImm(v, I32)


def z3_says(ana: Analyzer, cond: object) -> str:
    """Z3's own verdict on a condition under the analyzer's context (no rewriting, no sampling)."""
    ctx = ana._ctx
    return z3_prover.prove(ctx, ctx.interner.intern_tree(cond), z3_prover.DEFAULT_RLIMIT)[0]


def test_floormod_by_a_negative_divisor_is_not_euclidean() -> None:
    """Z3's own mod is Euclidean (always >= 0); floormod takes the divisor's sign."""
    ana = Analyzer()
    x, d = Var("x"), Var("d")
    ana.bind(x, -100, 200)
    ana.bind(d, -5, 5)  # d in [-5, -1]
    assert ana.prove(FloorMod(x, d) <= 0).proved
    assert not ana.can_prove(FloorMod(x, d) >= 0)
    assert ana.prove(FloorDiv(x, d) * d + FloorMod(x, d) == x).proved
    assert ana.can_prove(FloorMod(x, d) > d)
    assert z3_says(ana, FloorMod(x, d) <= 0) == "proved"
    assert z3_says(ana, FloorMod(x, d) > d) == "proved"
    assert z3_says(ana, FloorMod(x, d) >= 0) == "refuted"  # true for Euclidean mod


def test_floordiv_rounds_toward_minus_infinity() -> None:
    ana = Analyzer()
    x, d = Var("x"), Var("d")
    ana.bind(x, -100, 50)  # x < 0
    ana.bind(d, 1, 7)
    assert ana.can_prove(FloorDiv(x, d) * d <= x)
    assert not ana.can_prove(FloorDiv(x, d) * d >= x)  # truncation would give this
    assert z3_says(ana, FloorDiv(x, d) * d <= x) == "proved"
    assert z3_says(ana, FloorDiv(x, d) * d >= x) == "refuted"


def test_wrapping_is_exact() -> None:
    ana = Analyzer()
    x = Var("x")
    proof = ana.prove(x + 1 > x)
    assert not proof.proved and proof.refuted  # x = 2^31 - 1 wraps
    assert z3_says(ana, x + 1 > x) == "refuted"
    assert ana.counterexample(x + 1 > x) == {x: 2**31 - 1}
    ana.bind(x, 0, 1000)
    assert ana.can_prove(x + 1 > x)
    assert z3_says(ana, x + 1 > x) == "proved"
    y = Var("y", DataType("int8"))
    ana.bind(y, 0, 100)
    assert z3_says(ana, y * 2 >= 0) == "refuted"  # 64 * 2 wraps to -128 in int8
    assert z3_says(ana, (y * 2) // 2 == y) == "refuted"


def test_an_exhausted_budget_answers_unknown() -> None:
    a, b = Var("a"), Var("b")

    def analyzer(rlimit: int) -> Analyzer:
        ana = Analyzer(z3_rlimit=rlimit)
        ana.bind(a, 1, 1000)
        ana.bind(b, 1, 1000)
        return ana

    z3_prover.clear_cache()
    ana = analyzer(1)
    proof = ana.prove((a + b) // 2 >= Min(a, b))
    assert not proof.proved and proof.z3 == "unknown"
    assert ana.stats["z3_unknown"] == 1
    assert analyzer(z3_prover.DEFAULT_RLIMIT).prove((a + b) // 2 >= Min(a, b)).proved


def test_z3_settles_what_rewriting_cannot() -> None:
    ana = Analyzer()
    a, b, cc = Var("a"), Var("b"), Var("c")
    for v in (a, b, cc):
        ana.bind(v, 0, 1024)
    with ana.assume(b <= cc):
        proof = ana.prove(a * b <= a * cc)
    assert proof.proved and proof.method == "z3"
    assert ana.stats["z3"] == 1


def test_the_cache_is_structural() -> None:
    """The same question about differently named (and different) variables is one Z3 call."""
    z3_prover.clear_cache()

    def ask() -> object:
        ana = Analyzer()
        a, b, cc = Var("p"), Var("q"), Var("r")
        for v in (a, b, cc):
            ana.bind(v, 0, 1024)
        with ana.assume(b <= cc):
            return ana.prove(a * b <= a * cc), ana.stats

    (first, _), (second, stats) = ask(), ask()
    assert first.proved and second.proved
    assert stats["z3_cache_hits"] == 1
    assert z3_prover.cache_info()["misses"] >= 1


def test_answers_do_not_depend_on_earlier_questions() -> None:
    """Each solve runs in a fresh Z3 context, so the outcome near the budget is reproducible."""
    z3_prover.clear_cache()
    a, b = Var("a"), Var("b")

    def run() -> str | None:
        ana = Analyzer(z3_rlimit=20_000)
        ana.bind(a, 1, 1000)
        ana.bind(b, 1, 1000)
        return ana.prove((a * b) // (a + b) <= Min(a, b)).z3

    first = run()
    z3_prover.clear_cache()
    Analyzer().can_prove(a * a >= 0)  # something else in between
    assert run() == first


def test_facts_reach_z3_through_shared_variables() -> None:
    ana = Analyzer()
    i, j, k, m = Var("i"), Var("j"), Var("k"), Var("m")
    for v in (i, j, k, m):
        ana.bind(v, 0, 100)
    with ana.assume(i * 2 < k), ana.assume(k <= j * 2):
        assert ana.prove(i < j).proved
    with ana.assume(m < 5):  # unrelated to the question
        assert not ana.can_prove(i < j)
