"""Issue 9's known miscompile classes, caught by the interpreter on frozen copies of the thread-level
IR that the compiler produced before the fixes (transcribed from `tsir.lower(...)` output at commit
bb752f5), each paired with its tile-level program through `check_stages`; and the fixed twins
(barriers added, every thread writing its copy, ...) pass.

The copies are frozen on purpose: the compiler is being fixed, and these tests pin the
interpreter's verdict on the code as it was, not the compiler's current output.
"""

from __future__ import annotations

import numpy as np
import pytest

import tsir
from tsir import T
from tsir.expr import IntImm, Ramp
from tsir.interpret import check_stages

from gemm import matmul
from irkit import addr, call, evaluate

RNG = np.random.default_rng(7)


def ramp(base, lanes: int) -> Ramp:  # noqa: ANN001
    return Ramp(base, IntImm(1, base.dtype), lanes)


# -- class 1: a gemm in an un-pipelined K loop gets no barriers --------------------------------------


def frozen_gemm_k_loop(barriers: bool) -> tsir.PrimFunc:
    """ThreadSync's output for matmul(32, 32, 32, bk=16, num_stages=0, threads=64) at bb752f5
    (barriers=False), and the same with the two barriers a correct ThreadSync adds."""
    with T.prim_func("matmul") as f:
        A = T.param("A", (32, 32), "float16")
        B = T.param("B", (32, 32), "float16")
        C = T.param("C", (32, 32), "float16")
        with T.Kernel(1, 1, threads=64) as (bx, by):
            tx = T.get_thread_binding(0)
            A_s = T.alloc_shared((512,), "float16")
            B_s = T.alloc_shared((512,), "float16")
            C_f = T.alloc_local((16,), "float32")
            for l in T.unroll(16):
                C_f[l] = 0.0
            for ko in T.serial(2):
                if barriers:
                    T.sync_threads()
                A_s[ramp(((tx % 2) ^ (tx // 2 % 8 // 4)) * 8 + tx // 2 * 16, 8)] = \
                    A[by * 32 + tx // 2, ramp(ko * 16 + tx % 2 * 8, 8)]
                B_s[ramp(((tx % 4) ^ (tx // 4 % 8 // 2)) * 8 + tx // 4 * 32, 8)] = \
                    B[ko * 16 + tx // 4, ramp(bx * 32 + tx % 4 * 8, 8)]
                if barriers:
                    T.sync_threads()
                evaluate("int32", "tsir.gemm_sm80.gemm_ss<32, 32, 16, 1, 2, false, false, 32, 16, 64, 32>",
                         addr(A_s[0]), addr(B_s[0]), addr(C_f[0]))
            for i_o in T.unroll(8):
                C_v1 = T.alloc_local((2,), "float16")
                for i_v in T.unroll(2):
                    C_v1[i_v] = T.cast(C_f[i_o * 2 + i_v], "float16")
                C[by * 32 + i_o * 2 // 8 * 16 + i_o % 2 * 8 + tx // 4 % 8,
                  ramp(bx * 32 + tx // 32 * 16 + tx % 4 * 2 + i_o * 2 // 4 % 2 * 8, 2)] = C_v1[ramp(IntImm(0), 2)]
    return f.func


def _gemm_args() -> list[np.ndarray]:
    a = RNG.standard_normal((32, 32)).astype(np.float16)
    b = RNG.standard_normal((32, 32)).astype(np.float16)
    return [a, b, np.full((32, 32), np.nan, np.float16)]


def test_class1_gemm_in_unpipelined_loop_is_a_race() -> None:
    tile = matmul(32, 32, 32, bm=32, bn=32, bk=16, num_stages=0, threads=64)
    report = check_stages([("input", tile), ("ThreadSync", frozen_gemm_k_loop(False))], _gemm_args())
    f = report.first_failure
    assert f is not None and f.stage == "ThreadSync" and f.status == "hazard", str(report)
    assert "data race on shared memory `A_s`" in f.message
    assert "A_s[T.Ramp(" in f.message and "gemm_ss<32, 32, 16" in f.message


def test_class1_fixed_twin_matches() -> None:
    tile = matmul(32, 32, 32, bm=32, bn=32, bk=16, num_stages=0, threads=64)
    args = _gemm_args()
    report = check_stages([("input", tile), ("ThreadSync", frozen_gemm_k_loop(True))], args)
    assert report.ok, str(report)
    want = args[0].astype(np.float64) @ args[1].astype(np.float64)
    np.testing.assert_allclose(report.reference[2].astype(np.float64), want, rtol=2e-2, atol=2e-2)


# -- class 2: shared atomics right after a plain initialisation -------------------------------------


def histogram_tile() -> tsir.PrimFunc:
    with T.prim_func("histogram") as f:
        X = T.param("X", (256,), "int32")
        out = T.param("out", (16,), "int32")
        with T.Kernel(1, threads=128):
            H = T.alloc_shared((16,), "int32")
            for i in T.Parallel(16):
                H[i] = 0
            for i in T.Parallel(256):
                T.atomic_add(H[X[i]], 1)
            T.copy(H, out)
    return f.func


def frozen_histogram(barrier: bool) -> tsir.PrimFunc:
    """SplitHostDevice's kernel for histogram_tile() at bb752f5 (as a PrimFunc), optionally with
    the barrier after the initialisation that ThreadSync omitted."""
    with T.prim_func("histogram") as f:
        X = T.param("X", (256,), "int32")
        out = T.param("out", (16,), "int32")
        with T.Kernel(1, threads=128):
            tx = T.get_thread_binding(0)
            H = T.alloc_shared((16,), "int32")
            with T.If(tx < 16):
                H[tx] = 0
            if barrier:
                T.sync_threads()
            for i_v in T.unroll(2):
                T.atomic_add(H[X[i_v + tx * 2]], 1)
            T.sync_threads()
            with T.If(tx < 16):
                out[tx] = H[tx]
    return f.func


def test_class2_shared_atomics_after_plain_init_race() -> None:
    x = RNG.integers(0, 16, 256).astype(np.int32)
    report = check_stages([("input", histogram_tile()), ("ThreadSync", frozen_histogram(False))],
                          [x, np.zeros(16, np.int32)])
    f = report.first_failure
    assert f is not None and f.status == "hazard", str(report)
    assert "data race on shared memory `H`" in f.message
    assert "H[tx] = 0" in f.message and "atomic write by" in f.message and "atomic_add" in f.message
    fixed = check_stages([("input", histogram_tile()), ("ThreadSync", frozen_histogram(True))],
                         [x, np.zeros(16, np.int32)])
    assert fixed.ok, str(fixed)
    np.testing.assert_array_equal(fixed.reference[1], np.bincount(x, minlength=16))


# -- class 3: a per-row fragment computed by one thread and read by all ------------------------------


def layer_norm_tile(N: int = 64) -> tsir.PrimFunc:
    """TileLang-style layer norm, blk_m = 1: mean/rstd from reductions in a T.Parallel(blk_m) that
    also saves them to global memory."""
    with T.prim_func("ln_fwd") as f:
        M = T.dynamic("M")
        A = T.param("A", (M, N), "float32")
        B = T.param("B", (M, N), "float32")
        Mean = T.param("Mean", (M,), "float32")
        Rstd = T.param("Rstd", (M,), "float32")
        with T.Kernel(M, threads=64) as bx:
            x = T.alloc_fragment((1, N), "float32")
            x2 = T.alloc_fragment((1, N), "float32")
            s = T.alloc_fragment((1,), "float32")
            s2 = T.alloc_fragment((1,), "float32")
            mean = T.alloc_fragment((1,), "float32")
            rstd = T.alloc_fragment((1,), "float32")
            T.copy(A[bx, 0], x)
            for i, j in T.Parallel(1, N):
                x2[i, j] = x[i, j] * x[i, j]
            T.reduce_sum(x, s, dim=1)
            T.reduce_sum(x2, s2, dim=1)
            for i in T.Parallel(1):
                mean[i] = s[i] / N
                rstd[i] = T.rsqrt(s2[i] / N - mean[i] * mean[i] + 1e-5)
                Mean[bx + i] = mean[i]
                Rstd[bx + i] = rstd[i]
            for i, j in T.Parallel(1, N):
                x[i, j] = (x[i, j] - mean[i]) * rstd[i]
            T.copy(x, B[bx, 0])
    return f.func


def frozen_layer_norm(every_thread: bool) -> tsir.PrimFunc:
    """LowerTileOp's output for layer_norm_tile() at bb752f5: mean/rstd computed under `tx < 1`
    (every_thread=False), or in every thread with the global stores by thread 0 (the fix)."""
    N = 64
    with T.prim_func("ln_fwd") as f:
        M = T.dynamic("M")
        A = T.param("A", (M, N), "float32")
        B = T.param("B", (M, N), "float32")
        Mean = T.param("Mean", (M,), "float32")
        Rstd = T.param("Rstd", (M,), "float32")
        with T.Kernel(M, threads=64) as bx:
            tx = T.get_thread_binding(0)
            s_red = T.alloc_shared((2,), "float32")
            s2_red = T.alloc_shared((2,), "float32")
            x = T.alloc_local((1,), "float32")
            x2 = T.alloc_local((1,), "float32")
            s = T.alloc_local((1,), "float32")
            s2 = T.alloc_local((1,), "float32")
            mean = T.alloc_local((1,), "float32")
            rstd = T.alloc_local((1,), "float32")
            x[0] = A[bx, tx]
            x2[0] = x[0] * x[0]
            for src, dst, red in ((x, s, s_red), (x2, s2, s2_red)):
                acc = T.alloc_local((1,), "float32")
                acc[0] = 0.0
                acc[0] = acc[0] + src[0]
                for off in (16, 8, 4, 2, 1):
                    acc[0] = acc[0] + call("float32", "tsir.reduce.shfl_xor", acc[0], off)
                with T.If(tx % 32 == 0):
                    red[tx // 32] = acc[0]
                T.sync_threads()
                acc[0] = red[tx // 64 * 2] + red[tx // 64 * 2 + 1]
                T.sync_threads()
                dst[0] = acc[0]
            if every_thread:
                mean[0] = s[0] / 64.0
                rstd[0] = T.rsqrt(s2[0] / 64.0 - mean[0] * mean[0] + 1e-05)
                with T.If(tx == 0):
                    Mean[bx] = mean[0]
                    Rstd[bx] = rstd[0]
            else:
                with T.If(tx < 1):
                    mean[tx] = s[tx] / 64.0
                    rstd[tx] = T.rsqrt(s2[tx] / 64.0 - mean[tx] * mean[tx] + 1e-05)
                    Mean[bx + tx] = mean[tx]
                    Rstd[bx + tx] = rstd[tx]
            x[0] = (x[0] - mean[0]) * rstd[0]
            B[bx, tx] = x[0]
    return f.func


def _ln_args() -> list[np.ndarray]:
    return [RNG.standard_normal((3, 64)).astype(np.float32), np.zeros((3, 64), np.float32),
            np.zeros(3, np.float32), np.zeros(3, np.float32)]


def test_class3_row_fragment_written_by_one_thread_is_an_uninitialised_read() -> None:
    report = check_stages([("input", layer_norm_tile()), ("LowerTileOp", frozen_layer_norm(False))], _ln_args())
    f = report.first_failure
    assert f is not None and f.stage == "LowerTileOp" and f.status == "hazard", str(report)
    assert "read of register `mean` element 0" in f.message
    assert "thread (1,) of block (0,)" in f.message and "x[0] = (x[0] - mean[0]) * rstd[0]" in f.message


def test_class3_fixed_twin_matches() -> None:
    args = _ln_args()
    report = check_stages([("input", layer_norm_tile()), ("LowerTileOp", frozen_layer_norm(True))], args)
    assert report.ok, str(report)
    x = args[0].astype(np.float64)
    c = x - x.mean(axis=1, keepdims=True)
    want = c / np.sqrt((c * c).mean(axis=1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(report.reference[1], want, rtol=1e-4, atol=1e-4)


# -- class 5: tile operators inside a thread-dependent T.If ------------------------------------------


def if_tile_ops() -> tsir.PrimFunc:
    with T.prim_func("if_tile") as f:
        A = T.param("A", (256,), "float32")
        B = T.param("B", (256,), "float32")
        with T.Kernel(1, threads=256):
            tx = T.get_thread_binding()
            S = T.alloc_shared((256,), "float32")
            with T.If(tx < 128):
                T.copy(A[0], S)
                T.copy(S, B[0])
    return f.func


def frozen_if_tile_ops() -> tsir.PrimFunc:
    """LowerTileOp's output for if_tile_ops() at bb752f5: the copies are spread over all 256
    threads, but only the 128 threads inside the `if` run them."""
    with T.prim_func("if_tile") as f:
        A = T.param("A", (256,), "float32")
        B = T.param("B", (256,), "float32")
        with T.Kernel(1, threads=256):
            tx = T.get_thread_binding()
            S = T.alloc_shared((256,), "float32")
            with T.If(tx < 128):
                S[tx] = A[tx]
                B[tx] = S[tx]
    return f.func


def test_class5_tile_ops_in_a_thread_dependent_if_mismatch() -> None:
    a = RNG.standard_normal(256).astype(np.float32)
    report = check_stages([("input", if_tile_ops()), ("LowerTileOp", frozen_if_tile_ops())],
                          [a, np.zeros(256, np.float32)])
    f = report.first_failure
    assert f is not None and f.stage == "LowerTileOp" and f.status == "mismatch", str(report)
    assert "128 of 256 elements differ" in f.message
    np.testing.assert_array_equal(report.reference[1], a)  # tile level: the whole copy happens


@pytest.mark.parametrize("blocks", [1, 3])
def test_the_frozen_programs_run_on_several_blocks(blocks: int) -> None:
    args = [RNG.standard_normal((blocks, 64)).astype(np.float32), np.zeros((blocks, 64), np.float32),
            np.zeros(blocks, np.float32), np.zeros(blocks, np.float32)]
    tsir.interpret(frozen_layer_norm(True), *args)
    x = args[0].astype(np.float64)
    np.testing.assert_allclose(args[2], x.mean(axis=1), rtol=1e-5, atol=1e-6)
