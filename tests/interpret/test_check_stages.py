"""`check_stages`: the report the random-program generator reads."""

from __future__ import annotations

import numpy as np
import pytest

import tsir
from tsir import T
from tsir.interpret import DataRaceError, StageMismatchError, check_stages
from tsir.interpret.stages import compare_outputs


def scale(n: int = 64) -> tsir.PrimFunc:
    with T.prim_func("scale") as f:
        X = T.param("X", (n,), "float32")
        Y = T.param("Y", (n,), "float32")
        with T.Kernel(1, threads=32):
            for i in T.Parallel(n):
                Y[i] = X[i] * 2.0
    return f.func


def wrong_scale(n: int = 64) -> tsir.PrimFunc:
    with T.prim_func("scale") as f:
        X = T.param("X", (n,), "float32")
        Y = T.param("Y", (n,), "float32")
        with T.Kernel(1, threads=32):
            tx = T.get_thread_binding()
            Y[tx] = X[tx] * 2.0  # forgets the second half
    return f.func


def reverse() -> tsir.PrimFunc:
    with T.prim_func("scale") as f:
        X = T.param("X", (64,), "float32")
        Y = T.param("Y", (64,), "float32")
        with T.Kernel(1, threads=32):
            for i in T.Parallel(64):
                Y[i] = X[63 - i] * 2.0
    return f.func


def args() -> list[np.ndarray]:
    return [np.arange(64, dtype=np.float32), np.zeros(64, np.float32)]


def test_a_correct_pipeline_reports_every_stage() -> None:
    report = check_stages(scale(), args(), target="sm_80")
    assert report.ok and report.first_failure is None
    names = [r.stage for r in report.results]
    assert names[0] == "input" and names[-1] == "SplitHostDevice"
    assert report.results[1].status == "same"  # Verify returns its input
    np.testing.assert_array_equal(report.reference[1], 2 * np.arange(64))
    report.raise_for_failure()


def test_the_first_stage_that_differs_is_named() -> None:
    report = check_stages(
        [("input", scale()), ("A", scale()), ("B", wrong_scale()), ("C", scale())], args()
    )
    f = report.first_failure
    assert f is not None and f.stage == "B" and f.status == "mismatch"
    assert "argument 1 (float32): 32 of 64 elements differ" in f.message
    assert [r.stage for r in report.results] == ["input", "A", "B"]
    with pytest.raises(StageMismatchError, match="stage B: mismatch"):
        report.raise_for_failure()
    every = check_stages(
        [("input", scale()), ("B", wrong_scale()), ("C", scale())], args(), keep_going=True
    )
    assert [r.status for r in every.results] == ["ok", "mismatch", "ok"]


def test_hazards_and_internal_errors_are_classified() -> None:
    with T.prim_func("scale") as racy:
        X = T.param("X", (64,), "float32")
        Y = T.param("Y", (64,), "float32")
        with T.Kernel(1, threads=64):
            tx = T.get_thread_binding()
            S = T.alloc_shared((64,), "float32")
            S[tx] = X[tx] * 2.0
            Y[tx] = S[63 - tx]
    report = check_stages([("input", reverse()), ("ThreadSync", racy.func)], args())
    f = report.first_failure
    assert f is not None and f.status == "hazard" and isinstance(f.error, DataRaceError)
    # Before ThreadSync the barriers are not there yet: statement-by-statement order is assumed.
    before = check_stages(
        [("input", reverse()), ("LowerTileOp", racy.func), ("ThreadSync", racy.func)], args()
    )
    assert [r.status for r in before.results] == ["ok", "ok", "hazard"]
    broken = check_stages([("input", scale()), ("X", object())], args())
    assert broken.first_failure is not None and broken.first_failure.status == "error"


def test_the_origin_pass_of_each_statement_is_named() -> None:
    with T.prim_func("scale") as racy:
        X = T.param("X", (64,), "float32")
        Y = T.param("Y", (64,), "float32")
        with T.Kernel(1, threads=64):
            tx = T.get_thread_binding()
            S = T.alloc_shared((64,), "float32")
            S[tx] = X[tx] * 2.0
            Y[tx] = S[63 - tx]
    report = check_stages([("input", reverse()), ("MyPass", racy.func)], args())
    assert report.first_failure is not None
    assert report.first_failure.message.count("[produced by pass MyPass]") == 2


