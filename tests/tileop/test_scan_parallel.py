"""Parallel T.cumsum / T.cummax (tsir/tileop/scan_parallel.py): fragments scanned in registers
(warp shuffles inside a warp, per-warp totals in shared memory across warps) and shared tiles
scanned by the lanes of a warp; the one-thread-per-row scan only as the fallback. Each layout
family is checked at every stage against the interpreter and numpy, forward and reverse, for
several dtypes, ragged shapes and thread counts; the lowering chosen is the one expected (its
TSIR_EXPLAIN report); the CUDA compiles; a GPU test compares with torch."""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np
import pytest

import tsir
from tsir import T
from tsir.interpret import check_stages
from tsir.layout import Fragment, make_mma_c_fragment
from tsir.tileop.planned_layouts import plan_row_group, row_group_fragment
from tsir.tileop.scan_parallel import plan_register_scan

NP: dict[str, Any] = {"float16": np.float16, "bfloat16": ml_dtypes.bfloat16}


def scan(
    kind: str,
    shape: tuple[int, ...],
    dim: int,
    reverse: bool,
    dtype: str,
    threads: int,
    scope: str,
    acc: str | None = None,
) -> tsir.PrimFunc:
    """Y = scan(X) over one tile per block (2 blocks); `acc`: the destination's dtype."""
    op = T.cumsum if kind == "sum" else T.cummax
    out = acc or dtype
    with T.prim_func("scan") as f:
        X = T.param("X", (2, *shape), dtype)
        Y = T.param("Y", (2, *shape), out)
        with T.Kernel(2, threads=threads) as bx:
            if scope in ("fragment", "annotated"):
                x = T.alloc_fragment(shape, dtype)
                y = x if acc is None else T.alloc_fragment(shape, out)
                if scope == "annotated":  # each row held by threads 0, 1, 2: 32 values each
                    T.annotate_layout(
                        {
                            x: Fragment.from_fn(
                                shape, lambda i, j: j // 32, lambda i, j: (i * 32 + j % 32,)
                            )
                        }
                    )
            else:
                x = T.alloc_shared(shape, dtype)
                y = x if acc is None else T.alloc_shared(shape, out)
            T.copy(X[(bx, *([0] * len(shape)))], x)
            op(x, y if y is not x else None, dim=dim, reverse=reverse)
            T.copy(y, Y[(bx, *([0] * len(shape)))])
    return f.func


def reference(x: np.ndarray, kind: str, dim: int, reverse: bool) -> np.ndarray:
    w = x.astype(np.float64)
    axis = dim + 1
    if reverse:
        w = np.flip(w, axis)
    r = np.cumsum(w, axis=axis) if kind == "sum" else np.maximum.accumulate(w, axis=axis)
    return np.flip(r, axis) if reverse else r


CASES = [
    # (shape, dim, dtype, threads, scope, expected lowering)
    ((8, 64), 1, "float32", 128, "fragment", "registers"),  # 16 lanes a row
    ((4, 256), 1, "float32", 128, "fragment", "registers"),  # 64 lanes a row: 2 warps
    ((512,), 0, "float32", 128, "fragment", "registers"),  # 1-D: 4 warps share the line
    ((32, 16), 0, "float32", 64, "fragment", "registers"),  # columns: holders G threads apart
    ((6, 64), 1, "float16", 64, "fragment", "registers"),  # ragged rows over 4 groups
    ((5, 37), 1, "float32", 96, "shared", "lines"),  # ragged shared tile
    ((40, 12), 0, "bfloat16", 64, "shared", "lines"),
    ((3, 50), 1, "float32", 64, "fragment", "registers"),  # 25 two-value rounds, 1 lane
    ((4, 96), 1, "float32", 32, "annotated", "staged"),  # 3 holders a row: staged
    ((4, 64), 1, "float32", 48, "shared", "rows"),  # not whole warps: the fallback
]


@pytest.mark.parametrize("kind", ["sum", "max"])
@pytest.mark.parametrize(("shape", "dim", "dtype", "threads", "scope", "lowering"), CASES)
def test_every_stage_computes_the_parallel_scan(
    kind: str, shape: tuple[int, ...], dim: int, dtype: str, threads: int, scope: str, lowering: str
) -> None:
    rng = np.random.default_rng(sum(shape) + threads)
    x = rng.integers(-4, 5, (2, *shape)).astype(NP.get(dtype, dtype))  # sums exact in every dtype
    for reverse in (False, True):
        func = scan(kind, shape, dim, reverse, dtype, threads, scope)
        report = check_stages(func, [x, np.full_like(x, 77)])
        assert report.ok, f"reverse={reverse}\n{report}"
        np.testing.assert_array_equal(
            report.reference[1].astype(np.float64), reference(x, kind, dim, reverse)
        )
        explained = [str(d) for d in tsir.lower(func, "sm_80").report]
        if lowering in ("registers", "lines"):  # the path meant for these operands: nothing to say
            assert not any("instead of" in d for d in explained), explained
        else:
            assert any(f"{lowering} instead of" in d for d in explained), explained


