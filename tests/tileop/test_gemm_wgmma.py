"""Gemm's wgmma lowering (tsir/tileop/gemm_wgmma.py): chosen on sm_90a where its requirements hold,
with the accumulator in wgmma's fragment; an automatic fallback to mma.sync reports the failed
requirement; `policy=` forces a path (an error naming every failed requirement when it cannot
apply); float8 takes only the K-major wgmma path."""

from __future__ import annotations

import pytest
from tsir.passes import PassContext, get
from tsir.passes.layout_inference import LAYOUT_ATTR

import tsir
from tsir import T
from tsir.errors import BuildError, UnsupportedError
from tsir.layout.analysis import equivalent
from tsir.layout.swizzle import SwizzleMode, make_swizzle_layout
from tsir.layout.wgmma_layouts import make_wgmma_c_fragment
from tsir.stmt import AttrStmt
from tsir.tileop.planned_layouts import MmaTile
from tsir.visitor import collect


def gemm(
    bm: int = 128,
    bn: int = 128,
    bk: int = 64,
    threads: int = 128,
    dtype: str = "float16",
    policy: str = "square",
    transpose_B: bool = False,
) -> tsir.PrimFunc:
    with T.prim_func("g") as f:
        A = T.param("A", (bm, bk), dtype)
        B = T.param("B", (bn, bk) if transpose_B else (bk, bn), dtype)
        C = T.param("C", (bm, bn), "float32")
        with T.Kernel(1, threads=threads):
            A_s = T.alloc_shared((bm, bk), dtype)
            B_s = T.alloc_shared((bn, bk) if transpose_B else (bk, bn), dtype)
            C_f = T.alloc_fragment((bm, bn), "float32")
            T.clear(C_f)
            T.copy(A, A_s)
            T.copy(B, B_s)
            T.gemm(A_s, B_s, C_f, transpose_B=transpose_B, policy=policy)
            T.copy(C_f, C)
    return f.func


def lowered_calls(func: tsir.PrimFunc, target: str) -> str:
    return str(tsir.lower(func, target)["LowerTileOp"])


def layouts(func: tsir.PrimFunc, target: str = "sm_90a") -> dict[str, tuple[object, object]]:
    out = get("LayoutInference")(func, PassContext(tsir.Target.parse(target)))
    (attr,) = [a for a in collect(out, AttrStmt) if a.key == LAYOUT_ATTR]
    return {b.name: (lay, plan) for b, lay, plan in attr.value}


def test_sm90a_takes_wgmma_with_its_accumulator_and_swizzled_operands() -> None:
    lay = layouts(gemm(bm=128, bn=256, threads=256))
    c, plan = lay["C_f"]
    # Two warpgroups along M, 64 x 256 each: wgmma's fragment, which is mma.sync's too, so the
    # accumulator keeps mma's plan (row reductions work unchanged).
    assert c.is_equal(make_wgmma_c_fragment(128, 256, 64, 256))  # type: ignore[attr-defined]
    assert plan == MmaTile(128, 256, 8, 1)
    assert lay["A_s"][0].is_equal(make_swizzle_layout((128, 64), "float16", SwizzleMode.B128))  # type: ignore[attr-defined]
    assert lay["B_s"][0].is_equal(make_swizzle_layout((64, 256), "float16", SwizzleMode.B128))  # type: ignore[attr-defined]


def test_two_m64_tiles_per_warpgroup_have_no_mma_plan() -> None:
    c, plan = layouts(gemm(bm=128, bn=128, threads=128))["C_f"]
    assert equivalent(c, make_wgmma_c_fragment(128, 128, 128, 128))  # type: ignore[arg-type]
    assert plan is None


def test_the_lowering_issues_one_wgmma_per_k_step_and_m64_tile() -> None:
    text = lowered_calls(gemm(bm=128, bn=128, bk=64, threads=128), "sm_90a")
    assert text.count("tsir.wgmma.wgmma_ss<tsir::kWgmmaF16, 128, 0, 1>") == 4 * 2
    assert "gemm_ss<" not in text


def test_sm80_and_forced_mma_keep_mma_sync() -> None:
    assert "gemm_sm80.gemm_ss<" in lowered_calls(gemm(), "sm_80")
    text = lowered_calls(gemm(policy="mma"), "sm_90a")
    assert "gemm_sm80.gemm_ss<" in text and "wgmma" not in text


def test_sm80_reports_nothing_about_wgmma() -> None:
    """A lowering for other hardware declining is not a decision about the program."""
    assert not [str(d) for d in tsir.lower(gemm(), "sm_80").report if "wgmma" in str(d)]


@pytest.mark.parametrize(
    "kwargs, reason",
    [
        (dict(bm=32, bn=128, threads=128), "warpgroups: a 32x128 accumulator over 1 warpgroup"),
        (dict(bm=128, bn=128, threads=64), "warpgroups: 64 threads are not whole warpgroups"),
        (
            dict(bm=128, bn=128, bk=64, threads=128, policy="full_row"),
            "one 64-row tile per warpgroup",
        ),
        (
            dict(bm=64, bn=512, bk=32, threads=128),
            "no split into pieces of a multiple of 64 rows by 8..256",
        ),
    ],
)
def test_an_automatic_fallback_reports_the_failed_requirement(kwargs: dict, reason: str) -> None:
    lowered = tsir.lower(gemm(**kwargs), "sm_90a")
    report = [str(d) for d in lowered.report]
    assert any("T.gemm: mma.sync instead of wgmma: " in r and reason in r for r in report), report
    assert "gemm_sm80.gemm_ss<" in str(lowered["LowerTileOp"])


def test_register_budget_is_a_requirement() -> None:
    report = [str(d) for d in tsir.lower(gemm(bm=128, bn=256, threads=128), "sm_90a").report]
    assert any(
        "accumulator registers: a 128x256 piece per warpgroup needs 256" in r for r in report
    )


def test_forcing_wgmma_where_it_cannot_apply_is_an_error() -> None:
    with pytest.raises(UnsupportedError, match="T.gemm: warpgroups: a 32x128 accumulator"):
        tsir.lower(gemm(bm=32, policy="wgmma"), "sm_90a")
    with pytest.raises(UnsupportedError, match="wgmma tensor cores: sm_80 has no wgmma"):
        tsir.lower(gemm(policy="wgmma"), "sm_80")


def test_fp8_operands_must_be_k_major() -> None:
    with pytest.raises(BuildError, match="float8 operands must be K-major .* transpose_B=True"):
        gemm(dtype="float8_e4m3", bk=64)


def test_fp8_takes_wgmma_k32_on_sm90a_and_nothing_on_sm80() -> None:
    f = gemm(dtype="float8_e4m3", bk=64, transpose_B=True)
    text = lowered_calls(f, "sm_90a")
    assert text.count("wgmma_ss<tsir::kWgmmaE4M3E4M3, 128, 0, 0>") == 2 * 2
    with pytest.raises(UnsupportedError, match="mma.sync: 16-bit operands: mma.sync takes float16"):
        tsir.lower(f, "sm_80")


def test_warpgroups_split_along_n_only_at_whole_swizzle_spans() -> None:
    """An N-major B tile of 32 halves (a 64-byte swizzle span) cannot give two warpgroups 16
    columns each: the descriptor addresses whole spans (found by running ops2's fragment-copy
    test for sm_90a: it raised while lowering)."""
    report = [
        d.message for d in tsir.lower(gemm(bm=64, bn=32, bk=32, threads=256), "sm_90a").report
    ]
    assert any(
        "mma.sync instead of wgmma: warpgroups: a 64x32 accumulator over 2" in r for r in report
    )
