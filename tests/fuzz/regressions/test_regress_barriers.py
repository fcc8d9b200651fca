"""Shared-memory hazards with no barrier, found by the `gemm` and `thread` families.

Class `missing-barrier-gemm-shared` (issue 9's first class; about 60% of gemm programs without
user barriers): a gemm reads shared tiles that a copy or a T.Parallel nest just wrote, and the
next iteration's writes follow the gemm, with no `__syncthreads()` either side. ThreadSync counts
the `&A_s[...]` handed to `gemm_ss` as a write only. First diverging stage: ThreadSync (the race
detector fires there: "data race on shared memory `A_s` ... write by thread ... read by thread ...
gemm_ss"). Affects `T.serial` loops, `T.Pipelined(num_stages=0 or 1)`, a single gemm without a
loop, and any pipelined loop whose shared operand is written by a T.Parallel nest.

Class `shared-atomic-after-init-no-barrier` (issue 9's second class; about 70% of histogram
programs): a shared histogram is zeroed (T.clear, a T.Parallel nest, or `tx < nb` threads) and
then incremented with `T.atomic_add` by other threads, with no barrier between: "data race on
shared memory `H_s` ... write by thread ... H_s[tx] = 0 ... atomic write by thread ...". Also
between the atomics and the reads that publish the histogram.
"""

from __future__ import annotations

import numpy as np
import pytest
from fuzzlib.program import ParamSpec
from fuzzlib.regress import assert_ok, check

import tsir
from tsir import T

LOOPS = {
    "serial": lambda n: T.serial(n),
    "pipelined0": lambda n: T.Pipelined(n, num_stages=0),
    "pipelined1": lambda n: T.Pipelined(n, num_stages=1),
}


def gemm_in_loop(
    loop: str, M: int = 32, N: int = 32, K: int = 64, bm: int = 32, bn: int = 32, bk: int = 16
) -> tsir.PrimFunc:
    with T.prim_func("gemm_in_loop") as f:
        A = T.param("A", (M, K), "float16")
        B = T.param("B", (K, N), "float16")
        C = T.param("C", (M, N), "float32")
        with T.Kernel(T.ceildiv(N, bn), T.ceildiv(M, bm), threads=128) as (bx, by):
            A_s = T.alloc_shared((bm, bk), "float16")
            B_s = T.alloc_shared((bk, bn), "float16")
            C_f = T.alloc_fragment((bm, bn), "float32")
            T.clear(C_f)
            for ko in LOOPS[loop](T.ceildiv(K, bk)):
                T.copy(A[by * bm, ko * bk], A_s)
                T.copy(B[ko * bk, bx * bn], B_s)
                T.gemm(A_s, B_s, C_f)
            T.copy(C_f, C[by * bm, bx * bn])
    return f.func


def gemm_parallel_staged(
    num_stages: int, M: int = 32, N: int = 32, K: int = 64, bm: int = 32, bn: int = 32, bk: int = 16
) -> tsir.PrimFunc:
    """A shared operand written by a T.Parallel nest (here: scaled by 2) and fed to a gemm."""
    with T.prim_func("gemm_parallel_staged") as f:
        A = T.param("A", (M, K), "float16")
        B = T.param("B", (K, N), "float16")
        C = T.param("C", (M, N), "float32")
        with T.Kernel(T.ceildiv(N, bn), T.ceildiv(M, bm), threads=128) as (bx, by):
            A_s = T.alloc_shared((bm, bk), "float16")
            B_s = T.alloc_shared((bk, bn), "float16")
            C_f = T.alloc_fragment((bm, bn), "float32")
            T.clear(C_f)
            for ko in T.Pipelined(T.ceildiv(K, bk), num_stages=num_stages):
                for i, k in T.Parallel(bm, bk):
                    A_s[i, k] = A[by * bm + i, ko * bk + k] * 2
                T.copy(B[ko * bk, bx * bn], B_s)
                T.gemm(A_s, B_s, C_f)
            T.copy(C_f, C[by * bm, bx * bn])
    return f.func


def gemm_params(M: int = 32, N: int = 32, K: int = 64) -> list[ParamSpec]:
    return [
        ParamSpec("A", "float16", (M, K), -2, 2),
        ParamSpec("B", "float16", (K, N), -2, 2),
        ParamSpec("C", "float32", (M, N), output=True),
    ]


def gemm_reference(A: np.ndarray, B: np.ndarray, C: np.ndarray) -> None:
    C[...] = A @ B


def gemm_x2_reference(A: np.ndarray, B: np.ndarray, C: np.ndarray) -> None:
    C[...] = (2 * A) @ B


@pytest.mark.parametrize("loop", sorted(LOOPS))
def test_gemm_in_unpipelined_loop(loop: str) -> None:
    assert_ok(check(lambda: gemm_in_loop(loop), gemm_reference, gemm_params()))


