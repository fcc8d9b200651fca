"""Issue 12's ops through tsir.compat.tilelang, written as TileLang programs are (the classic
@T.prim_func form, TileLang's parameter names): atomics with memory orders, bit reductions with
keywords, warp reductions and shuffles, math, T.print and the CUDA escape hatch."""

from __future__ import annotations

import numpy as np
import pytest

import tsir
from tsir.compat.tilelang import language as T
from tsir.errors import UnsupportedError
from tsir.interpret import check_stages


def test_atomics_with_memory_orders() -> None:
    """tile-ai/tilelang's atomic tests: per-element atomics in T.Parallel with memory_order."""
    K, M, N, bm, bn = 3, 64, 64, 32, 32

    @T.prim_func
    def atomic_memory_order(
        A: T.Tensor((K, M, N), T.float32),
        B: T.Tensor((M, N), T.float32),
        C: T.Tensor((1,), T.float32),
    ):
        with T.Kernel(T.ceildiv(M, bm), T.ceildiv(N, bn), K, threads=32) as (bx, by, bz):
            A_shared = T.alloc_shared((bm, bn), T.float32)
            T.copy(A[bz, bx * bm : (bx + 1) * bm, by * bn : (by + 1) * bn], A_shared)
            for i, j in T.Parallel(bm, bn):
                T.atomic_add(B[bx * bm + i, by * bn + j], A_shared[i, j], memory_order="relaxed")
                T.atomic_max(C[0], A_shared[i, j], memory_order="acq_rel")

    a = np.random.default_rng(0).integers(0, 4, (K, M, N)).astype(np.float32)
    report = check_stages(
        atomic_memory_order, [a, np.zeros((M, N), np.float32), np.zeros(1, np.float32)]
    )
    assert report.ok, str(report)
    assert np.array_equal(report.reference[1], a.sum(0)) and report.reference[2][0] == a.max()


def test_keyword_reductions_and_warp_values() -> None:
    @T.prim_func
    def main(x: T.Tensor((32,), T.int32), y: T.Tensor((4,), T.int32)):
        with T.Kernel(1, threads=32):
            tx = T.get_thread_binding(0)
            frag = T.alloc_fragment((2, 16), T.int32)
            out = T.alloc_fragment((2,), T.int32)
            for i, j in T.Parallel(2, 16):
                frag[i, j] = x[i * 16 + j]
            T.reduce_bitor(buffer=frag, out=out, dim=1, clear=True)
            T.copy(out, y[0:2])
            v = T.alloc_local([1], T.int32)
            v[0] = x[tx]
            r = T.alloc_local([2], T.int32)
            r[0] = T.warp_reduce_sum(v[0])
            r[1] = T.shfl_sync(0xFFFFFFFF, v[0], 7)  # every lane takes part in a shuffle
            if tx == 0:
                y[2] = r[0]
            if tx == 1:
                y[3] = r[1]

    x = np.arange(32, dtype=np.int32) * 3
    report = check_stages(main, [x, np.zeros(4, np.int32)])
    assert report.ok, str(report)
    y = report.reference[1]
    assert y[0] == np.bitwise_or.reduce(x[:16]) and y[1] == np.bitwise_or.reduce(x[16:])
    assert y[2] == x.sum() and y[3] == x[7]


def test_math_print_and_extern() -> None:
    @T.prim_func
    def main(x: T.Tensor((64,), T.float32), y: T.Tensor((64,), T.float32)):
        with T.Kernel(1, threads=64):
            T.import_source("__device__ float halve(float v) { return v * 0.5f; }")
            for i in T.Parallel(64):
                y[i] = T.clamp(T.sigmoid(x[i]) + T.erf(x[i]), 0.0, 1.5) + T.__exp(x[i]) * 0
            T.print(x[0], msg="x0")
            T.call_extern("handle", "halve", y[0])

    for target in ("sm_80", "sm_90a"):
        src = tsir.compile(main, target=target).cuda_source
        assert "__device__ float halve" in src and 'tsir::print_value("x0"' in src


def test_compat_refusals_name_the_feature() -> None:
    with pytest.raises(UnsupportedError, match="reduce_type='mean'"):

        @T.prim_func
        def bad(x: T.Tensor((4, 4), T.float32)):
            with T.Kernel(1, threads=32):
                f = T.alloc_fragment((4, 4), T.float32)
                o = T.alloc_fragment((4,), T.float32)
                T.reduce(f, o, "mean", dim=1)
