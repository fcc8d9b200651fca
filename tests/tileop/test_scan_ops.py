"""T.cummax (tsir/tileop/cummax.py, the op added without touching a pass) and T.cumsum: shared
tiles and fragments, forward and reverse, in place, checked at every pipeline stage against the
reference interpreter and numpy; their builder errors, printer forms and CUDA."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import tsir
from tsir import T
from tsir.errors import BuildError
from tsir.interpret import check_stages
from tsir.printer import print_func, rebuild

RNG = np.random.default_rng(7)


def scan_kernel(
    op: Callable[..., None],
    rows: int,
    cols: int,
    dim: int,
    scope: str,
    reverse: bool = False,
    dtype: str = "float32",
    in_place: bool = False,
    threads: int = 64,
) -> tsir.PrimFunc:
    """Y = op(X) over one (rows, cols) tile per block, the tile in `scope` ("shared", "fragment",
    or "mixed": a shared source scanned into a fragment)."""
    with T.prim_func("scan") as f:
        X = T.param("X", (2 * rows, cols), dtype)
        Y = T.param("Y", (2 * rows, cols), dtype)
        with T.Kernel(2, threads=threads) as bx:
            if scope == "fragment":
                src = T.alloc_fragment((rows, cols), dtype)
                dst = src if in_place else T.alloc_fragment((rows, cols), dtype)
            else:
                src = T.alloc_shared((rows, cols), dtype)
                if scope == "mixed":
                    dst = T.alloc_fragment((rows, cols), dtype)
                else:
                    dst = src if in_place else T.alloc_shared((rows, cols), dtype)
            T.copy(X[bx * rows, 0], src)
            op(src, None if in_place else dst, dim=dim, reverse=reverse)
            T.copy(dst, Y[bx * rows, 0])
    return f.func


def reference(x: np.ndarray, rows: int, dim: int, reverse: bool, kind: str) -> np.ndarray:
    out = np.empty_like(x, dtype=np.float64)
    for b in range(x.shape[0] // rows):
        tile = x[b * rows : (b + 1) * rows].astype(np.float64)
        if reverse:
            tile = np.flip(tile, dim)
        acc = np.maximum.accumulate(tile, axis=dim) if kind == "max" else np.cumsum(tile, axis=dim)
        out[b * rows : (b + 1) * rows] = np.flip(acc, dim) if reverse else acc
    return out


CASES = [
    # (rows, cols, dim, scope, reverse, in_place)
    (4, 64, 1, "shared", False, False),
    (4, 64, 1, "shared", True, True),
    (16, 8, 0, "shared", False, False),
    (8, 64, 1, "fragment", False, False),
    (8, 64, 0, "fragment", True, False),
    (8, 32, 1, "fragment", True, True),
    (4, 64, 1, "mixed", False, False),
]


@pytest.mark.parametrize("kind", ["max", "sum"])
@pytest.mark.parametrize(("rows", "cols", "dim", "scope", "reverse", "in_place"), CASES)
def test_every_stage_computes_the_scan(
    kind: str, rows: int, cols: int, dim: int, scope: str, reverse: bool, in_place: bool
) -> None:
    """The tile-level program (interpreted by the op's documented semantics) and every lowered
    stage agree, with no race or uninitialised read, and match numpy."""
    op = T.cummax if kind == "max" else T.cumsum
    func = scan_kernel(op, rows, cols, dim, scope, reverse, in_place=in_place)
    x = RNG.standard_normal((2 * rows, cols)).astype(np.float32)
    report = check_stages(func, [x, np.full_like(x, np.nan)])
    assert report.ok, str(report)
    assert report.results[-1].stage == "SplitHostDevice"
    want = reference(x, rows, dim, reverse, kind)
    np.testing.assert_allclose(report.reference[1], want, rtol=1e-5, atol=1e-5)


def test_cummax_of_integers_starts_from_the_lowest_value() -> None:
    func = scan_kernel(T.cummax, 4, 32, 1, "shared", dtype="int32")
    x = RNG.integers(-(2**31), 2**31 - 1, size=(8, 32), dtype=np.int64).astype(np.int32)
    report = check_stages(func, [x, np.zeros_like(x)])
    assert report.ok, str(report)
    np.testing.assert_array_equal(
        report.reference[1], reference(x, 4, 1, False, "max").astype(np.int32)
    )


def test_cummax_prints_and_rebuilds() -> None:
    func = scan_kernel(T.cummax, 8, 64, 0, "fragment", reverse=True)
    text = print_func(func)
    assert "T.cummax(" in text and "dim=0, reverse=True)" in text
    tsir.assert_structural_equal(rebuild(text), func)


@pytest.mark.parametrize("target", ["sm_80", "sm_90a"])
def test_cummax_compiles(target: str) -> None:
    kernel = tsir.compile(scan_kernel(T.cummax, 8, 64, 1, "fragment"), target=target)
    assert kernel.cubin[:4] == b"\x7fELF"


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda S, G, F: T.cummax(S, dim=2), r"T.cummax: dim=2 is out of range for the 2-D `S`"),
        (
            lambda S, G, F: T.cummax(G),
            r"T.cummax takes shared-memory tiles or fragments; `G` is global",
        ),
        (lambda S, G, F: T.cummax(S, F), r"T.cummax: `S` and `F` have different shapes"),
        (lambda S, G, F: T.cumsum(S, dim="1"), r"T.cumsum: dim must be an int, got '1'"),
    ],
)
def test_builder_errors(build: Callable[[Any, Any, Any], None], message: str) -> None:
    with T.prim_func("f"):
        G = T.param("G", (4, 4), "float32")
        with T.Kernel(1, threads=32):
            S = T.alloc_shared((4, 4), "float32")
            F = T.alloc_fragment((4, 8), "float32")
            with pytest.raises(BuildError, match=message) as e:
                build(S, G, F)
    assert e.value.loc is not None and e.value.loc.filename == __file__


@pytest.mark.gpu
@pytest.mark.parametrize(("rows", "cols", "dim", "scope", "reverse", "in_place"), CASES)
def test_cummax_on_the_gpu(
    rows: int, cols: int, dim: int, scope: str, reverse: bool, in_place: bool
) -> None:
    import torch

    kernel = tsir.compile(scan_kernel(T.cummax, rows, cols, dim, scope, reverse, in_place=in_place))
    x = torch.randn(2 * rows, cols, device="cuda")
    y = torch.full_like(x, float("nan"))
    kernel(x, y)
    tiles = x.view(2, rows, cols)
    if reverse:
        tiles = tiles.flip(dim + 1)
    want = torch.cummax(tiles, dim=dim + 1).values
    if reverse:
        want = want.flip(dim + 1)
    torch.testing.assert_close(y, want.reshape(2 * rows, cols))