@pytest.mark.parametrize("num_stages", [0, 2])
def test_shared_tile_written_by_parallel_then_gemm(num_stages: int) -> None:
    assert_ok(check(lambda: gemm_parallel_staged(num_stages), gemm_x2_reference, gemm_params()))


def shared_histogram(
    init: str, M: int = 8, N: int = 32, nb: int = 16, bm: int = 4
) -> tsir.PrimFunc:
    with T.prim_func("shared_histogram") as f:
        X = T.param("X", (M, N), "int32")
        H = T.param("H", (nb,), "int32")
        with T.Kernel(T.ceildiv(M, bm), threads=128) as bx:
            tx = T.get_thread_binding()
            H_s = T.alloc_shared((nb,), "int32")
            if init == "clear":
                T.clear(H_s)
            else:
                with T.If(tx < nb):
                    H_s[tx] = 0
            for i, j in T.Parallel(bm, N):
                T.atomic_add(H_s[X[bx * bm + i, j] % nb], 1)
            for i in T.Parallel(nb):
                T.atomic_add(H[i], H_s[i])
    return f.func


def histogram_reference(X: np.ndarray, H: np.ndarray) -> None:
    H[...] += np.bincount(np.mod(X, H.shape[0]).reshape(-1), minlength=H.shape[0])


@pytest.mark.parametrize("init", ["clear", "thread_if"])
def test_shared_histogram(init: str) -> None:
    params = [ParamSpec("X", "int32", (8, 32), -3, 20), ParamSpec("H", "int32", (16,), output=True)]
    assert_ok(check(lambda: shared_histogram(init), histogram_reference, params))


# Class `barrier-in-divergent-branch` (found by the `tile` family): a T.Parallel nest with a
# data-dependent `with T.If(x[i, j] > 0): s[i, j] = ...` / `T.Else()` on a shared tile, where each
# thread owns one element, gets its `__syncthreads()` inside the branches. First diverging stage:
# ThreadSync, "__syncthreads() reached by 17 of the 32 threads of block (0,); the others never
# reach it" (a deadlock or undefined behaviour on the GPU).


def data_dependent_shared_update(threads: int = 32, bm: int = 2, bn: int = 16) -> tsir.PrimFunc:
    with T.prim_func("data_dependent_shared_update") as f:
        X = T.param("X", (bm, bn), "float32")
        Y = T.param("Y", (bm, bn), "float32")
        with T.Kernel(1, threads=threads):
            x = T.alloc_fragment((bm, bn), "float32")
            s = T.alloc_shared((bm, bn), "float32")
            T.copy(X[0, 0], x)
            for i, j in T.Parallel(bm, bn):
                s[i, j] = 0.5
            for i, j in T.Parallel(bm, bn):
                with T.If(x[i, j] > 0.0):
                    s[i, j] = 2.0
                with T.Else():
                    s[i, j] = s[i, j] + 1.0
            T.copy(s, Y[0, 0])
    return f.func


def data_dependent_reference(X: np.ndarray, Y: np.ndarray) -> None:
    Y[...] = np.where(X > 0, 2.0, 1.5)


def test_no_barrier_inside_a_data_dependent_branch() -> None:
    params = [ParamSpec("X", "float32", (2, 16)), ParamSpec("Y", "float32", (2, 16), output=True)]
    assert_ok(check(data_dependent_shared_update, data_dependent_reference, params))


# Class `shared-waw-no-barrier` (found by the `tile` family, about 0.2% of programs): a shared tile
# written by one op (`T.copy(x, s)` from a fragment) and rewritten by the next (a T.Parallel nest)
# with another thread mapping (N = 100 is not a multiple of the 32 threads) gets no barrier
# between the two writes, so an element can end with the first op's value. First diverging stage:
# ThreadSync, "data race on shared memory `s` ... write by thread (1,) ... s[0, i_o * 4 + tx] =
# x[i_o] ... write by thread (0,) ...". ThreadSync orders write -> read and read -> write only.


def shared_rewritten(N: int = 100, threads: int = 32) -> tsir.PrimFunc:
    with T.prim_func("shared_rewritten") as f:
        X = T.param("X", (1, N), "float32")
        Y = T.param("Y", (1, N), "float32")
        with T.Kernel(1, threads=threads):
            x = T.alloc_fragment((1, N), "float32")
            s = T.alloc_shared((1, N), "float32")
            T.copy(X[0, 0], x)
            T.copy(x, s)
            for i, j in T.Parallel(1, N):
                s[i, j] = 2.0
            T.copy(s, Y[0, 0])
    return f.func


def rewritten_reference(X: np.ndarray, Y: np.ndarray) -> None:
    Y[...] = 2.0


def test_barrier_between_two_writes_of_a_shared_tile() -> None:
    params = [ParamSpec("X", "float32", (1, 100)), ParamSpec("Y", "float32", (1, 100), output=True)]
    assert_ok(check(shared_rewritten, rewritten_reference, params))
