"""Constant folding with each dtype's real semantics: wrapping integers, floor division, IEEE."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tsir.arith import Analyzer
from tsir.arith.const_fold import cast_value, float_binary, int_binary, round_float
from tsir.dtype import DataType
from tsir.expr import (
    LT,
    NE,
    Add,
    Call,
    Cast,
    Div,
    FloatImm,
    FloorDiv,
    FloorMod,
    IntImm,
    Max,
    Min,
    Mul,
    PrimExpr,
    Sub,
)

D = DataType


def fold(e: PrimExpr) -> PrimExpr:
    return Analyzer().simplify(e)


def ival(v: int, dt: str) -> IntImm:
    return IntImm(v, D(dt))


@pytest.mark.parametrize(
    "op, a, b, dt, want",
    [
        (Add, 2**31 - 1, 1, "int32", -(2**31)),
        (Mul, 2**16, 2**16, "int32", 0),
        (Sub, 0, 1, "uint8", 255),
        (Mul, 100, 3, "int8", 44),
        (FloorDiv, -7, 2, "int32", -4),
        (FloorMod, -7, 2, "int32", 1),
        (FloorDiv, 7, -2, "int32", -4),
        (FloorMod, 7, -2, "int32", -1),
        (FloorDiv, -(2**31), -1, "int32", -(2**31)),  # the one quotient that wraps
        (Min, -3, 2, "int64", -3),
        (Max, 200, 100, "uint8", 200),
    ],
)
def test_integer_folding_wraps_and_floors(op: type, a: int, b: int, dt: str, want: int) -> None:
    out = fold(op(ival(a, dt), ival(b, dt)))
    assert isinstance(out, IntImm) and out.value == want and out.dtype == D(dt)


def test_float32_rounds_each_operation() -> None:
    a, b = FloatImm(0.1, D("float32")), FloatImm(0.2, D("float32"))
    out = fold(Add(a, b))
    expected = float(np.float32(np.float32(0.1) + np.float32(0.2)))
    assert isinstance(out, FloatImm) and out.value == expected
    assert out.value != 0.1 + 0.2


def test_float16_and_bfloat16_round_to_their_precision() -> None:
    one = FloatImm(1.0, D("float16"))
    tiny = FloatImm(2.0**-12, D("float16"))
    assert fold(Add(one, tiny)).value == 1.0  # below half an ulp of 1.0 in float16
    bf = D("bfloat16")
    assert round_float(1.0 + 2.0**-8, bf) == 1.0  # ties to even
    assert round_float(1.0 + 3 * 2.0**-8, bf) == 1.0 + 2.0**-6
    assert float_binary("Mul", 3.0, 1.0 / 3.0, D("float32")) == float(
        np.float32(3.0) * np.float32(1 / 3)
    )


def test_float_division_by_zero_is_ieee() -> None:
    f32 = D("float32")
    assert float_binary("Div", 1.0, 0.0, f32) == math.inf
    assert float_binary("Div", -1.0, 0.0, f32) == -math.inf
    assert math.isnan(float_binary("Div", 0.0, 0.0, f32))
    out = fold(Div(FloatImm(1.0, f32), FloatImm(-0.0, f32)))
    assert out.value == -math.inf


def test_nan_comparisons_fold_like_ieee() -> None:
    nan = FloatImm(math.nan, D("float32"))
    assert fold(LT(nan, nan)).value == 0
    assert fold(NE(nan, nan)).value == 1


def test_what_is_not_folded() -> None:
    f8 = D("float8_e4m3")
    a = Add(FloatImm(1.0, f8), FloatImm(2.0, f8))
    assert isinstance(fold(a), Add)  # fp8 arithmetic depends on how codegen lowers it
    nan = FloatImm(math.nan, D("float32"))
    assert isinstance(fold(Min(nan, FloatImm(1.0, D("float32")))), Min)
    assert isinstance(fold(Cast(D("int32"), FloatImm(3e10, D("float32")))), Cast)  # C UB


def test_casts_follow_c() -> None:
    i32, f32 = D("int32"), D("float32")
    assert cast_value(-2.7, f32, i32) == -2  # truncation toward zero
    assert cast_value(300, i32, D("uint8")) == 44
    assert cast_value(-1, i32, D("uint32")) == 2**32 - 1
    assert cast_value(2**24 + 1, i32, f32) == 2.0**24  # round to nearest even
    assert cast_value(2**63 - 1, D("int64"), D("bfloat16")) == 2.0**63
    assert cast_value(0.5, f32, D("bool")) == 1
    assert fold(Cast(D("int8"), IntImm(200, i32))).value == -56


def test_bit_intrinsics_fold() -> None:
    i32 = D("int32")
    assert fold(Call(i32, "shift_right", (ival(-8, "int32"), ival(1, "int32")))).value == -4
    assert fold(Call(i32, "shift_left", (ival(1, "int32"), ival(31, "int32")))).value == -(2**31)
    assert fold(Call(i32, "bitwise_and", (ival(-1, "int32"), ival(255, "int32")))).value == 255
    out = fold(Call(i32, "shift_left", (ival(1, "int32"), ival(40, "int32"))))
    assert isinstance(out, Call)  # shift past the width is undefined in C


def test_int_binary_division_by_zero_message() -> None:
    from tsir.errors import ArithError

    with pytest.raises(ArithError, match=r"constant division by zero in `7 // 0` \(int32\)"):
        int_binary("FloorDiv", 7, 0, D("int32"))
