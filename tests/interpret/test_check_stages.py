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
