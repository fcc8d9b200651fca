"""The Analyzer API as passes use it: ranges, assumptions, guards, alignment, counters."""

from __future__ import annotations

from tsir.arith import Analyzer, ConstIntBound, ModularSet
from tsir.buffer import Range
from tsir.dtype import DataType
from tsir.expr import IntImm, Var

I32 = DataType("int32")


def ceildiv(a: object, b: int) -> object:
    return (a + (b - 1)) // b  # type: ignore[operator]


def test_copy_guards_dynamic_m_but_not_static_n() -> None:
    """The case from the issue: M dynamic, N a multiple of the tile."""
    m = Var("M")
    by, bx, i, j = Var("by"), Var("bx"), Var("i"), Var("j")
    n, bm, bn = 1024, 128, 128
    ana = Analyzer()
    ana.bind(m, 1, 2**31 - 1)  # a dynamic dimension: at least 1
    ana.bind(by, 0, ceildiv(m, bm))
    ana.bind(bx, 0, n // bn)
    ana.bind(i, 0, bm)
    ana.bind(j, 0, bn)
    assert not ana.can_prove(by * bm + i < m)  # the M guard stays
    assert ana.can_prove(bx * bn + j < n)  # the N guard is dead
    assert ana.can_prove(by * bm + i >= 0) and ana.can_prove(bx * bn + j >= 0)
    with ana.assume(m % bm == 0):
        assert ana.can_prove(by * bm + i < m)  # a multiple of the tile: dead as well


def test_guards_inside_a_guarded_region() -> None:
    """`with assume(cond)` is what an enclosing `if` gives the statements inside it."""
    m, by, i = Var("M"), Var("by"), Var("i")
    ana = Analyzer()
    ana.bind(by, 0, 64)
    ana.bind(i, 0, 128)
    with ana.assume(by * 128 + 128 <= m):
        assert ana.can_prove(by * 128 + i < m)
    assert not ana.can_prove(by * 128 + i < m)


def test_vector_width_from_alignment() -> None:
    tx, j, k = Var("tx"), Var("j"), Var("K")
    ana = Analyzer()
    ana.bind(tx, 0, 128)
    ana.bind(j, 0, 4)
    index = tx * 8 + j * 32
    assert ana.modular_set(index) == ModularSet(8, 0)
    assert ana.is_multiple_of(index, 8) and not ana.is_multiple_of(index, 16)
    assert ana.can_prove(index % 4 == 0)
    ana.bind(k, 1, 1 << 20)
    row = tx * k + j * 4
    assert not ana.is_multiple_of(row, 4)
    with ana.assume(k % 8 == 0):
        assert ana.modular_set(k) == ModularSet(8, 0)
        assert ana.is_multiple_of(row, 4)


def test_const_int_bound() -> None:
    x, t = Var("x"), Var("t")
    ana = Analyzer()
    ana.bind(x, 0, 64)
    ana.bind(t, 0, 128)
    assert ana.const_int_bound(x * 128 + t) == ConstIntBound(0, 8191)
    assert ana.const_int_bound((x * 128 + t) // 32) == ConstIntBound(0, 255)
    assert ana.const_int_bound(t % 32) == ConstIntBound(0, 31)
    assert ana.const_int_bound(x - x) == ConstIntBound(0, 0)
    assert ana.const_int_bound(Var("free")) == ConstIntBound(-(2**31), 2**31 - 1)


def test_bind_forms() -> None:
    x, y, z, n = Var("x"), Var("y"), Var("z"), Var("n")
    ana = Analyzer()
    ana.bind(x, Range(IntImm(2, I32), IntImm(6, I32)))  # [2, 8)
    ana.bind(n, 1, 16)
    ana.bind(y, 0, n)  # a symbolic extent
    ana.bind(z, x * 2)  # a value
    assert ana.const_int_bound(x) == ConstIntBound(2, 7)
    assert ana.const_int_bound(y) == ConstIntBound(0, 15)  # n <= 16
    assert ana.can_prove(y < n) and ana.can_prove(z < 16) and ana.can_prove(z % 2 == 0)


def test_assumptions_are_scoped() -> None:
    x, y = Var("x"), Var("y")
    ana = Analyzer()
    ana.bind(x, 0, 100)
    with ana.assume((x < 10) & (y == x * 2)):
        assert ana.const_int_bound(x) == ConstIntBound(0, 9)
        assert ana.can_prove(y < 20)
        assert ana.simplify(x < 10).value == 1  # type: ignore[attr-defined]
    assert ana.const_int_bound(x) == ConstIntBound(0, 99)
    assert not ana.can_prove(y < 20)


def test_stats_count_each_method() -> None:
    x, a, b = Var("x"), Var("a"), Var("b")
    ana = Analyzer()
    ana.bind(x, 0, 128)
    for v in (a, b):
        ana.bind(v, 0, 1024)
    assert ana.prove((x // 32) * 32 + x % 32 == x).method == "rewrite"
    assert ana.prove(x * 4 + 3 < 512).method in ("interval", "rewrite")
    with ana.assume(a <= b):
        assert ana.prove(a * x <= b * x).method == "z3"
    assert not ana.can_prove(x < 100)
    ana.can_prove(x < 100)  # asked again: a cache hit
    s = ana.stats
    assert s["queries"] == 5 and s["cache_hits"] == 1
    assert s["rewrite"] + s["interval"] + s["z3"] == 3 and s["unproved"] == 1


def test_simplified_guards_read_well() -> None:
    """What codegen prints: the canonical forms of typical guards and indices."""
    from tsir.arith.intern import fmt

    by, i, m = Var("by"), Var("i"), Var("M")
    ana = Analyzer()
    ana.bind(m, 1, 1 << 20)
    ana.bind(by, 0, ceildiv(m, 128))
    ana.bind(i, 0, 128)
    assert fmt(ana.simplify(by * 128 + i < m)) == "(((by * 128) + i) < M)"
    assert fmt(ana.simplify(i <= m - 1)) == "(i < M)"
    assert fmt(ana.simplify((by * 128 + i) // 32 % 4)) == "(i // 32)"
