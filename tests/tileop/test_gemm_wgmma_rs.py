"""T.gemm with the A operand in a fragment on sm_90a (tsir/tileop/gemm_wgmma_rs.py): wgmma's
register-A form when A is laid out as wgmma's A operand (P cast from a full_row accumulator, or a
fragment the gemm lays out itself), a swizzled shared staging tile and the shared-memory wgmma
otherwise. Each program is checked at every stage against the interpreter (whose wgmma_rs reads
each thread's four registers by the PTX fragment table)."""

from __future__ import annotations

import numpy as np
import pytest
from test_gemm_rs import p_times_v

import tsir
from tsir import T
from tsir.interpret import check_stages


def _check(func: tsir.PrimFunc, args: list[np.ndarray]) -> tsir.Lowered:
    lowered = tsir.lower(func, "sm_90a")
    report = check_stages(lowered, args, target="sm_90a")
    assert report.ok, str(report)
    return lowered


def _pv_args(M: int, N1: int, D: int, K: int, dtype: str = "float16") -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    q = (rng.standard_normal((M, K)) * 0.3).astype(np.float32)
    k = (rng.standard_normal((N1, K)) * 0.3).astype(np.float32)
    v = rng.standard_normal((N1, D)).astype(np.float32)
    q, k, v = (x.astype(dtype) for x in (q, k, v))
    return [q, k, v, np.zeros((M, D), np.float32)]


def _final(lowered: tsir.Lowered) -> str:
    return str(lowered["ThreadSync"])


@pytest.mark.parametrize("M,threads,cast", [(128, 256, "copy"), (64, 128, "parallel")])
def test_a_cast_from_a_full_row_accumulator_is_read_in_place(
    M: int, threads: int, cast: str
) -> None:
    """Both gemms one 64-row tile per warpgroup: P = cast(S) is wgmma's A fragment, read by
    wgmma_rs four registers per instruction; nothing is reported."""
    func = p_times_v(M, 64, 64, 32, threads, "full_row", "full_row", cast)
    args = _pv_args(M, 64, 64, 32)
    lowered = _check(func, args)
    assert not lowered.report, [str(d) for d in lowered.report]
    final = _final(lowered)
    assert "wgmma_rs<tsir::kWgmmaF16, 64, 1>" in final and "gemm_rs<" not in final
    q, k, v, _ = (x.astype(np.float32) for x in args)
    s = q @ k.T * (1.0 if cast == "copy" else 0.5)
    want = s.astype(np.float16).astype(np.float32) @ v
    report = check_stages(func, args, target="sm_90a")
    np.testing.assert_allclose(report.reference[3], want, rtol=2e-2, atol=2e-2)


def test_another_warpgroup_split_stages_a_through_shared_memory() -> None:
    """S's two warpgroups split N (64 x 64 each) while P V's split its 64 x 128 output along N, so
    each needs all of P: P goes through a swizzled shared tile (fenced for the async proxy) to
    the shared-memory wgmma, and TSIR_EXPLAIN says why."""
    func = p_times_v(64, 128, 128, 32, 256, "square", "square", "copy")
    lowered = _check(func, _pv_args(64, 128, 128, 32))
    (line,) = [d.message for d in lowered.report]
    assert "wgmma rs via shared instead of wgmma rs" in line
    assert "`P` is not laid out as wgmma's A operand" in line
    final = _final(lowered)
    assert "P_staged" in final and "wgmma_ss<" in final and "wgmma_rs" not in final


def test_bfloat16() -> None:
    pytest.importorskip("ml_dtypes")
    import ml_dtypes  # noqa: F401  (numpy's bfloat16)

    func = p_times_v(64, 64, 32, 32, 128, "full_row", "full_row", "parallel", "bfloat16")
    lowered = _check(func, _pv_args(64, 64, 32, 32, "bfloat16"))
    assert "wgmma_rs<tsir::kWgmmaBF16, 32, 1>" in _final(lowered)


def test_a_fragment_whose_first_user_is_the_gemm_gets_the_wgmma_a_layout() -> None:
    """A fragment loaded from global memory: the copy has no preference, so the gemm lays it out
    as wgmma's A operand (not mma.sync's) and reads it in place; B is K-major here."""
    with T.prim_func("a_frag") as f:
        A = T.param("A", (128, 64), "float16")
        B = T.param("B", (64, 64), "float16")
        C = T.param("C", (128, 64), "float32")
        with T.Kernel(1, threads=256):
            A_f = T.alloc_fragment((128, 64), "float16")
            B_s = T.alloc_shared((64, 64), "float16")
            C_f = T.alloc_fragment((128, 64), "float32")
            T.copy(A, A_f)
            T.copy(B, B_s)
            T.gemm(A_f, B_s, C_f, transpose_B=True, clear_accum=True)
            T.copy(C_f, C)
    rng = np.random.default_rng(4)
    a = rng.standard_normal((128, 64)).astype(np.float16)
    b = rng.standard_normal((64, 64)).astype(np.float16)
    lowered = _check(f.func, [a, b, np.zeros((128, 64), np.float32)])
    assert not lowered.report
    assert "wgmma_rs<tsir::kWgmmaF16, 64, 0>" in _final(lowered)
    report = check_stages(f.func, [a, b, np.zeros((128, 64), np.float32)], target="sm_90a")
    want = a.astype(np.float32) @ b.astype(np.float32).T
    np.testing.assert_allclose(report.reference[2], want, rtol=1e-3, atol=1e-3)


def test_forcing_wgmma_on_an_8_bit_fragment_a_names_the_reason() -> None:
    """float8 A fragments are not the accumulator's layout: policy="wgmma" (the path and its
    register-A forms) is an error naming why each form declines."""
    with T.prim_func("fp8") as f:
        with T.Kernel(1, threads=128):
            A_f = T.alloc_fragment((64, 64), "float8_e4m3")
            B_s = T.alloc_shared((64, 64), "float8_e4m3")
            C_f = T.alloc_fragment((64, 64), "float32")
            T.clear(C_f)
            T.gemm(A_f, B_s, C_f, transpose_B=True, policy="wgmma")
    why = "wgmma rs: operand types: no register-A wgmma for float8"
    with pytest.raises(tsir.TSIRError, match=why):
        tsir.lower(f.func, "sm_90a")
