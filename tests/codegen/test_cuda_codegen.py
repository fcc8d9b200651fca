"""The generated CUDA: vector accesses where legal, guards where needed, readable and minimal."""

from __future__ import annotations

import pytest
from filecheck_util import filecheck

import tsir
from tsir import T


def cuda(func: tsir.PrimFunc, target: str = "sm_90a") -> str:
    from tsir.codegen.cuda import generate_cuda

    return generate_cuda(tsir.lower(func, target).module)


def elementwise(N: int, dtype: str = "float32", bm: int = 4) -> tsir.PrimFunc:
    with T.prim_func("ew") as f:
        M = T.dynamic("M")
        X = T.param("X", (M, N), dtype)
        W = T.param("W", (N,), dtype)
        Y = T.param("Y", (M, N), dtype)
        with T.Kernel(T.ceildiv(N, 256), T.ceildiv(M, bm), threads=256) as (bx, by):
            for i, j in T.Parallel(bm, 256):
                Y[by * bm + i, bx * 256 + j] = T.exp(X[by * bm + i, bx * 256 + j]) * W[bx * 256 + j]
    return f.func


def test_kernel_signature_and_vector_accesses() -> None:
    filecheck(
        cuda(elementwise(1024)),
        r"""
CHECK: extern "C" __global__ void __launch_bounds__(256) ew_kernel(
CHECK-NEXT: const float* __restrict__ X,
CHECK-NEXT: const float* __restrict__ W,
CHECK-NEXT: float* __restrict__ Y,
CHECK-NEXT: int M) {
CHECK: if ([[ROW:.*]] < M) {
CHECK: alignas(16) float [[XV:X_v[0-9]+]][4];
CHECK: *reinterpret_cast<uint4*>([[XV]]) = *reinterpret_cast<const uint4*>(X + {{.*}});
CHECK: #pragma unroll
CHECK: = expf([[XV]][i_v]) * W_v{{[0-9]+}}[i_v];
CHECK: *reinterpret_cast<uint4*>(Y + {{.*}}) = *reinterpret_cast<const uint4*>(Y_v{{[0-9]+}});
""",
    )


def test_half_precision_vectors_are_eight_wide() -> None:
    src = cuda(elementwise(1024, "float16", bm=8))
    filecheck(
        src,
        r"""
CHECK: #include <cuda_fp16.h>
CHECK: alignas(16) half X_v{{[0-9]+}}[8];
CHECK: hexp(
""",
    )


def test_unaligned_rows_stay_scalar() -> None:
    """N = 1022: rows of X and Y start at offsets that are not multiples of 4, so their accesses
    stay scalar; W (1-D, tile-aligned) is still loaded 16 bytes at a time in the in-bounds path."""
    src = cuda(elementwise(1022))
    assert "reinterpret_cast<const uint4*>(X" not in src
    assert "reinterpret_cast<uint4*>(Y" not in src
    assert "reinterpret_cast<const uint4*>(W" in src
    assert "< 1022" in src


def test_tail_gets_a_vector_fast_path_and_a_scalar_tail() -> None:
    with T.prim_func("add") as f:
        n = T.dynamic("n")
        A = T.param("A", (n,), "float32")
        C = T.param("C", (n,), "float32")
        with T.Kernel(T.ceildiv(n, 1024), threads=256) as bx:
            for i in T.Parallel(1024):
                C[bx * 1024 + i] = A[bx * 1024 + i] + 1.0
    filecheck(
        cuda(f.func),
        r"""
CHECK: if (bx * 1024 + tx * 4 + 3 < n) {
CHECK: *reinterpret_cast<uint4*>(A_v{{[0-9]+}}) =
CHECK: } else {
CHECK: for (int i_v = 0; i_v < 4; ++i_v) {
CHECK-NEXT: if (bx * 1024 + i_v + tx * 4 < n) {
""",
    )


def test_shared_memory_pool_and_barrier() -> None:
    with T.prim_func("tr") as f:
        A = T.param("A", (256, 256), "float32")
        B = T.param("B", (256, 256), "float32")
        with T.Kernel(4, 4, threads=256) as (bx, by):
            S = T.alloc_shared((64, 65), "float32")
            T.copy(A[by * 64, bx * 64], S[0:64, 0:64])
            for i, j in T.Parallel(64, 64):
                B[bx * 64 + i, by * 64 + j] = S[j, i]
    filecheck(
        cuda(f.func),
        r"""
CHECK: extern __shared__ __align__(1024) unsigned char buf_dyn_shmem[];
CHECK-NEXT: float* S = reinterpret_cast<float*>(buf_dyn_shmem + 0);
CHECK: S[
CHECK: __syncthreads();
CHECK-NOT: __syncthreads();
CHECK: *reinterpret_cast<uint4*>(B + {{.*}})
""",
    )


def test_floor_division_of_possibly_negative_values_uses_the_helper() -> None:
    with T.prim_func("fd") as f:
        A = T.param("A", (64,), "int32")
        off = T.scalar("off", "int32")
        with T.Kernel(1, threads=64):
            tx = T.get_thread_binding(0)
            A[tx] = (tx - off) // 4 + (tx - off) % 4
    filecheck(
        cuda(f.func),
        r"""
CHECK: #include "tsir/common.h"
CHECK: tsir::floordiv(tx - off, 4) + tsir::floormod(tx - off, 4)
""",
    )


def test_non_negative_floor_division_is_plain_c() -> None:
    src = cuda(elementwise(1024))
    assert "tsir::floordiv" not in src and "tsir/common.h" not in src


@pytest.mark.parametrize(
    "dtype,ctype",
    [
        ("int8", "signed char"),
        ("uint64", "unsigned long long"),
        ("bfloat16", "__nv_bfloat16"),
        ("float64", "double"),
        ("float8_e4m3", "__nv_fp8_e4m3"),
    ],
)
def test_dtypes_compile(dtype: str, ctype: str) -> None:
    with T.prim_func("cp") as f:
        A = T.param("A", (256,), dtype)
        B = T.param("B", (256,), dtype)
        with T.Kernel(1, threads=64):
            T.copy(A, B)
    k = tsir.compile(f.func, target="sm_90a")
    assert f"const {ctype}* __restrict__ A" in k.cuda_source
    assert k.cubin[:4] == b"\x7fELF"


def test_math_and_casts_compile_for_every_float_type() -> None:
    for dtype in ("float16", "bfloat16", "float32", "float64"):
        with T.prim_func("m") as f:
            A = T.param("A", (128,), dtype)
            B = T.param("B", (128,), "int32")
            with T.Kernel(1, threads=128):
                for i in T.Parallel(128):
                    x = A[i]
                    A[i] = T.max(
                        T.sqrt(T.abs(x)) + T.exp2(x) - T.log(T.abs(x) + 1.0),
                        T.infinity(dtype) * 0.0,
                    )
                    B[i] = T.cast(T.rsqrt(T.abs(x) + 1.0), "int32")
        k = tsir.compile(f.func, target="sm_80")
        assert k.cubin[:4] == b"\x7fELF", dtype
