"""Class `interp-tile-local-per-thread` (a limitation of the interpreter, not of the compiler;
found by the `thread` family in every `gemv` program).

TileLang's split-k gemv (examples/gemv) keeps per-thread partial sums in `T.alloc_local` buffers
written with thread-dependent values (`A_local[k] = A[bk * BLOCK_K + tk * TILE_K + k]`). The
tile-level interpreter treats a local buffer as one value per block and stops with "threads write
different values ... to element 0 of `A_local` in one statement; its tile-level meaning is
ambiguous", so no stage can be compared with the tile level (the fuzz harness falls back to
holding the final stage to the numpy model). `T.alloc_local` is per-thread storage in TileLang
(and in tsir's own lowering); the tile level should give each thread its own copy.
"""

from __future__ import annotations

import numpy as np
from fuzzlib.numerics import rnd

import tsir
from tsir import T


def splitk_gemv(
    N: int = 8, K: int = 64, BLOCK_N: int = 4, reduce_threads: int = 8, TILE_K: int = 4
) -> tsir.PrimFunc:
    BLOCK_K = reduce_threads * TILE_K
    with T.prim_func("splitk_gemv") as f:
        A = T.param("A", (K,), "float16")
        B = T.param("B", (N, K), "float16")
        C = T.param("C", (N,), "float16")
        with T.Kernel(T.ceildiv(N, BLOCK_N), threads=(BLOCK_N, reduce_threads)) as bn:
            tn = T.get_thread_binding(0)
            tk = T.get_thread_binding(1)
            A_local = T.alloc_local((TILE_K,), "float16")
            B_local = T.alloc_local((TILE_K,), "float16")
            C_shared = T.alloc_shared((BLOCK_N,), "float32")
            C_accum = T.alloc_local((1,), "float32")
            with T.If(tk == 0):
                C_shared[tn] = 0
            T.clear(C_accum)
            for bk in T.serial(T.ceildiv(K, BLOCK_K)):
                for k in T.serial(TILE_K):
                    A_local[k] = A[bk * BLOCK_K + tk * TILE_K + k]
                    B_local[k] = B[bn * BLOCK_N + tn, bk * BLOCK_K + tk * TILE_K + k]
                for k in T.serial(TILE_K):
                    C_accum[0] = C_accum[0] + T.cast(A_local[k], "float32") * T.cast(
                        B_local[k], "float32"
                    )
            T.atomic_add(C_shared[tn], C_accum[0])
            C[bn * BLOCK_N + tn] = C_shared[tn]
    return f.func


def gemv_reference(A: np.ndarray, B: np.ndarray, C: np.ndarray) -> None:
    C[...] = rnd(B @ A, "float16")


def test_tile_level_interpreter_runs_tilelang_gemv() -> None:
    rng = np.random.default_rng(0)
    A = rng.integers(-2, 3, 64).astype(np.float16)
    B = rng.integers(-2, 3, (8, 64)).astype(np.float16)
    C = np.zeros(8, np.float16)
    report = tsir.interpret.check_stages(splitk_gemv(), [A, B, C])
    tile_level = report.results[0]
    assert tile_level.stage == "input" and tile_level.status == "ok", tile_level.message
    want = np.zeros(8)
    gemv_reference(A.astype(np.float64), B.astype(np.float64), want)
    np.testing.assert_allclose(report.reference[2].astype(np.float64), want, rtol=1e-2)
