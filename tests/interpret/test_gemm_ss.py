"""gemm_ss's reference semantics on hand-written thread-level IR: operand tiles stored through the
swizzle formula of gemm_sm80.h's comment (written here from that comment), the accumulator
scattered by the PTX m16n8 accumulator table; the product must come out as A @ B, and a tile stored
with one swizzle but read with another must not."""

from __future__ import annotations

import numpy as np
import pytest
from irkit import addr, evaluate

import tsir
from tsir import T

M, N, K = 32, 32, 64
THREADS = 128  # 4 warps, 2 x 2: warp tiles of 16 x 16 (MI = 1, NI = 2)


def phys(row, col, swz: int, rows: int, ld: int):
    """The element offset of (row, col): `tile_ptr` of gemm_sm80.h, in IR expressions."""
    if swz == 0:
        return row * ld + col
    span = swz // 2
    o = row * swz + (col % span) * 2
    o = o ^ (((o >> 7) & (swz // 16 - 1)) << 4)
    return ((col // span) * (rows * swz) + o) // 2


def kernel(swz_a: int, swz_b: int, read_a: int | None = None) -> tsir.PrimFunc:
    read_a = swz_a if read_a is None else read_a
    with T.prim_func("gemm") as f:
        A = T.param("A", (M, K), "float16")
        B = T.param("B", (K, N), "float16")
        C = T.param("C", (M, N), "float32")
        with T.Kernel(1, threads=THREADS):
            tx = T.get_thread_binding()
            A_s = T.alloc_shared((M * K,), "float16")
            B_s = T.alloc_shared((K * N,), "float16")
            C_f = T.alloc_local((8,), "float32")
            for e in T.serial(M * K // THREADS):
                i = tx * (M * K // THREADS) + e
                A_s[phys(i // K, i % K, swz_a, M, K)] = A[i // K, i % K]
                B_s[phys(i // N, i % N, swz_b, K, N)] = B[i // N, i % N]
            for r in T.serial(8):
                C_f[r] = 0.0
            T.sync_threads()
            evaluate(
                "int32",
                f"tsir.gemm_sm80.gemm_ss<{M}, {N}, {K}, 2, 2, false, false, {read_a}, {K}, "
                f"{swz_b}, {N}>",
                addr(A_s[0]),
                addr(B_s[0]),
                addr(C_f[0]),
            )
            lane, warp = tx % 32, tx // 32
            for r in T.serial(8):
                ni, i = r // 4, r % 4
                row = warp // 2 * 16 + lane // 4 + 8 * (i // 2)
                col = warp % 2 * 16 + ni * 8 + lane % 4 * 2 + i % 2
                C[row, col] = C_f[r]
    return f.func


def _run(func: tsir.PrimFunc) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    a = rng.standard_normal((M, K)).astype(np.float16)
    b = rng.standard_normal((K, N)).astype(np.float16)
    c = np.full((M, N), np.nan, np.float32)
    tsir.interpret(func, a, b, c)
    return c, a.astype(np.float64) @ b.astype(np.float64)


@pytest.mark.parametrize("swz_a,swz_b", [(0, 0), (32, 32), (64, 64), (128, 64), (128, 0)])
def test_gemm_ss_reads_swizzled_tiles(swz_a: int, swz_b: int) -> None:
    c, want = _run(kernel(swz_a, swz_b))
    np.testing.assert_allclose(c, want, rtol=1e-5, atol=1e-4)


def test_a_wrong_swizzle_gives_a_wrong_answer() -> None:
    c, want = _run(kernel(64, 64, read_a=32))
    assert not np.allclose(c, want, rtol=1e-2, atol=1e-2)


def test_gemm_ss_reads_of_unwritten_accumulators_are_reported() -> None:
    from tsir.interpret import UninitializedReadError

    with T.prim_func("gemm") as f:
        T.param("A", (M, K), "float16")
        with T.Kernel(1, threads=THREADS):
            A_s = T.alloc_shared((M * K,), "float16")
            B_s = T.alloc_shared((K * N,), "float16")
            C_f = T.alloc_local((8,), "float32")
            evaluate(
                "int32",
                f"tsir.gemm_sm80.gemm_ss<{M}, {N}, {K}, 2, 2, false, false, 0, {K}, 0, {N}>",
                addr(A_s[0]),
                addr(B_s[0]),
                addr(C_f[0]),
            )
    with pytest.raises(UninitializedReadError, match="register `C_f`"):
        tsir.interpret(f.func, np.zeros((M, K), np.float16))
