"""GEMMs that keep their pipeline stages in one 3-D shared buffer and hand `T.gemm` one stage of it
(`A_s[ko % stages, :, :]`), the form TileLang programs that pipeline by hand use. Shared by the
CPU tests (test_gemm_staged.py) and the GPU test (test_gemm_staged_gpu.py)."""

from __future__ import annotations

from typing import Any

import tsir
from tsir import T


def hand_pipelined(
    M: int,
    N: int,
    K: int,
    bm: int = 64,
    bn: int = 64,
    bk: int = 32,
    stages: int = 2,
    threads: int = 128,
    dtype: str = "float16",
    transpose_B: bool = False,
    policy: str = "square",
) -> tsir.PrimFunc:
    """A prologue loads stages 0 .. stages-2 (constant stage indices); iteration ko loads k-block
    ko + stages - 1 into stage (ko + stages - 1) % stages and multiplies stage ko % stages."""
    with T.prim_func("hand_pipelined") as f:
        A = T.param("A", (M, K), dtype)
        B = T.param("B", (N, K) if transpose_B else (K, N), dtype)
        C = T.param("C", (M, N), dtype)
        with T.Kernel(T.ceildiv(N, bn), T.ceildiv(M, bm), threads=threads) as (bx, by):
            A_s = T.alloc_shared((stages, bm, bk), dtype)
            B_s = T.alloc_shared((stages, bn, bk) if transpose_B else (stages, bk, bn), dtype)
            C_f = T.alloc_fragment((bm, bn), "float32")
            nk = T.ceildiv(K, bk)

            def load(ko: Any, s: Any) -> None:
                T.copy(A[by * bm, ko * bk], A_s[s, 0:bm, 0:bk])
                if transpose_B:
                    T.copy(B[bx * bn, ko * bk], B_s[s, :, :])
                else:
                    T.copy(B[ko * bk, bx * bn], B_s[s, :, :])

            T.clear(C_f)
            for s in range(stages - 1):
                with T.If(s < nk):
                    load(s, s)
            for ko in T.serial(nk):
                with T.If(ko + stages - 1 < nk):
                    load(ko + stages - 1, (ko + stages - 1) % stages)
                T.gemm(
                    A_s[ko % stages, :, :],
                    B_s[ko % stages, :, :],
                    C_f,
                    transpose_B=transpose_B,
                    policy=policy,
                )
            T.copy(C_f, C[by * bm, bx * bn])
    return f.func


def tma_ring(
    M: int,
    N: int,
    K: int,
    bm: int = 128,
    bn: int = 128,
    bk: int = 64,
    stages: int = 3,
    dtype: str = "float16",
) -> tsir.PrimFunc:
    """Explicit warp roles and mbarriers (sm_90a): warpgroup 1 loads k-block ko into stage
    ko % stages with T.tma_copy once the consumer freed it; warpgroup 0 waits for the stage's
    bytes, multiplies the stage (a dynamic index into the 3-D tiles) and frees it."""
    with T.prim_func("tma_ring") as f:
        A = T.param("A", (M, K), dtype)
        B = T.param("B", (K, N), dtype)
        C = T.param("C", (M, N), dtype)
        with T.Kernel(T.ceildiv(N, bn), T.ceildiv(M, bm), threads=256) as (bx, by):
            A_s = T.alloc_shared((stages, bm, bk), dtype)
            B_s = T.alloc_shared((stages, bk, bn), dtype)
            C_f = T.alloc_fragment((bm, bn), "float32")
            full = T.alloc_barrier([1] * stages)
            empty = T.alloc_barrier([128] * stages)
            with T.ws(0):
                T.clear(C_f)
            for ko in T.serial(T.ceildiv(K, bk)):
                s = ko % stages
                with T.ws(1):
                    T.barrier_wait(empty[s], ko // stages % 2 ^ 1)
                    T.tma_copy(A[by * bm, ko * bk], A_s[s, :, :], barrier=full[s])
                    T.tma_copy(B[ko * bk, bx * bn], B_s[s, :, :], barrier=full[s])
                    with T.If(T.get_thread_binding() == 128):
                        T.barrier_arrive(full[s])
                with T.ws(0):
                    T.barrier_wait(full[s], ko // stages % 2)
                    T.gemm(A_s[s, :, :], B_s[s, :, :], C_f)
                    T.barrier_arrive(empty[s])
            with T.ws(0):
                T.copy(C_f, C[by * bm, bx * bn])
    return f.func


def register_a(
    M: int,
    N: int,
    K: int,
    bm: int = 64,
    bn: int = 64,
    bk: int = 32,
    stages: int = 2,
    threads: int = 128,
    dtype: str = "float16",
) -> tsir.PrimFunc:
    """A register-A gemm (A copied from its stage into a fragment) with a staged B."""
    with T.prim_func("register_a") as f:
        A = T.param("A", (M, K), dtype)
        B = T.param("B", (K, N), dtype)
        C = T.param("C", (M, N), dtype)
        with T.Kernel(T.ceildiv(N, bn), T.ceildiv(M, bm), threads=threads) as (bx, by):
            A_s = T.alloc_shared((stages, bm, bk), dtype)
            B_s = T.alloc_shared((stages, bk, bn), dtype)
            A_f = T.alloc_fragment((bm, bk), dtype)
            C_f = T.alloc_fragment((bm, bn), "float32")
            T.clear(C_f)
            for ko in T.serial(T.ceildiv(K, bk)):
                T.copy(A[by * bm, ko * bk], A_s[ko % stages, :, :])
                T.copy(A_s[ko % stages, :, :], A_f)
                # B after A's registers: with B written first, the barrier before the A_s -> A_f
                # copy also orders B's writes before wgmma_rs, and ThreadSync puts no
                # fence.proxy.async there (a ThreadSync bug that the interpreter catches).
                T.copy(B[ko * bk, bx * bn], B_s[ko % stages, :, :])
                T.gemm(A_f, B_s[ko % stages, :, :], C_f)
            T.copy(C_f, C[by * bm, bx * bn])
    return f.func
