"""InjectSoftwarePipeline takes global->shared copies wherever they stand in the body, refuses the
ones it cannot issue ahead, and reports every loop it leaves unpipelined (TSIR_EXPLAIN).

The loops' meaning is checked by the reference interpreter at every stage (an oracle not written
with the pass), the structure by counting the async copies the pass made."""

from __future__ import annotations

import numpy as np
import pytest

import tsir
from tsir import T
from tsir.visitor import collect


def _gemm_with_prologue(M: int, N: int, K: int, stages: int, layout: str) -> tsir.PrimFunc:
    """A K loop whose body does other work before and between its copies."""
    with T.prim_func("g") as f:
        A = T.param("A", (M, K), "float16")
        B = T.param("B", (K, N), "float16")
        C = T.param("C", (M, N), "float32")
        with T.Kernel(T.ceildiv(N, 32), T.ceildiv(M, 32), threads=64) as (bx, by):
            A_s = T.alloc_shared((32, 32), "float16")
            B_s = T.alloc_shared((32, 32), "float16")
            X_s = T.alloc_shared((32, 32), "float16")
            C_f = T.alloc_fragment((32, 32), "float32")
            T.clear(C_f)
            for ko in T.Pipelined(T.ceildiv(K, 32), num_stages=stages):
                if layout == "copy_between":
                    T.copy(A[by * 32, ko * 32], A_s)
                    for i, j in T.Parallel(32, 32):
                        X_s[i, j] = T.cast(0.5, "float16")
                    T.copy(B[ko * 32, bx * 32], B_s)
                else:  # the copies after other work
                    for i, j in T.Parallel(32, 32):
                        X_s[i, j] = T.cast(0.5, "float16")
                    T.copy(B[ko * 32, bx * 32], B_s)
                    T.copy(A[by * 32, ko * 32], A_s)
                T.gemm(A_s, B_s, C_f)
                T.gemm(X_s, B_s, C_f)
            T.copy(C_f, C[by * 32, bx * 32])
    return f.func


def _n_async(func: tsir.PrimFunc) -> int:
    mod = tsir.lower(func, "sm_80").module
    return sum(c.op == "tsir.async_copy.cp_async_16" for c in collect(mod, tsir.Call))


@pytest.mark.parametrize("layout", ["copy_between", "copies_after_other_work"])
@pytest.mark.parametrize("stages", [2, 3])
def test_copies_anywhere_in_the_body_are_pipelined_and_agree_at_every_stage(
    layout: str, stages: int
) -> None:
    M, N, K = 40, 32, 96
    func = _gemm_with_prologue(M, N, K, stages, layout)
    assert _n_async(func) > 0
    rng = np.random.default_rng(1)
    a = rng.standard_normal((M, K)).astype(np.float16)
    b = rng.standard_normal((K, N)).astype(np.float16)
    report = tsir.interpret.check_stages(func, [a, b, np.zeros((M, N), np.float32)], target="sm_80")
    report.raise_for_failure()
    want = a.astype(np.float64) @ b + 0.5 * np.ones((M, K)) @ b
    np.testing.assert_allclose(report.reference[2], want, rtol=2e-2, atol=2e-1)


def _loop_reading_tile_first(stages: int) -> tsir.PrimFunc:
    with T.prim_func("r") as f:
        A = T.param("A", (4, 64), "float32")
        Y = T.param("Y", (4, 64), "float32")
        with T.Kernel(1, threads=64):
            S = T.alloc_shared((64,), "float32")
            T.fill(S, 0.0)
            for k in T.Pipelined(4, num_stages=stages):
                for i in T.Parallel(64):
                    Y[k, i] = S[63 - i]
                T.copy(A[k, 0], S)
    return f.func


def test_a_copy_whose_tile_is_read_earlier_in_the_iteration_is_not_taken() -> None:
    """`Y[k] = S` before `S = A[k]` reads the previous iteration's tile: issuing the copy ahead
    would change that, so the loop stays serial, and the report says why."""
    func = _loop_reading_tile_first(3)
    low = tsir.lower(func, "sm_80")
    assert not any(c.op == "tsir.async_copy.cp_async_16" for c in collect(low.module, tsir.Call))
    text = "\n".join(str(d) for d in low.report)
    assert "`S` is read before the copy in the same iteration" in text
    assert "runs unpipelined: no global->shared T.copy in its body can be issued ahead" in text
    a = np.random.default_rng(2).standard_normal((4, 64)).astype(np.float32)
    tsir.interpret.check_stages(
        func, [a, np.zeros((4, 64), np.float32)], target="sm_80"
    ).raise_for_failure()


def test_explain_prints_each_unpipelined_loop_with_the_users_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    func = _loop_reading_tile_first(2)
    with tsir.knobs.override(explain=True):
        tsir.lower(func, "sm_80")
    err = capsys.readouterr().err
    assert "[tsir explain] r:" in err
    assert f"{__file__}:" in err  # the span of the T.Pipelined loop
    assert "T.Pipelined(num_stages=2) over `k` runs unpipelined" in err


def test_num_stages_below_two_is_not_reported() -> None:
    assert tsir.lower(_loop_reading_tile_first(1), "sm_80").report == []


def test_a_staged_tile_used_after_its_pipelined_loop_is_its_stage_zero() -> None:
    """Found by the random-program generator: a tile loaded in a T.Pipelined loop and refilled by a
    later plain loop kept its old (now unallocated) name there, and the CUDA did not compile."""
    with T.prim_func("two_loops") as f:
        X = T.param("X", (4, 96), "float16")
        Y = T.param("Y", (4, 96), "float32")
        with T.Kernel(2, threads=64) as bx:
            x1 = T.alloc_shared((2, 32), "float16")
            acc = T.alloc_fragment((2, 32), "float32")
            T.clear(acc)
            for ko in T.Pipelined(3, num_stages=3):
                T.copy(X[bx * 2, ko * 32], x1)
                for i, j in T.Parallel(2, 32):
                    acc[i, j] = acc[i, j] + T.cast(x1[i, j], "float32")
            for ko in T.serial(3):
                T.copy(X[bx * 2, ko * 32], x1)
                for i, j in T.Parallel(2, 32):
                    Y[bx * 2 + i, ko * 32 + j] = T.cast(x1[i, j], "float32") + acc[i, j]
    x = np.random.default_rng(3).standard_normal((4, 96)).astype(np.float16)
    report = tsir.interpret.check_stages(f.func, [x, np.zeros((4, 96), np.float32)], target="sm_80")
    report.raise_for_failure()
    tsir.compile(f.func, target="sm_80")  # the CUDA compiles
    xs = x.astype(np.float32).reshape(4, 3, 32)
    want = xs + xs.sum(1, keepdims=True)
    np.testing.assert_allclose(report.reference[1], want.reshape(4, 96), rtol=1e-3)
