"""One test per rewrite rule: the input, the context, and the exact canonical output."""

from __future__ import annotations

import pytest

from tsir.arith import Analyzer
from tsir.arith.intern import fmt
from tsir.dtype import DataType
from tsir.expr import (
    EQ,
    Cast,
    FloorDiv,
    FloorMod,
    IntImm,
    Let,
    Max,
    Min,
    Not,
    PrimExpr,
    Select,
    Var,
)

I32 = DataType("int32")
I8 = DataType("int8")


def c(v: int, dt: DataType = I32) -> PrimExpr:
    return IntImm(v, dt)


@pytest.fixture
def ana() -> Analyzer:
    return Analyzer()


def check(ana: Analyzer, e: PrimExpr, expected: PrimExpr) -> None:
    got = ana.simplify(e)
    want = ana._ctx.interner.intern_tree(expected)
    assert got is want, f"{fmt(e)} -> {fmt(got)}, expected {fmt(want)}"


x, y, t, m, n = (Var(s) for s in "xytmn")


def test_ring_collects_like_terms_and_folds_constants(ana: Analyzer) -> None:
    check(ana, x + x + 1 - x + 2, x + 3)
    check(ana, (x + 1) * 4 - x * 4, c(4))
    check(ana, y * 2 + x * 3 - y * 2, x * 3)


def test_ring_orders_terms_and_subtracts_negatives(ana: Analyzer) -> None:
    check(ana, y - x + x * 0 + y, y * 2 - x)
    check(ana, c(5) - x, c(5) - x)
    check(ana, (x + 1) * (y + 2), x * y + x * 2 + y + 2)


