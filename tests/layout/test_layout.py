"""Layout: construction, shapes, forward, equality, algebra, inversion and printing."""

from __future__ import annotations

import pytest

import tsir
from tsir.arith import Analyzer
from tsir.errors import UnsupportedError
from tsir.expr import IntImm, Var
from tsir.layout import Layout, equivalent
from tsir.structural import structural_equal


def test_forward_and_output_shape() -> None:
    layout = Layout.from_fn((8, 16), lambda i, j: (j // 8, i, j % 8))
    assert layout.const_output_shape() == (2, 8, 8)
    assert [int(e) for e in layout.forward((3, 13))] == [1, 3, 5]
    assert int(layout.linear_forward((3, 13))) == 1 * 64 + 3 * 8 + 5
    r = Var("r")
    assert [str(e) for e in layout.forward((r, 4))] == ["0", "r", "4"]  # constants folded


def test_forward_passes_leading_indices_through() -> None:
    """A 2-d tile layout applied to a (stages, rows, cols) buffer keeps the stage index."""
    layout = Layout.from_fn((8, 8), lambda i, j: (j, i))
    s = Var("s")
    out = layout.forward((s, 1, 2))
    assert out[0] is s and [int(e) for e in out[1:]] == [2, 1]
    with pytest.raises(UnsupportedError, match="takes 2 indices, got 1"):
        layout.forward((1,))


def test_is_equal_is_structural_up_to_renaming() -> None:
    a = Layout.from_fn((8, 8), lambda i, j: (i * 8 + j,))
    b = Layout.from_fn((8, 8), lambda x, y: (x * 8 + y,), names=["x", "y"])
    c = Layout.from_fn((8, 8), lambda i, j: (j + i * 8,))
    assert a.is_equal(b) and structural_equal(a, b)
    assert not a.is_equal(c)  # written differently ...
    assert equivalent(a, c)  # ... but the same map


def test_symbolic_output_shape_uses_the_analyzer() -> None:
    n = Var("n")
    layout = Layout.from_fn((n, 16), lambda i, j: (i % 4, j))
    assert [int(e) for e in layout.output_shape(Analyzer())] == [4, 16]
    assert Layout.row_major((n, 16)).output_shape(Analyzer())[0] is n
    with pytest.raises(UnsupportedError, match="cannot bound physical index 0"):
        Layout.from_fn((n, 16), lambda i, j: (i * 16 + j,)).output_shape(Analyzer())


def test_repeat_expand_reshape() -> None:
    base = Layout.from_fn((8, 8), lambda i, j: (i, (j ^ i) % 8))
    rep = base.repeat(1, 4)
    assert rep.const_input_shape() == (8, 32) and rep.const_output_shape() == (4, 8, 8)
    assert [int(e) for e in rep.forward((3, 21))] == [2, 3, (5 ^ 3) % 8]
    exp = base.expand((2, 3))
    assert exp.const_input_shape() == (2, 3, 8, 8)
    assert [int(e) for e in exp.forward((1, 2, 3, 5))] == [1, 2, 3, 6]
    flat = Layout.row_major((4, 16)).reshape((64,))
    assert [int(e) for e in flat.forward((37,))] == [2, 5]
    with pytest.raises(UnsupportedError, match="cannot reshape"):
        base.reshape((60,))


@pytest.mark.parametrize(
    "shape,fn,expected",
    [
        ((8, 64), lambda i, j: (i * 64 + j,), "(p0 // 64, p0 % 64)"),
        ((4, 6), lambda i, j: (j, i), "(p1, p0)"),
        ((16,), lambda i: (15 - i,), "(15 - p0,)"),
        (
            (64, 64),
            lambda i, j: (i, (j // 8 ^ i % 8) * 8 + j % 8),
            "(p0, p1 % 8 + (p0 % 8 ^ p1 // 8) * 8)",
        ),
        ((48, 96), lambda i, j: ((i * 96 + j) // 128, (i * 96 + j) % 128), None),
    ],
)
def test_inverse(shape, fn, expected) -> None:  # noqa: ANN001
    layout = Layout.from_fn(shape, fn)
    inv = layout.inverse()
    if expected is not None:
        assert (
            "("
            + ", ".join(map(str, inv.forward_index))
            + (",)" if len(inv.forward_index) == 1 else ")")
            == expected
        )
    assert equivalent(inv.inverse(), layout)  # inverting twice gives the same map back


def test_non_injective_layouts_have_no_inverse() -> None:
    layout = Layout.from_fn((8, 8), lambda i, j: (i // 2, j))
    assert not layout.is_injective()
    with pytest.raises(UnsupportedError, match="not injective"):
        layout.inverse()


def test_maps_outside_the_digit_family_are_refused_not_guessed() -> None:
    layout = Layout.from_fn((7,), lambda i: (i * 3 % 7,))  # a bijection, but not a digit map
    assert layout.is_bijective()
    with pytest.raises(UnsupportedError, match="not an affine/XOR map"):
        layout.inverse()


def test_placeholder_count_is_checked() -> None:
    with pytest.raises(UnsupportedError, match="needs 2 placeholder vars, got 1"):
        Layout((IntImm(4), IntImm(4)), (Var("i"),), (IntImm(0),))


def test_str_is_readable() -> None:
    layout = Layout.from_fn((64, 64), lambda i, j: (i, (j // 8 ^ i % 8) * 8 + j % 8))
    text = str(layout)  # the printer's form: the construction that rebuilds the layout
    assert text == (
        "tsir.layout.Layout.from_fn((64, 64), lambda i, j: (i, (j // 8 ^ i % 8) * 8 + j % 8,))"
    )
    tsir.assert_structural_equal(eval(text, {"tsir": tsir}), layout)
