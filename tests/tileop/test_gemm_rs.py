"""T.gemm with the A operand in a fragment (tsir/tileop/gemm_rs.py): flash attention's P @ V with
P cast in the registers of the previous gemm's accumulator. Checked at every stage against the
interpreter (whose gemm_rs reads each thread's registers by the PTX A-fragment table), on several
warp counts and policies; the accumulator-is-the-A-operand claim is checked on the layouts."""

from __future__ import annotations

import numpy as np
import pytest

import tsir
from tsir import T
from tsir.errors import BuildError
from tsir.interpret import check_stages
from tsir.layout import equivalent, make_mma_a_fragment, make_mma_c_fragment


def p_times_v(
    M: int,
    N1: int,
    D: int,
    K: int,
    threads: int,
    policy1: str,
    policy2: str,
    cast: str,
    dtype: str = "float16",
) -> tsir.PrimFunc:
    """S = Q K^T (policy1), P = cast(S) (T.copy or T.Parallel), O = P V (policy2, A in registers)."""
    with T.prim_func("pv") as f:
        Q = T.param("Q", (M, K), dtype)
        Kt = T.param("Kt", (N1, K), dtype)
        V = T.param("V", (N1, D), dtype)
        O = T.param("O", (M, D), "float32")
        with T.Kernel(1, threads=threads):
            Q_s = T.alloc_shared((M, K), dtype)
            K_s = T.alloc_shared((N1, K), dtype)
            V_s = T.alloc_shared((N1, D), dtype)
            S = T.alloc_fragment((M, N1), "float32")
            P = T.alloc_fragment((M, N1), dtype)
            Of = T.alloc_fragment((M, D), "float32")
            T.copy(Q, Q_s)
            T.copy(Kt, K_s)
            T.copy(V, V_s)
            T.gemm(Q_s, K_s, S, transpose_B=True, clear_accum=True, policy=policy1)
            if cast == "copy":
                T.copy(S, P)
            else:
                for i, j in T.Parallel(M, N1):
                    P[i, j] = T.cast(S[i, j] * 0.5, dtype)
            T.clear(Of)
            T.gemm(P, V_s, Of, policy=policy2)
            T.copy(Of, O)
    return f.func


def _run(M, N1, D, K, threads, policy1, policy2, cast, dtype="float16"):  # type: ignore[no-untyped-def]
    func = p_times_v(M, N1, D, K, threads, policy1, policy2, cast, dtype)
    rng = np.random.default_rng(0)
    np_dt = np.float16 if dtype == "float16" else np.float32
    q = (rng.standard_normal((M, K)) * 0.3).astype(np_dt)
    k = (rng.standard_normal((N1, K)) * 0.3).astype(np_dt)
    v = rng.standard_normal((N1, D)).astype(np_dt)
    if dtype == "bfloat16":
        import ml_dtypes  # noqa: F401  (numpy's bfloat16)

        q, k, v = (x.astype("bfloat16") for x in (q, k, v))
    report = check_stages(func, [q, k, v, np.zeros((M, D), np.float32)], target="sm_80")
    assert report.ok, str(report)
    s = q.astype(np.float32) @ k.astype(np.float32).T * (1.0 if cast == "copy" else 0.5)
    want = s.astype(q.dtype).astype(np.float32) @ v.astype(np.float32)
    np.testing.assert_allclose(report.reference[3], want, rtol=2e-2, atol=2e-2)
    return func


@pytest.mark.parametrize(
    "M,threads,cast",
    [(64, 128, "copy"), (64, 128, "parallel"), (32, 64, "copy"), (128, 256, "parallel")],
)
def test_accumulator_cast_in_registers_is_the_a_operand(M: int, threads: int, cast: str) -> None:
    """Both gemms split only M over the warps (full_row): P stays in registers, `gemm_rs` reads
    it, and nothing is reported."""
    func = _run(M, 64, 32, 32, threads, "full_row", "full_row", cast)
    lowered = tsir.lower(func, "sm_80")
    assert not lowered.report
    source = tsir.compile(func, target="sm_80").cuda_source
    assert "tsir::gemm_rs<" in source


