"""T.copy with fragments on either side and any region of them (tsir/tileop/fragment_copy.py):
slices of a fragment to and from shared and global memory, fragment to fragment in the same
layout (registers) and in another layout or region (through shared memory), checked at every
stage against the interpreter on ragged shapes and several thread counts."""

from __future__ import annotations

import numpy as np
import pytest

import tsir
from tsir import T
from tsir.interpret import check_stages


@pytest.mark.parametrize("threads", [32, 64, 256])
def test_fragment_row_slice_to_shared_then_global(threads: int) -> None:
    """TileLang's flash decoding: `T.copy(acc_o[:valid_block_H, :], O_shared)` (a gemm
    accumulator: only its first rows go out)."""
    M, N, K, valid = 64, 32, 32, 5
    with T.prim_func("slice_out") as f:
        A = T.param("A", (M, K), "float16")
        B = T.param("B", (K, N), "float16")
        O = T.param("O", (valid, N), "float16")
        with T.Kernel(1, threads=threads):
            A_s = T.alloc_shared((M, K), "float16")
            B_s = T.alloc_shared((K, N), "float16")
            O_s = T.alloc_shared((valid, N), "float16")
            acc = T.alloc_fragment((M, N), "float32")
            T.copy(A, A_s)
            T.copy(B, B_s)
            T.gemm(A_s, B_s, acc, clear_accum=True)
            T.copy(acc[:valid, :], O_s)
            T.copy(O_s, O)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((M, K)).astype(np.float16)
    b = rng.standard_normal((K, N)).astype(np.float16)
    report = check_stages(f.func, [a, b, np.zeros((valid, N), np.float16)], target="sm_80")
    assert report.ok, str(report)
    want = (a.astype(np.float32) @ b.astype(np.float32))[:valid]
    np.testing.assert_allclose(report.reference[2], want, rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("threads", [64, 128])
def test_fragment_regions_both_ways(threads: int) -> None:
    """Global -> a column band of a fragment; a row band of it -> global at an offset; fragment
    -> another fragment of its layout over one region (registers), and over a shifted region
    (through shared memory)."""
    R, C = 12, 40
    with T.prim_func("regions") as f:
        X = T.param("X", (R, C), "float32")
        Y = T.param("Y", (R, C), "float32")
        Z = T.param("Z", (R, C), "float32")
        with T.Kernel(1, threads=threads):
            F = T.alloc_fragment((R, C), "float32")
            G = T.alloc_fragment((R, C), "float32")
            T.fill(F, -1.0)
            T.copy(X[:, 8:24], F[:, 8:24])
            for i, j in T.Parallel(R, C):  # G shares F's layout
                G[i, j] = F[i, j] * 0.0
            T.copy(F[2:7, :], Y[3:8, :])
            T.copy(F[1:9, 4:20], G[1:9, 4:20])
            T.copy(F[0:4, 8:24], G[8:12, 16:32])
            T.copy(G, Z)
    x = np.random.default_rng(1).standard_normal((R, C)).astype(np.float32)
    report = check_stages(
        f.func, [x, np.zeros((R, C), np.float32), np.zeros((R, C), np.float32)], target="sm_80"
    )
    assert report.ok, str(report)
    f_want = np.full((R, C), -1.0, np.float32)
    f_want[:, 8:24] = x[:, 8:24]
    y_want = np.zeros((R, C), np.float32)
    y_want[3:8] = f_want[2:7]
    z_want = np.zeros((R, C), np.float32)
    z_want[1:9, 4:20] = f_want[1:9, 4:20]
    z_want[8:12, 16:32] = f_want[0:4, 8:24]
    np.testing.assert_array_equal(report.reference[1], y_want)
    np.testing.assert_array_equal(report.reference[2], z_want)


def test_copy_between_fragments_of_different_layouts_goes_through_shared_memory() -> None:
    """A gemm accumulator (mma layout) copied to a fragment annotated with another layout: the
    copy stages through shared memory and says so under TSIR_EXPLAIN."""
    from tsir.layout import Fragment

    with T.prim_func("convert") as f:
        A = T.param("A", (32, 16), "float16")
        B = T.param("B", (16, 32), "float16")
        Y = T.param("Y", (32, 32), "float32")
        with T.Kernel(1, threads=64):
            A_s = T.alloc_shared((32, 16), "float16")
            B_s = T.alloc_shared((16, 32), "float16")
            acc = T.alloc_fragment((32, 32), "float32")
            other = T.alloc_fragment((32, 32), "float32")
            T.annotate_layout(
                {
                    other: Fragment.from_fn(
                        (32, 32), lambda i, j: i * 2 + j // 16, lambda i, j: j % 16
                    )
                }
            )
            T.copy(A, A_s)
            T.copy(B, B_s)
            T.gemm(A_s, B_s, acc, clear_accum=True)
            T.copy(acc, other)
            T.copy(other, Y)
    rng = np.random.default_rng(2)
    a = rng.standard_normal((32, 16)).astype(np.float16)
    b = rng.standard_normal((16, 32)).astype(np.float16)
    report = check_stages(f.func, [a, b, np.zeros((32, 32), np.float32)], target="sm_80")
    assert report.ok, str(report)
    lowered = tsir.lower(f.func, "sm_80")
    assert any(
        "through shared memory" in d.message and "`acc` to `other`" in d.message
        for d in lowered.report
    )


@pytest.mark.parametrize("target", ["sm_80", "sm_90a"])
def test_fragment_slice_copies_compile(target: str) -> None:
    with T.prim_func("s") as f:
        X = T.param("X", (64, 64), "float16")
        Y = T.param("Y", (8, 64), "float16")
        with T.Kernel(1, threads=128):
            F = T.alloc_fragment((64, 64), "float32")
            T.copy(X, F)
            T.copy(F[:8, :], Y)
    assert tsir.compile(f.func, target=target).cubin[:4] == b"\x7fELF"


@pytest.mark.gpu
def test_fragment_slices_on_the_gpu() -> None:
    torch = pytest.importorskip("torch")
    R, C = 12, 40
    with T.prim_func("regions_gpu") as f:
        X = T.param("X", (R, C), "float32")
        Y = T.param("Y", (R, C), "float32")
        Z = T.param("Z", (R, C), "float32")
        with T.Kernel(1, threads=128):
            F = T.alloc_fragment((R, C), "float32")
            G = T.alloc_fragment((R, C), "float32")
            T.fill(F, -1.0)
            T.copy(X[:, 8:24], F[:, 8:24])
            for i, j in T.Parallel(R, C):
                G[i, j] = F[i, j] * 0.0
            T.copy(F[2:7, :], Y[3:8, :])
            T.copy(F[0:4, 8:24], G[8:12, 16:32])
            T.copy(G, Z)
    k = tsir.compile(f.func, target="cuda")
    x = torch.randn(R, C, device="cuda")
    y, z = torch.zeros(R, C, device="cuda"), torch.zeros(R, C, device="cuda")
    k(x, y, z)
    fw = torch.full((R, C), -1.0, device="cuda")
    fw[:, 8:24] = x[:, 8:24]
    yw = torch.zeros(R, C, device="cuda")
    yw[3:8] = fw[2:7]
    zw = torch.zeros(R, C, device="cuda")
    zw[8:12, 16:32] = fw[0:4, 8:24]
    torch.testing.assert_close(y, yw)
    torch.testing.assert_close(z, zw)
