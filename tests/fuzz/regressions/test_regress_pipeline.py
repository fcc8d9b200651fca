"""Class `pipelined-stage-read-after-loop` (the construct whose CUDA does not compile; found by the
`loop` family in about 25% of programs that read the staged tile after a pipelined loop).

After `for ko in T.Pipelined(n, num_stages=2 or more): T.copy(X[...], x_s); ...`, reading `x_s`
(which holds the last chunk) refers to the original single buffer, which InjectSoftwarePipeline
replaced by its multi-buffered copy and no longer allocates. First diverging stage:
InjectSoftwarePipeline (the interpreter: "buffer `x` (shared.dyn) is used where it is not allocated
or bound"); the generated CUDA names the vanished buffer and NVRTC fails with
`error: identifier "x_1" is undefined`. num_stages 0 and 1 are fine. The same happens when a
second loop reuses the staged buffer (the split-k rms_norm shape with one staging tile).
"""

from __future__ import annotations

import numpy as np
import pytest
from fuzzlib.program import ParamSpec
from fuzzlib.regress import assert_ok, check

import tsir
from tsir import T


def last_chunk_after_pipelined_loop(
    num_stages: int, M: int = 4, N: int = 64, bm: int = 4, bk: int = 16
) -> tsir.PrimFunc:
    with T.prim_func("last_chunk") as f:
        X = T.param("X", (M, N), "float32")
        L = T.param("L", (M, bk), "float32")
        S = T.param("S", (M, bk), "float32")
        with T.Kernel(T.ceildiv(M, bm), threads=64) as bx:
            x_s = T.alloc_shared((bm, bk), "float32")
            acc = T.alloc_fragment((bm, bk), "float32")
            T.clear(acc)
            for ko in T.Pipelined(T.ceildiv(N, bk), num_stages=num_stages):
                T.copy(X[bx * bm, ko * bk], x_s)
                for i, j in T.Parallel(bm, bk):
                    acc[i, j] = acc[i, j] + x_s[i, j]
            T.copy(x_s, L[bx * bm, 0])  # the last chunk: refers to a buffer the pipeliner removed
            T.copy(acc, S[bx * bm, 0])
    return f.func


def last_chunk_reference(X: np.ndarray, L: np.ndarray, S: np.ndarray) -> None:
    L[...] = X[:, -16:]
    S[...] = X.reshape(X.shape[0], -1, 16).sum(axis=1)


@pytest.mark.parametrize("num_stages", [2, 3])
def test_staged_tile_read_after_pipelined_loop(num_stages: int) -> None:
    params = [
        ParamSpec("X", "float32", (4, 64)),
        ParamSpec("L", "float32", (4, 16), output=True),
        ParamSpec("S", "float32", (4, 16), output=True),
    ]
    assert_ok(
        check(lambda: last_chunk_after_pipelined_loop(num_stages), last_chunk_reference, params)
    )


def staging_tile_reused_by_second_loop(
    num_stages: int, M: int = 4, N: int = 64, bm: int = 4, bk: int = 16
) -> tsir.PrimFunc:
    with T.prim_func("reused_stage") as f:
        X = T.param("X", (M, N), "float32")
        Y = T.param("Y", (M, N), "float32")
        with T.Kernel(T.ceildiv(M, bm), threads=64) as bx:
            x_s = T.alloc_shared((bm, bk), "float32")
            acc = T.alloc_fragment((bm, bk), "float32")
            r = T.alloc_fragment((bm,), "float32")
            y = T.alloc_fragment((bm, bk), "float32")
            T.clear(acc)
            for ko in T.Pipelined(T.ceildiv(N, bk), num_stages=num_stages):
                T.copy(X[bx * bm, ko * bk], x_s)
                for i, j in T.Parallel(bm, bk):
                    acc[i, j] = acc[i, j] + x_s[i, j]
            T.reduce_sum(acc, r, dim=1)
            for ko in T.serial(T.ceildiv(N, bk)):
                T.copy(X[bx * bm, ko * bk], x_s)
                for i, j in T.Parallel(bm, bk):
                    y[i, j] = x_s[i, j] + r[i]
                T.copy(y, Y[bx * bm, ko * bk])
    return f.func


def reused_stage_reference(X: np.ndarray, Y: np.ndarray) -> None:
    Y[...] = X + X.sum(axis=1, keepdims=True)


def test_staged_tile_reused_by_a_second_loop() -> None:
    params = [ParamSpec("X", "float32", (4, 64)), ParamSpec("Y", "float32", (4, 64), output=True)]
    assert_ok(check(lambda: staging_tile_reused_by_second_loop(2), reused_stage_reference, params))


# Class `pipelined-loop-reentry-war` (found by the `gemm` family in about 5% of programs with an
# outer loop around a pipelined K loop): the barriers inside a T.Pipelined(num_stages >= 2) loop are
# right, but when the loop runs again (here for a second column tile), its prologue refills the
# stages with no barrier after the previous pass's last gemm, which may still be reading the same
# stage (num_stages = 3 with 4 iterations: the last gemm reads stage 0, the prologue writes it).
# First diverging stage: ThreadSync, "data race on shared memory `A_s` ... read (and other threads)
# by thread (32,) ... gemm_ss ... write by thread ...".


def pipelined_gemm_twice(
    num_stages: int = 3,
    M: int = 32,
    N: int = 64,
    K: int = 64,
    bm: int = 32,
    bn: int = 32,
    bk: int = 16,
) -> tsir.PrimFunc:
    with T.prim_func("pipelined_gemm_twice") as f:
        A = T.param("A", (M, K), "float16")
        B = T.param("B", (K, N), "float16")
        C = T.param("C", (M, N), "float32")
        with T.Kernel(T.ceildiv(N, 2 * bn), T.ceildiv(M, bm), threads=64) as (bx, by):
            A_s = T.alloc_shared((bm, bk), "float16")
            B_s = T.alloc_shared((bk, bn), "float16")
            C_f = T.alloc_fragment((bm, bn), "float32")
            for nb in T.serial(2):
                T.clear(C_f)
                for ko in T.Pipelined(T.ceildiv(K, bk), num_stages=num_stages):
                    T.copy(A[by * bm, ko * bk], A_s)
                    T.copy(B[ko * bk, (bx * 2 + nb) * bn], B_s)
                    T.gemm(A_s, B_s, C_f)
                T.copy(C_f, C[by * bm, (bx * 2 + nb) * bn])
    return f.func


def matmul_reference(A: np.ndarray, B: np.ndarray, C: np.ndarray) -> None:
    C[...] = A @ B


def test_pipelined_loop_run_twice() -> None:
    params = [
        ParamSpec("A", "float16", (32, 64), -2, 2),
        ParamSpec("B", "float16", (64, 64), -2, 2),
        ParamSpec("C", "float32", (32, 64), output=True),
    ]
    assert_ok(check(pipelined_gemm_twice, matmul_reference, params))
