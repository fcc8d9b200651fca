"""`T.gemm` on one stage of a 3-D shared buffer (`A_s[ko % stages, :, :]`), TileLang's hand-pipelined
form (issue 12): every lowering stage agrees with the tile program in the interpreter on mma.sync
(sm_80) and wgmma SS / RS (sm_90a), the 3-D buffer gets one swizzle per stage with stages
contiguous and aligned, the CUDA compiles under NVRTC (sm_90a: HGMMA, no local memory), and what
cannot be honoured is an UnsupportedError at the user's line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import pytest
import staged_gemm_programs as P

import tsir
from tsir import T
from tsir.errors import UnsupportedError
from tsir.layout import Layout
from tsir.layout.swizzle import SwizzleMode, detect_swizzle, make_swizzle_layout

NP = {"float16": np.float16, "bfloat16": ml_dtypes.bfloat16}
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hopper"))

from sass_tools import count, opcodes, sass  # noqa: E402


def _args(M: int, N: int, K: int, dtype: str, transpose_B: bool = False) -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    a = rng.standard_normal((M, K)).astype(NP[dtype])
    b = rng.standard_normal((N, K) if transpose_B else (K, N)).astype(NP[dtype])
    return [a, b, np.full((M, N), np.nan, NP[dtype])]


def _check(func: tsir.PrimFunc, args: list[np.ndarray], target: str, tb: bool = False) -> Any:
    """Every stage against the tile program, and the tile program against numpy."""
    lowered = tsir.lower(func, target)
    report = tsir.interpret.check_stages(lowered, args, target=target)
    report.raise_for_failure()
    a, b = (x.astype(np.float32) for x in args[:2])
    want = a @ (b.T if tb else b)
    got = report.reference[2].astype(np.float32)
    np.testing.assert_allclose(got, want, rtol=2e-2, atol=0.1)
    return lowered


def _lowered_gemm(lowered: Any) -> str:
    text = str(lowered["LowerTileOp"])
    for name in ("wgmma_rs", "wgmma_ss", "gemm_rs", "gemm_ss"):
        if name in text:
            return name
    raise AssertionError("no gemm call in LowerTileOp's output")


CASES = [
    # (target, M, N, K, bm, bn, bk, stages, threads, dtype, transpose_B, lowering)
    ("sm_80", 64, 64, 96, 64, 64, 32, 2, 128, "float16", False, "gemm_ss"),
    ("sm_80", 100, 72, 80, 64, 64, 32, 3, 256, "bfloat16", False, "gemm_ss"),
    ("sm_80", 128, 64, 96, 64, 64, 32, 3, 128, "float16", True, "gemm_ss"),
    ("sm_90a", 64, 64, 96, 64, 64, 32, 2, 128, "float16", False, "wgmma_ss"),
    ("sm_90a", 130, 72, 80, 128, 64, 32, 3, 256, "bfloat16", False, "wgmma_ss"),
    ("sm_90a", 128, 64, 96, 128, 64, 32, 3, 128, "float16", True, "wgmma_ss"),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(map(str, c[:11])))
def test_hand_pipelined_gemm_at_every_stage(case: tuple[Any, ...]) -> None:
    target, M, N, K, bm, bn, bk, stages, threads, dtype, tb, lowering = case
    f = P.hand_pipelined(M, N, K, bm, bn, bk, stages, threads, dtype, transpose_B=tb)
    lowered = _check(f, _args(M, N, K, dtype, tb), target, tb)
    assert _lowered_gemm(lowered) == lowering
    assert not lowered.report, lowered.report  # nothing refused or fallen back


@pytest.mark.parametrize("target, lowering", [("sm_80", "gemm_rs"), ("sm_90a", "wgmma_rs")])
def test_register_a_gemm_with_a_staged_b(target: str, lowering: str) -> None:
    lowered = _check(P.register_a(64, 64, 96), _args(64, 64, 96, "float16"), target)
    assert _lowered_gemm(lowered) == lowering


def test_tma_ring_with_explicit_roles_and_barriers() -> None:
    """T.tma_copy into `A_s[ko % stages, :, :]` (TMA swizzles absolute addresses: every stage
    starts on the swizzle atom) and the consumer's wgmma on the same stage; ragged M, N, K."""
    f = P.tma_ring(130, 72, 80, bm=128, bn=64, bk=32, stages=3)
    lowered = _check(f, _args(130, 72, 80, "float16"), "sm_90a")
    text = str(lowered["ThreadSync"])
    assert "tma_load_2d" in text and "wgmma_ss" in text