@pytest.mark.parametrize(
    "policy1,policy2,D", [("square", "full_row", 32), ("full_row", "square", 64)]
)
def test_another_warp_partition_stages_a_through_shared_memory(
    policy1: str, policy2: str, D: int
) -> None:
    """The accumulator's warps also split N (or the second gemm's do): P is not in the A-operand
    layout, so it goes through a swizzled shared tile to gemm_ss, reported under TSIR_EXPLAIN."""
    func = _run(64, 64, D, 32, 128, policy1, policy2, "copy")
    report = tsir.lower(func, "sm_80").report
    assert any("mma.sync rs via shared instead of mma.sync rs" in d.message for d in report)


def test_bfloat16_operands() -> None:
    pytest.importorskip("ml_dtypes")
    _run(64, 32, 32, 32, 128, "full_row", "full_row", "parallel", "bfloat16")


def test_a_fragment_loaded_from_memory_gets_the_operand_layout() -> None:
    """A fragment whose first user is a copy from global memory: the copy has no preference, so
    the gemm that reads it chooses the A-operand layout (no staging)."""
    with T.prim_func("a_frag") as f:
        A = T.param("A", (64, 32), "float16")
        B = T.param("B", (32, 64), "float16")
        C = T.param("C", (64, 64), "float32")
        with T.Kernel(1, threads=128):
            A_f = T.alloc_fragment((64, 32), "float16")
            B_s = T.alloc_shared((32, 64), "float16")
            C_f = T.alloc_fragment((64, 64), "float32")
            T.copy(A, A_f)
            T.copy(B, B_s)
            T.gemm(A_f, B_s, C_f, clear_accum=True)
            T.copy(C_f, C)
    rng = np.random.default_rng(4)
    a = rng.standard_normal((64, 32)).astype(np.float16)
    b = rng.standard_normal((32, 64)).astype(np.float16)
    report = check_stages(f.func, [a, b, np.zeros((64, 64), np.float32)], target="sm_80")
    assert report.ok, str(report)
    np.testing.assert_allclose(
        report.reference[2], a.astype(np.float32) @ b.astype(np.float32), rtol=1e-3, atol=1e-3
    )
    assert not tsir.lower(f.func, "sm_80").report


@pytest.mark.parametrize("target", ["sm_80", "sm_90a"])
def test_gemm_rs_compiles(target: str) -> None:
    for policy1 in ("full_row", "square"):
        func = p_times_v(128, 64, 64, 64, 128, policy1, "full_row", "copy")
        assert tsir.compile(func, target=target).cubin[:4] == b"\x7fELF"


@pytest.mark.parametrize("m,n1,warps", [(64, 64, 4), (128, 32, 4), (64, 128, 2), (32, 16, 2)])
def test_full_row_accumulator_layout_equals_the_next_a_operand(m: int, n1: int, warps: int) -> None:
    """mma.m16n8k16's f32 accumulator of an M x N1 tile (warps over M only) holds, thread by
    thread and register by register, the A operand of an M x K=N1 m16n8k16 over the same warps."""
    c = make_mma_c_fragment(m, n1, m // warps, n1)
    a = make_mma_a_fragment(m, 64, n1, m // warps, 64)
    assert equivalent(c, a)


def test_transposed_fragment_a_is_refused_at_the_users_line() -> None:
    with pytest.raises(BuildError, match="transpose_A=True needs A in shared memory") as e:
        with T.prim_func("t"):
            with T.Kernel(1, threads=128):
                A_f = T.alloc_fragment((32, 64), "float16")
                B_s = T.alloc_shared((32, 64), "float16")
                C_f = T.alloc_fragment((64, 64), "float32")
                T.gemm(A_f, B_s, C_f, transpose_A=True)
    assert e.value.loc is not None and e.value.loc.filename == __file__


@pytest.mark.gpu
@pytest.mark.parametrize("policy1", ["full_row", "square"])
def test_p_times_v_on_the_gpu(policy1: str) -> None:
    """The register-A gemm (full_row) and the staged one (square) against torch."""
    torch = pytest.importorskip("torch")
    func = p_times_v(128, 64, 64, 64, 128, policy1, "full_row", "parallel")
    k = tsir.compile(func, target="cuda")
    q, kt = (torch.randn(n, 64, device="cuda", dtype=torch.float16) * 0.3 for n in (128, 64))
    v = torch.randn(64, 64, device="cuda", dtype=torch.float16)
    o = torch.full((128, 64), float("nan"), device="cuda")
    k(q, kt, v, o)
    p = (q.float() @ kt.float().T * 0.5).half()
    torch.testing.assert_close(o, p.float() @ v.float(), rtol=1e-2, atol=1e-2)
