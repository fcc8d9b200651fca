"""Views (`T.view`, `T.reshape`, `T.Tensor(shape, dtype, buf.data)`, tsir/builder/views.py): new
shapes and dtypes over the storage of global and shared buffers, checked at every stage against
the reference interpreter, compiled with NVRTC, and refused with the user's line where they
cannot work."""

from __future__ import annotations

import numpy as np
import pytest

import tsir
from tsir import T
from tsir.errors import BuildError, LayoutConflictError
from tsir.interpret import check_stages
from tsir.script import Tensor


def reversed_through_shared_view(M: int, N: int, threads: int) -> tsir.PrimFunc:
    """A tile copied into shared memory row by row is read back through a flat view in reverse:
    another thread reads each element than the one that wrote it."""
    with T.prim_func("rev") as f:
        A = T.param("A", (M, N), "float32")
        B = T.param("B", (M * N,), "float32")
        with T.Kernel(1, threads=threads):
            S = T.alloc_shared((M, N), "float32")
            T.copy(A, S)
            flat = T.view(S, (M * N,))
            for i in T.Parallel(M * N):
                B[i] = flat[M * N - 1 - i] * 2.0
    return f.func


@pytest.mark.parametrize("M,N,threads", [(8, 16, 64), (3, 10, 96), (5, 7, 32)])
def test_shared_view_is_ordered_after_the_writes_of_its_base(M: int, N: int, threads: int) -> None:
    """ThreadSync sees a view as its base's memory: the reversed read waits for the copy (without
    the alias the thread-level interpreter reports the race)."""
    a = np.random.default_rng(0).standard_normal((M, N)).astype(np.float32)
    report = check_stages(
        reversed_through_shared_view(M, N, threads), [a, np.zeros(M * N, np.float32)]
    )
    assert report.ok, str(report)
    np.testing.assert_array_equal(report.reference[1], 2.0 * a.reshape(-1)[::-1])


