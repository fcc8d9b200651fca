"""Every error the analyzer raises on purpose: its type and text (CONVENTIONS 19, 21)."""

from __future__ import annotations

import pytest

from tsir.arith import Analyzer
from tsir.buffer import Range
from tsir.dtype import DataType
from tsir.errors import ArithError, TSIRError
from tsir.expr import LT, Add, FloatImm, FloorDiv, FloorMod, IntImm, Select, Var

I32, I64 = DataType("int32"), DataType("int64")


def test_mixed_dtypes_name_both_sides() -> None:
    x, y = Var("x", I32), Var("y", I64)
    with pytest.raises(ArithError, match=r"`\(x \+ y\)` mixes int32 \(`x`\) and int64 \(`y`\)"):
        Analyzer().simplify(Add(x, y))
    with pytest.raises(TSIRError, match="mixes int32"):
        Analyzer().can_prove(LT(x, y))
    with pytest.raises(ArithError, match="insert an explicit cast"):
        Analyzer().const_int_bound(Add(x, y))


def test_mixed_dtypes_in_select_branches() -> None:
    x = Var("x", I32)
    with pytest.raises(ArithError, match=r"mixes int32 \(`x`\) and int64 \(`1`\) in its branches"):
        Analyzer().simplify(Select(x < 1, x, IntImm(1, I64)))


@pytest.mark.parametrize(
    "op, word, sym",
    [(FloorDiv, "division", "//"), (FloorMod, "modulo", "%")],
)
def test_constant_division_by_zero_is_an_arith_error(op: type, word: str, sym: str) -> None:
    x = Var("x")
    expected = rf"constant {word} by zero in `\(x {sym} 0\)` \(int32\); guard the divisor"
    with pytest.raises(ArithError, match=expected):
        Analyzer().simplify(op(x, IntImm(0, I32)))
    with pytest.raises(ArithError, match=word):
        Analyzer().simplify(op(IntImm(7, I32), IntImm(0, I32)))


def test_division_by_zero_never_leaks_zero_division_error() -> None:
    ana = Analyzer()
    x = Var("x")
    for call in (ana.simplify, ana.const_int_bound, ana.modular_set):
        with pytest.raises(ArithError):
            call(FloorMod(IntImm(3, I32), IntImm(0, I32)))
    with pytest.raises(ArithError):
        ana.can_prove(FloorDiv(x, IntImm(0, I32)) == 1)


def test_a_zero_divisor_found_by_simplifying_is_left_alone() -> None:
    """Only a literal zero divisor is an error; `x // (y - y)` may sit in a branch never taken."""
    x, y = Var("x"), Var("y")
    out = Analyzer().simplify(FloorDiv(x, y - y))
    assert isinstance(out, FloorDiv)


def test_can_prove_needs_a_bool() -> None:
    with pytest.raises(
        ArithError, match=r"can_prove expects a bool condition, got `x` of type int32"
    ):
        Analyzer().can_prove(Var("x"))
    with pytest.raises(ArithError, match="expects an expression, got str"):
        Analyzer().can_prove("x < 1")


def test_bounds_of_floats_are_refused() -> None:
    with pytest.raises(ArithError, match="const_int_bound needs an integer expression"):
        Analyzer().const_int_bound(FloatImm(1.0, DataType("float32")))


def test_rebinding_needs_override() -> None:
    ana = Analyzer()
    x = Var("x")
    ana.bind(x, 0, 8)
    ana.bind(x, 0, 8)  # the same range again is fine
    with pytest.raises(ArithError, match="`x` is already bound; pass override=True"):
        ana.bind(x, 0, 16)
    ana.bind(x, Range(IntImm(0, I32), IntImm(16, I32)), override=True)
    assert ana.const_int_bound(x).max_value == 15


def test_bind_rejects_bad_values() -> None:
    ana = Analyzer()
    x = Var("x")
    with pytest.raises(ArithError, match="bind expects a Var, got IntImm"):
        ana.bind(IntImm(1, I32), 0, 4)  # type: ignore[arg-type]
    with pytest.raises(ArithError, match="which mentions `x` itself"):
        ana.bind(x, x + 1)
    with pytest.raises(
        ArithError, match=r"bind `x` \(int32\) to `y` of type int64; cast the value"
    ):
        ana.bind(x, Var("y", I64))


def test_unsupported_terms_make_z3_answer_unknown_not_crash() -> None:
    from tsir.arith import z3_prover
    from tsir.expr import EQ, Broadcast, Call, Cast, Ramp

    ana = Analyzer()
    x = Var("x")
    ana.bind(x, 0, 8)
    opaque = Call(I32, "some_extern", (x,))
    assert not ana.can_prove(opaque < 100)  # an opaque int32 value: it could be anything
    assert ana.can_prove((opaque < 100) | (opaque >= 100))
    f = Var("f", DataType("float32"))
    assert ana.prove(Cast(I32, f) < 3).z3 == "refuted"  # a float-to-int cast is opaque too
    vec = EQ(Ramp(x, IntImm(1, I32), 4), Broadcast(x, 4))  # vectors cannot be translated
    ctx = ana._ctx
    result, _ = z3_prover.prove(ctx, ctx.interner.intern_tree(vec), 1000)
    assert result == "unknown"