def test_an_absolute_floor_for_outputs_that_cancel_to_zero() -> None:
    """Found by the fuzzer: the mean of a normalized row is 0 up to rounding; summed in another
    order it differs far beyond a tolerance relative to itself (scale 2e-6), though by 5e-6 only
    against terms of order 1. `atol` is that absolute floor; without it the stages differ."""
    ref = [np.array([-6.5e-07, 3.0e-07, 1.0e-06], dtype=np.float32)]
    got = [np.array([4.8e-07, -2.0e-06, 1.0e-06], dtype=np.float32)]
    assert "2 of 3 elements differ" in compare_outputs(ref, got, 0.02)
    assert compare_outputs(ref, got, 0.02, atol=1e-4) == ""
    assert "differ" in compare_outputs(ref, [np.array([1e-3, 0, 0], np.float32)], 0.02, atol=1e-4)


def rewritten_a_gemm() -> tsir.PrimFunc:
    """Two k-steps of a 64x64 gemm on two warpgroups (each wgmma reads all of `A_s`) whose A tile
    is rewritten in shared memory before each step (fuzz seed 7000693, reduced)."""
    with T.prim_func("rewritten_a") as f:
        A = T.param("A", (64, 32), "float16")
        B = T.param("B", (64, 32), "float16")
        C = T.param("C", (64, 64), "float32")
        with T.Kernel(1, threads=256):
            A_s = T.alloc_shared((64, 16), "float16")
            B_s = T.alloc_shared((64, 16), "float16")
            C_f = T.alloc_fragment((64, 64), "float32")
            for ko in T.Pipelined(2, num_stages=1):
                T.copy(A[0, ko * 16], A_s)
                for i, k in T.Parallel(64, 16):
                    A_s[i, k] = A_s[i, k] - 1
                T.copy(B[0, ko * 16], B_s)
                T.gemm(A_s, B_s, C_f, transpose_B=True, clear_accum=True)
            T.copy(C_f, C)
    return f.func


def test_a_wgmma_wait_between_tile_ops_completes_in_every_warpgroup_first() -> None:
    """Before ThreadSync every statement completes in all threads before the next: the wgmma_wait
    InjectWgmmaSync puts at the top of the k-loop, between tile ops, retires both warpgroups'
    wgmma before the next copy into `A_s` (the warpgroups, run as strands, used to meet only at a
    tile op's end, so warpgroup 0 wrote `A_s` under warpgroup 1's pending wgmma: a false
    WgmmaHazardError). Without that wait the hazard is still reported."""
    from tsir.expr import Call
    from tsir.interpret import WgmmaHazardError
    from tsir.stmt import Evaluate, For, SeqStmt
    from tsir.visitor import Mutator

    rng = np.random.default_rng(3)
    a = rng.integers(-3, 4, (64, 32)).astype(np.float16)
    b = rng.integers(-3, 4, (64, 32)).astype(np.float16)
    ir = tsir.lower(rewritten_a_gemm(), "sm_90a")["InjectWgmmaSync"]
    c = np.zeros((64, 64), np.float32)
    tsir.interpret(ir, a, b, c, implicit_sync=True)
    want = (a[:, 16:].astype(np.float32) - 1) @ b[:, 16:].astype(np.float32).T
    np.testing.assert_array_equal(c, want)

    class DropLoopWait(Mutator):
        def visit_For(self, s: For):  # type: ignore[no-untyped-def]
            if s.loop_var.name != "ko":
                return s
            assert isinstance(s.body, SeqStmt)
            first = s.body.stmts[0]
            assert isinstance(first, Evaluate) and isinstance(first.value, Call)
            assert first.value.op.startswith("tsir.wgmma.wgmma_wait")
            return s.replace(body=s.body.replace(stmts=s.body.stmts[1:]))

    with pytest.raises(WgmmaHazardError, match="`A_s` .* no wgmma_wait has retired"):
        tsir.interpret(DropLoopWait().visit(ir), a, b, np.zeros_like(c), implicit_sync=True)
