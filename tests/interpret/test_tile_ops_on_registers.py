"""Tile operators on per-thread registers (`T.alloc_local`) at the tile level: every thread runs
the op on its own copy (a T.clear of a local accumulator used to clear thread 0's copy only)."""

from __future__ import annotations

import numpy as np
import pytest

import tsir
from tsir import T
from tsir.interpret import check_stages


def test_clear_of_a_local_buffer_clears_every_threads_copy() -> None:
    with T.prim_func("f") as f:
        Y = T.param("Y", (96,), "float32")
        with T.Kernel(1, threads=96):
            tx = T.get_thread_binding(0)
            acc = T.alloc_local((2,), "float32")
            T.clear(acc)
            acc[1] = acc[1] + T.cast(tx, "float32")
            Y[tx] = acc[0] + acc[1]
    report = check_stages(f.func, [np.zeros(96, np.float32)], target="sm_80")
    assert report.ok, str(report)
    np.testing.assert_array_equal(report.reference[0], np.arange(96, dtype=np.float32))


def test_copy_from_registers_that_differ_between_threads_is_refused() -> None:
    """A tile-level copy out of per-thread registers whose copies differ has no single meaning."""
    with T.prim_func("g") as f:
        Y = T.param("Y", (4,), "float32")
        with T.Kernel(1, threads=32):
            tx = T.get_thread_binding(0)
            r = T.alloc_local((4,), "float32")
            for i in T.serial(4):
                r[i] = T.cast(tx, "float32")
            T.copy(r, Y)
    with pytest.raises(tsir.TSIRError, match="copies differ between threads"):
        tsir.interpret(f.func, np.zeros(4, np.float32))
