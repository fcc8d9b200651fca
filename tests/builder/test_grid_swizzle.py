"""T.use_swizzle's block order (tsir/grid_swizzle.py): for every grid, panel width and order, the
launch order is a permutation of the grid (each (bx, by) exactly once), walks its panels in
order, and the printed CUDA computes the same (bx, by) as the IR expressions."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tsir
from tsir import T
from tsir.arith import Analyzer
from tsir.dtype import int32
from tsir.errors import BuildError
from tsir.expr import IntImm, Var
from tsir.grid_swizzle import SWIZZLE_COL, SWIZZLE_ROW, panel_coords, swizzle_of
from tsir.visitor import substitute


def _order(gx: int, gy: int, panel: int, col: bool) -> list[tuple[int, int]]:
    t = Var("t", int32)
    bx, by = panel_coords(t, IntImm(gx, int32), IntImm(gy, int32), panel, col)
    a = Analyzer()
    out = []
    for i in range(gx * gy):
        vx = a.simplify(substitute(bx, {t: IntImm(i, int32)}))
        vy = a.simplify(substitute(by, {t: IntImm(i, int32)}))
        assert isinstance(vx, IntImm) and isinstance(vy, IntImm)
        out.append((vx.value, vy.value))
    return out


@settings(max_examples=60, deadline=None)
@given(gx=st.integers(1, 13), gy=st.integers(1, 13), panel=st.integers(1, 9), col=st.booleans())
def test_the_order_is_a_permutation_that_walks_panel_by_panel(
    gx: int, gy: int, panel: int, col: bool
) -> None:
    order = _order(gx, gy, panel, col)
    assert sorted(order) == [(x, y) for x in range(gx) for y in range(gy)]
    # Panels in order: the panel index (of the block column, or row) never decreases.
    key = [(y if col else x) // panel for x, y in order]
    assert key == sorted(key)
    # Within a panel the fast index is the one across the panel: by for column order.
    if gx * gy > 1 and min(gx, gy) > 1 and panel > 1:
        x0, y0 = order[0]
        x1, y1 = order[1]
        assert (x1, y1) == ((x0, y0 + 1) if col else (x0 + 1, y0))


def test_use_swizzle_records_the_order_and_refuses_an_unknown_one() -> None:
    with T.prim_func("f") as f:
        X = T.param("X", (64, 64), "float32")
        with T.Kernel(2, 2, threads=32) as (bx, by):
            T.use_swizzle(4, order="col")
            X[by, bx] = 1.0
    attrs = [a for a in tsir.visitor.collect(f.func.body, tsir.stmt.AttrStmt)]
    assert swizzle_of(attrs) == (4, True)
    assert any(a.key == SWIZZLE_COL for a in attrs) and not any(a.key == SWIZZLE_ROW for a in attrs)
    with T.prim_func("g"), T.Kernel(2, 2, threads=32):  # noqa: SIM117
        with pytest.raises(BuildError, match="order must be 'row' or 'col'"):
            T.use_swizzle(4, order="diagonal")


@pytest.mark.parametrize("col", [False, True])
def test_the_printed_cuda_binds_the_block_indices_of_the_ir_order(col: bool) -> None:
    """The CUDA printer's formulas, evaluated in Python for every launch index, give the same
    blocks as panel_coords."""
    import re
    import sys
    from pathlib import Path

    from tsir.codegen.cuda import generate_cuda

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
    from gemm import matmul

    func = matmul(
        5 * 64, 3 * 64, 64, bm=64, bn=64, swizzle=2, swizzle_order="col" if col else "row"
    )
    src = generate_cuda(tsir.lower(func, "sm_80").module)
    bx = re.search(r"const int bx = (.*);", src).group(1)  # type: ignore[union-attr]
    by = re.search(r"const int by = (.*);", src).group(1)  # type: ignore[union-attr]
    gx, gy = 3, 5
    got = []
    for lin in range(gx * gy):
        env = {"blk_lin": lin, "min": min}
        py = lambda e: e.replace("/", "//")  # noqa: E731  (non-negative ints: C division)
        got.append((eval(py(bx), env), eval(py(by), env)))  # noqa: S307
    assert got == _order(gx, gy, 2, col)