def _staged_layouts(lowered: Any) -> dict[str, Layout]:
    attr = lowered["LayoutInference"].body.body
    return {b.name: lay for b, lay, _ in attr.value if len(b.shape) == 3}


@pytest.mark.parametrize("target", ["sm_80", "sm_90a"])
def test_each_stage_is_the_2d_swizzle_and_stages_are_contiguous(target: str) -> None:
    """bk=32 fp16 A tiles take the 64-byte swizzle, 64-column B tiles the 128-byte one; the 3-D
    layout is that swizzle in every stage, stage s at s * (tile bytes), a multiple of the atom."""
    lowered = tsir.lower(P.hand_pipelined(64, 64, 96, stages=3), target)
    layouts = _staged_layouts(lowered)
    for name, mode, shape in (
        ("A_s", SwizzleMode.B64, (3, 64, 32)),
        ("B_s", SwizzleMode.B128, (3, 32, 64)),
    ):
        lay = layouts[name]
        assert detect_swizzle(lay, "float16") is mode
        assert lay.is_equal(make_swizzle_layout(shape, "float16", mode))
        tile = shape[1] * shape[2]
        for s in range(3):
            first = tsir.arith.Analyzer().simplify(lay.linear_forward((s, 0, 0)))
            assert first.value == s * tile and (s * tile * 2) % mode.alignment == 0


def _one_gemm(a_region: Any, b_region: Any = None, annotate: Layout | None = None) -> None:
    with T.prim_func("bad") as f:
        A = T.param("A", (64, 32), "float16")
        with T.Kernel(1, threads=128):
            A_s = T.alloc_shared((2, 64, 32), "float16")
            B_s = T.alloc_shared((2, 32, 64), "float16")
            C_f = T.alloc_fragment((64, 64), "float32")
            if annotate is not None:
                T.annotate_layout({A_s: annotate})
            T.copy(A, A_s[0, :, :])
            T.gemm(a_region(A_s), (b_region or (lambda b: b[0, :, :]))(B_s), C_f)
    tsir.lower(f.func, "sm_80")


@pytest.mark.parametrize(
    "region, match",
    [
        (lambda a: a[0, 0:32, :], r"operand A \(`A_s`\) takes \[0, 0 \+ 32\) of dimension 1"),
        (lambda a: a[1, :, 16:32], r"operand A \(`A_s`\) takes \[16, 16 \+ 16\) of dimension 2"),
        (lambda a: a[0:2, :, :], r"operand A \(`A_s`\) takes 2 elements of dimension 0"),
    ],
)
def test_a_partial_stage_is_refused_at_the_users_line(region: Any, match: str) -> None:
    with pytest.raises(UnsupportedError, match=match) as err:
        _one_gemm(region)
    assert err.value.loc is not None and Path(err.value.loc.filename).name == Path(__file__).name


def test_a_stage_of_a_fragment_or_global_buffer_is_refused() -> None:
    with T.prim_func("bad") as f:
        B = T.param("B", (2, 32, 64), "float16")
        with T.Kernel(1, threads=128):
            A_s = T.alloc_shared((64, 32), "float16")
            C_f = T.alloc_fragment((64, 64), "float32")
            with pytest.raises(
                UnsupportedError, match=r"operand B \(`B`\) is a tile of a 3-D global"
            ):
                T.gemm(A_s, B[1, :, :], C_f)
            A_f = T.alloc_fragment((2, 64, 32), "float16")
            with pytest.raises(
                UnsupportedError, match=r"operand A \(`A_f`\) .* 3-D local.fragment"
            ):
                T.gemm(A_f[0, :, :], B, C_f)
            C_3 = T.alloc_fragment((2, 64, 64), "float32")
            with pytest.raises(
                UnsupportedError, match=r"accumulator C \(`C_3`\) must be a whole 2-D"
            ):
                T.gemm(A_s, A_s, C_3[0, :, :])
    del f