def test_ring_merges_tile_decompositions(ana: Analyzer) -> None:
    check(ana, (t // 32) * 32 + t % 32, t)
    check(ana, t - (t // 32) * 32, t % 32)
    check(ana, ((t // 4) % 8) * 4 + t % 4, t % 32)
    check(ana, (t // 4) * 8 + (t % 4) * 2, t * 2)


def test_floordiv_drops_a_remainder_inside_one_tile(ana: Analyzer) -> None:
    ana.bind(t, 0, 128)
    ana.bind(x, 0, 1 << 16)
    check(ana, (x * 128 + t) // 128, x)
    check(ana, (x * 128 + t + 128) // 128, x + 1)
    check(ana, (x * 256 + t) // 128, x * 2)


def test_floordiv_splits_a_sum_when_the_remainder_is_unbounded(ana: Analyzer) -> None:
    ana.bind(x, 0, 1000)
    ana.bind(y, 0, 1000)
    check(ana, (x * 8 + y) // 8, x + y // 8)


def test_floordiv_of_floordiv_multiplies_divisors(ana: Analyzer) -> None:
    check(ana, (x // 4) // 8, x // 32)


def test_floordiv_uses_known_residues(ana: Analyzer) -> None:
    ana.bind(m, 1, 1 << 20)
    with ana.assume(m % 32 == 0):
        check(ana, (m + 31) // 32, m // 32)


def test_floordiv_by_a_symbolic_divisor(ana: Analyzer) -> None:
    ana.bind(n, 1, 64)
    ana.bind(x, 0, 64)
    ana.bind(y, 0, n)
    check(ana, FloorDiv(x * n + y, n), x)
    check(ana, FloorMod(x * n + y, n), y)


def test_floormod_drops_multiples_and_reduces_coefficients(ana: Analyzer) -> None:
    ana.bind(t, 0, 128)
    ana.bind(x, 0, 1000)
    check(ana, (x * 128 + t) % 128, t)
    check(ana, (x * 8 + 4) % 4, c(0))
    check(ana, (x * 9 + 1) % 4, (x + 1) % 4)
    check(ana, (x % 16) % 4, x % 4)
    check(ana, (t % 4) % 16, t % 4)


def test_rules_that_would_be_wrong_after_wrapping_do_not_fire(ana: Analyzer) -> None:
    """int32 x is unbounded: x*128 may wrap, so (x*128 + 1) // 128 is not x."""
    check(ana, (x * 128 + 1) // 128, (x * 128 + 1) // 128)
    check(ana, Min(x, x + 1), Min(x, x + 1))
    v = Var("v", I8)
    ana.bind(v, 0, 100)
    check(ana, (v * 2) // 2, (v * 2) // 2)  # 99 * 2 wraps in int8


def test_min_max_by_bounds_and_facts(ana: Analyzer) -> None:
    ana.bind(t, 0, 128)
    check(ana, Min(t, c(128)), t)
    check(ana, Max(t, c(0)), t)
    check(ana, Min(t + 4, t), t)
    check(ana, Max(Min(t, c(500)), Min(t, c(500))), t)
    with ana.assume(x < y):
        check(ana, Min(x, y), x)


def test_min_max_sort_and_flatten(ana: Analyzer) -> None:
    check(ana, Min(y, Min(x, y)), Min(x, y))
    check(ana, Max(y, x), Max(x, y))


def test_comparisons_decide_by_bounds(ana: Analyzer) -> None:
    ana.bind(t, 0, 128)
    check(ana, t < 128, c(1, DataType("bool")))
    check(ana, t * 4 + 3 < 512, c(1, DataType("bool")))
    check(ana, t >= 128, c(0, DataType("bool")))


def test_comparisons_normalize(ana: Analyzer) -> None:
    ana.bind(x, 0, 1 << 20)
    ana.bind(y, 0, 1 << 20)
    check(ana, x + 1 <= y, x < y)
    check(ana, x <= y, x <= y)
    check(ana, x < y + 1, x <= y)
    check(ana, x + 2 < y, x + 2 < y)
    check(ana, y > x, x < y)
    check(ana, x * 4 < y * 4, x < y)
    check(ana, EQ(x * 2, c(3)), c(0, DataType("bool")))
    check(ana, x - y == 0, EQ(x, y))


def test_logic_flattens_dedupes_and_absorbs(ana: Analyzer) -> None:
    b = Var("b", DataType("bool"))
    a = Var("a", DataType("bool"))
    true, false = c(1, DataType("bool")), c(0, DataType("bool"))
    check(ana, b & true, b)
    check(ana, b & Not(b), false)
    check(ana, b | Not(b), true)
    check(ana, (b & a) & b, a & b)
    check(ana, Not(Not(b)), b)
    ana.bind(x, 0, 100)
    ana.bind(y, 0, 100)
    check(ana, Not(x < y), y <= x)
    ana.bind(t, 0, 64)
    check(ana, (t < 16) | (t >= 16), true)


def test_select_rules(ana: Analyzer) -> None:
    b = Var("b", DataType("bool"))
    check(ana, Select(b, x, x), x)
    check(ana, Select(Not(b), x, y), Select(b, y, x))
    ana.bind(t, 0, 8)
    check(ana, Select(t < 8, x, y), x)


def test_select_skips_the_branch_that_never_runs(ana: Analyzer) -> None:
    """A dead branch with a zero divisor is not an error: it is never evaluated."""
    ana.bind(t, 0, 8)
    check(ana, Select(t < 8, x, FloorDiv(y, c(0))), x)


def test_cast_rules(ana: Analyzer) -> None:
    i64 = DataType("int64")
    v8 = Var("v8", I8)
    check(ana, Cast(I32, Cast(i64, v8)), Cast(I32, v8))
    check(ana, Cast(I8, Cast(I32, v8)), v8)
    check(ana, Cast(I32, x), x)
    check(ana, Cast(i64, c(-3)), IntImm(-3, i64))


def test_let_is_inlined(ana: Analyzer) -> None:
    v = Var("v")
    check(ana, Let(v, x + 1, v * 2 - x), x + 2)


def test_substitution_binding(ana: Analyzer) -> None:
    ana.bind(x, 0, 100)
    ana.bind(y, x * 4)
    check(ana, y // 4 - x, c(0))
    assert ana.can_prove(y < 400)
    assert not ana.can_prove(y < 396)