def test_views_of_global_parameters_read_and_write_them() -> None:
    """T.reshape of an input and T.Tensor(shape, dtype, out.data) of an output (the convolution
    example's `out_flat`), on a ragged shape and 96 threads."""

    @T.prim_func
    def k(A: Tensor((6, 5, 7), "float32"), B: Tensor((6, 35), "float32")):
        with T.Kernel(1, threads=96):
            A2 = T.reshape(A, (6, 35))
            B3 = Tensor((6, 5, 7), "float32", B.data)
            for i, j in T.Parallel(6, 35):
                B3[i, j // 7, j % 7] = A2[i, j] + 1.0

    a = np.random.default_rng(1).standard_normal((6, 5, 7)).astype(np.float32)
    report = check_stages(k, [a, np.zeros((6, 35), np.float32)])
    assert report.ok, str(report)
    np.testing.assert_array_equal(report.reference[1], a.reshape(6, 35) + 1.0)


def test_view_with_another_dtype_reinterprets_the_bits() -> None:
    """T.view(buf, dtype=...) keeps the bits: float32 read as int32 (global and shared)."""
    with T.prim_func("bits") as f:
        X = T.param("X", (64,), "float32")
        Y = T.param("Y", (2, 64), "int32")
        with T.Kernel(1, threads=64):
            Xi = T.view(X, dtype="int32")
            S = T.alloc_shared((64,), "float32")
            T.copy(X, S)
            Si = T.view(S, (8, 8), "int32")
            for i in T.Parallel(64):
                Y[0, i] = Xi[i]
                Y[1, i] = Si[i // 8, i % 8]
    x = np.random.default_rng(2).standard_normal(64).astype(np.float32)
    report = check_stages(f.func, [x, np.zeros((2, 64), np.int32)])
    assert report.ok, str(report)
    np.testing.assert_array_equal(report.reference[1], np.stack([x.view(np.int32)] * 2))


@pytest.mark.parametrize("target", ["sm_80", "sm_90a"])
def test_views_compile_with_nvrtc(target: str) -> None:
    """A view of a `const` input stays const; a write through a view of an output makes that
    output non-const."""
    with T.prim_func("views") as f:
        A = T.param("A", (8, 16), "float16")
        B = T.param("B", (8, 16), "float16")
        with T.Kernel(1, threads=128):
            Af = T.reshape(A, (128,))
            Bf = T.reshape(B, (128,))
            for i in T.Parallel(128):
                Bf[i] = Af[127 - i]
    k = tsir.compile(f.func, target=target)
    assert "const half* __restrict__ A" in k.cuda_source
    assert (
        "half* __restrict__ B" in k.cuda_source
        and "const half* __restrict__ B" not in k.cuda_source
    )
    assert k.cubin[:4] == b"\x7fELF"


def _raises_here(exc: type[Exception], text: str, build) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(exc, match=text) as e:
        build()
    assert e.value.loc is not None and e.value.loc.filename == __file__


def test_view_errors_name_the_problem_and_the_line() -> None:
    def fragment_view() -> None:
        with T.prim_func("f"):
            with T.Kernel(1, threads=32):
                F = T.alloc_fragment((32,), "float32")
                T.view(F, (4, 8))

    def wrong_size() -> None:
        with T.prim_func("f"):
            A = T.param("A", (8, 16), "float32")
            with T.Kernel(1, threads=32):
                T.reshape(A, (8, 15))

    def larger_than_base() -> None:
        with T.prim_func("f"):
            A = T.param("A", (8, 16), "float32")
            with T.Kernel(1, threads=32):
                Tensor((8, 17), "float32", A.data)

    def outside_kernel() -> None:
        with T.prim_func("f"):
            A = T.param("A", (8, 16), "float32")
            T.reshape(A, (128,))

    def dynamic_shared() -> None:
        with T.prim_func("f"):
            n = T.dynamic("n")
            T.param("A", (n,), "float32")
            with T.Kernel(1, threads=32):
                S = T.alloc_shared((64,), "float32")
                T.view(S, (n,))

    _raises_here(BuildError, "fragment is spread over the threads' registers", fragment_view)
    _raises_here(BuildError, "must be the same size as it in bits", wrong_size)
    _raises_here(BuildError, "must be no larger than it in bits", larger_than_base)
    _raises_here(BuildError, "inside a `T.Kernel`", outside_kernel)
    _raises_here(BuildError, "needs a constant shape", dynamic_shared)


def test_swizzled_shared_buffer_with_a_view_is_refused() -> None:
    """A swizzle applies to one name's accesses: an annotated swizzle on a viewed shared buffer is
    a LayoutConflictError naming it; without an annotation the gemm operand stays row-major."""
    from tsir.layout import make_swizzled_layout

    def build(annotate: bool) -> tsir.PrimFunc:
        with T.prim_func("g") as f:
            A = T.param("A", (64, 32), "float16")
            B = T.param("B", (32, 64), "float16")
            C = T.param("C", (64, 64), "float32")
            with T.Kernel(1, threads=128):
                A_s = T.alloc_shared((64, 32), "float16")
                B_s = T.alloc_shared((32, 64), "float16")
                C_f = T.alloc_fragment((64, 64), "float32")
                if annotate:
                    T.annotate_layout({A_s: make_swizzled_layout((64, 32), A_s.dtype, True)})
                A_flat = T.view(A_s, (2048,))
                for i in T.Parallel(2048):
                    A_flat[i] = A[i // 32, i % 32]
                T.copy(B, B_s)
                T.clear(C_f)
                T.gemm(A_s, B_s, C_f)
                T.copy(C_f, C)
        return f.func

    with pytest.raises(LayoutConflictError, match="`A_s` has a T.view alias"):
        tsir.lower(build(True), "sm_80")
    rng = np.random.default_rng(3)
    a = rng.standard_normal((64, 32)).astype(np.float16)
    b = rng.standard_normal((32, 64)).astype(np.float16)
    report = check_stages(build(False), [a, b, np.zeros((64, 64), np.float32)], target="sm_80")
    assert report.ok, str(report)
    np.testing.assert_allclose(
        report.reference[2], a.astype(np.float32) @ b.astype(np.float32), rtol=1e-3, atol=1e-3
    )


def test_a_viewed_tile_is_not_staged_by_the_pipeline() -> None:
    """Staging would give the tile one buffer per stage, which its view would not follow: the
    copy stays synchronous, reported under TSIR_EXPLAIN, and the result is right."""
    with T.prim_func("pv") as f:
        A = T.param("A", (8, 64), "float32")
        B = T.param("B", (8, 64), "float32")
        with T.Kernel(1, threads=64):
            S = T.alloc_shared((64,), "float32")
            S2 = T.view(S, (8, 8))
            for k in T.Pipelined(8, num_stages=2):
                T.copy(A[k, :], S)
                for i, j in T.Parallel(8, 8):
                    B[k, i * 8 + j] = S2[j, i]
    a = np.random.default_rng(5).standard_normal((8, 64)).astype(np.float32)
    report = check_stages(f.func, [a, np.zeros((8, 64), np.float32)], target="sm_80")
    assert report.ok, str(report)
    np.testing.assert_array_equal(
        report.reference[1], a.reshape(8, 8, 8).transpose(0, 2, 1).reshape(8, 64)
    )
    notes = [d.message for d in tsir.lower(f.func, "sm_80").report]
    assert any("`S` has a T.view alias" in n for n in notes)


@pytest.mark.gpu
def test_views_on_the_gpu() -> None:
    torch = pytest.importorskip("torch")
    k = tsir.compile(reversed_through_shared_view(8, 16, 64), target="cuda")
    a = torch.randn(8, 16, device="cuda")
    b = torch.zeros(128, device="cuda")
    k(a, b)
    torch.testing.assert_close(b, 2.0 * a.reshape(-1).flip(0))