@pytest.mark.parametrize(
    ("dtype", "acc"),
    [("int32", None), ("int64", None), ("float16", "float32"), ("int32", "float32")],
)
def test_scans_into_another_dtype(dtype: str, acc: str | None) -> None:
    x = np.random.default_rng(1).integers(-9, 9, (2, 8, 128)).astype(NP.get(dtype, dtype))
    for kind in ("sum", "max"):
        func = scan(kind, (8, 128), 1, False, dtype, 128, "fragment", acc)
        out = np.zeros(x.shape, NP.get(acc or dtype, acc or dtype))
        report = check_stages(func, [x, out])
        assert report.ok, str(report)
        np.testing.assert_array_equal(
            report.reference[1].astype(np.float64), reference(x, kind, 1, False)
        )


def test_gemm_accumulator_rows_scan_in_registers() -> None:
    """A full_row mma.sync accumulator: each row in the 4 lanes of a quad, 2 values per round."""
    plan = plan_register_scan(make_mma_c_fragment(64, 64, 16, 64), 1, False, 128)
    assert plan.holders == 4 and plan.stride == 1 and len(plan.regs[0][0]) == 2
    assert len(plan.regs[0]) == 8  # one round per m16n8 tile along the row
    with T.prim_func("acc_scan") as f:
        A = T.param("A", (64, 32), "float16")
        B = T.param("B", (32, 64), "float16")
        C = T.param("C", (64, 64), "float32")
        with T.Kernel(1, threads=128):
            A_s = T.alloc_shared((64, 32), "float16")
            B_s = T.alloc_shared((32, 64), "float16")
            C_f = T.alloc_fragment((64, 64), "float32")
            T.copy(A, A_s)
            T.copy(B, B_s)
            T.gemm(A_s, B_s, C_f, clear_accum=True, policy="full_row")
            T.cumsum(C_f, dim=1)
            T.copy(C_f, C)
    rng = np.random.default_rng(2)
    a = rng.integers(-2, 3, (64, 32)).astype(np.float16)
    b = rng.integers(-2, 3, (32, 64)).astype(np.float16)
    report = check_stages(f.func, [a, b, np.zeros((64, 64), np.float32)])
    assert report.ok, str(report)
    np.testing.assert_array_equal(report.reference[2], np.cumsum(a.astype(np.float64) @ b, axis=1))


def test_the_round_structure_of_row_group_tiles() -> None:
    p = plan_row_group((4, 256), 128, 4)
    plan = plan_register_scan(row_group_fragment(p, 2), 1, False, 128)
    assert (plan.holders, plan.stride, plan.per_warp) == (64, 1, 32)  # two warps per row
    rev = plan_register_scan(row_group_fragment(p, 2), 1, True, 128)
    assert rev.stride == -1


@pytest.mark.parametrize("target", ["sm_80", "sm_90a"])
def test_parallel_scans_compile(target: str) -> None:
    for shape, dim, dtype, threads, scope, _ in CASES:
        for kind in ("sum", "max"):
            func = scan(kind, shape, dim, True, dtype, threads, scope)
            assert tsir.compile(func, target=target).cubin[:4] == b"\x7fELF"


@pytest.mark.gpu
@pytest.mark.parametrize("kind", ["sum", "max"])
@pytest.mark.parametrize(("shape", "dim", "dtype", "threads", "scope", "lowering"), CASES)
def test_parallel_scans_on_the_gpu(
    kind: str, shape: tuple[int, ...], dim: int, dtype: str, threads: int, scope: str, lowering: str
) -> None:
    torch = pytest.importorskip("torch")
    tdt = getattr(torch, dtype)
    x = torch.randint(-4, 5, (2, *shape), device="cuda").to(tdt)
    for reverse in (False, True):
        y = torch.full_like(x, 77)
        tsir.compile(scan(kind, shape, dim, reverse, dtype, threads, scope))(x, y)
        w = x.double().flip(dim + 1) if reverse else x.double()
        r = w.cumsum(dim + 1) if kind == "sum" else torch.cummax(w, dim + 1).values
        assert torch.equal(y.double(), r.flip(dim + 1) if reverse else r)