def test_stages_laid_out_differently_are_refused() -> None:
    """An annotation that pads stage 1's rows but not stage 0's: gemm_ss would read one pitch for
    both, so the lowering refuses it rather than read the wrong elements."""
    odd = Layout.from_fn((2, 64, 32), lambda s, i, j: (s * 64 * 40 + i * (32 + 8 * s) + j,))
    with pytest.raises(
        UnsupportedError, match=r"`A_s` is neither swizzled nor padded the same way"
    ):
        _one_gemm(lambda a: a[1, :, :], annotate=odd)
    # The same pitch in every stage (and stages apart by more than a tile) is a padded tile.
    even = Layout.from_fn((2, 64, 32), lambda s, i, j: (s * 64 * 48 + i * 40 + j,))
    _one_gemm(lambda a: a[1, :, :], annotate=even)


@pytest.mark.parametrize(
    "name, target, mma",
    [
        ("mma.sync", "sm_80", "HMMA.16816.F32"),
        ("wgmma", "sm_90a", "HGMMA.64x128x16.F32"),
        ("tma_ring", "sm_90a", "HGMMA.64x128x16.F32"),
        ("register_a", "sm_90a", "HGMMA.64x128x16.F32"),
    ],
)
def test_nvrtc_compiles_to_tensor_cores_without_local_memory(
    name: str, target: str, mma: str, tmp_path: Path
) -> None:
    func = {
        "mma.sync": lambda: P.hand_pipelined(1024, 1024, 1024, 128, 128, 32, 3, 256),
        "wgmma": lambda: P.hand_pipelined(1024, 1024, 1024, 128, 128, 64, 3, 256),
        "tma_ring": lambda: P.tma_ring(1024, 1024, 1024, stages=3),
        "register_a": lambda: P.register_a(1024, 1024, 1024, bm=64, bn=128, bk=32),
    }[name]()
    ops = opcodes(sass(tsir.compile(func, target=target).cubin, tmp_path))
    assert ops[mma] > 0, {k: v for k, v in ops.items() if "MMA" in k}
    assert count(ops, "LDL") == 0 and count(ops, "STL") == 0
    if name == "tma_ring":
        assert count(ops, "UTMALDG") > 0


def _four_d() -> tsir.PrimFunc:
    """Two leading indices (one dynamic, one constant) and an element-wise read of a stage."""
    with T.prim_func("four_d") as f:
        A = T.param("A", (64, 64), "float16")
        B = T.param("B", (64, 64), "float16")
        C = T.param("C", (64, 64), "float16")
        D = T.param("D", (64, 32), "float16")
        with T.Kernel(1, threads=128):
            A_s = T.alloc_shared((2, 2, 64, 32), "float16")
            B_s = T.alloc_shared((2, 32, 64), "float16")
            C_f = T.alloc_fragment((64, 64), "float32")
            T.clear(C_f)
            for ko in T.serial(2):
                T.copy(A[0, ko * 32], A_s[ko % 2, 1, :, :])
                T.copy(B[ko * 32, 0], B_s[ko, :, :])
                T.gemm(A_s[ko % 2, 1, :, :], B_s[ko, :, :], C_f)
            for i, j in T.Parallel(64, 32):
                D[i, j] = A_s[1, 1, i, j] * T.cast(2, "float16")
            T.copy(C_f, C[0, 0])
    return f.func


@pytest.mark.parametrize("target, lowering", [("sm_80", "gemm_ss"), ("sm_90a", "wgmma_ss")])
def test_two_leading_indices_and_elementwise_reads_share_the_layout(
    target: str, lowering: str
) -> None:
    a, b, c = _args(64, 64, 64, "float16")
    lowered = tsir.lower(_four_d(), target)
    assert _lowered_gemm(lowered) == lowering
    args = [a, b, c, np.zeros((64, 32), np.float16)]
    report = tsir.interpret.check_stages(lowered, args, target=target)
    report.raise_for_failure()
    want = a.astype(np.float32) @ b.astype(np.float32)
    np.testing.assert_allclose(report.reference[2].astype(np.float32), want, rtol=2e-2, atol=0.1)
    np.testing.assert_array_equal(report.reference[3], a[:, 32:] * 2)
