"""ThreadSync: barriers between conflicting shared accesses of different threads, and no more."""

from __future__ import annotations

import tsir
from tsir import T
from tsir.passes import PassContext, get
from tsir.structural import assert_structural_equal

CTX = PassContext(tsir.Target.parse("sm_90a"))


def run(func: tsir.PrimFunc) -> tsir.PrimFunc:
    return get("ThreadSync")(func, CTX)


def test_write_then_read_by_other_threads_gets_one_barrier() -> None:
    with T.prim_func("f") as before:
        A = T.param("A", (128,), "float32")
        with T.Kernel(1, threads=128):
            tx = T.get_thread_binding(0)
            S = T.alloc_shared((128,), "float32")
            S[tx] = A[tx]
            A[tx] = S[127 - tx]

    with T.prim_func("f") as expected:
        A = T.param("A", (128,), "float32")
        with T.Kernel(1, threads=128):
            tx = T.get_thread_binding(0)
            S = T.alloc_shared((128,), "float32")
            S[tx] = A[tx]
            T.sync_threads()
            A[tx] = S[127 - tx]

    assert_structural_equal(run(before.func), expected.func)


def test_loop_carried_reuse_gets_a_barrier_at_the_loop_head() -> None:
    """Iteration k+1 overwrites the tile iteration k read: write-after-read across iterations."""
    with T.prim_func("f") as before:
        A = T.param("A", (8, 128), "float32")
        B = T.param("B", (8, 128), "float32")
        with T.Kernel(1, threads=128):
            tx = T.get_thread_binding(0)
            S = T.alloc_shared((128,), "float32")
            for k in T.serial(8):
                S[tx] = A[k, tx]
                B[k, tx] = S[127 - tx]

    with T.prim_func("f") as expected:
        A = T.param("A", (8, 128), "float32")
        B = T.param("B", (8, 128), "float32")
        with T.Kernel(1, threads=128):
            tx = T.get_thread_binding(0)
            S = T.alloc_shared((128,), "float32")
            for k in T.serial(8):
                T.sync_threads()
                S[tx] = A[k, tx]
                T.sync_threads()
                B[k, tx] = S[127 - tx]

    assert_structural_equal(run(before.func), expected.func)


def test_no_barrier_without_a_conflict() -> None:
    """Writes of two buffers, reads of a third, and reads after reads need no barrier."""
    with T.prim_func("f") as before:
        A = T.param("A", (128,), "float32")
        with T.Kernel(1, threads=128):
            tx = T.get_thread_binding(0)
            S = T.alloc_shared((128,), "float32")
            R = T.alloc_shared((128,), "float32")
            Q = T.alloc_shared((128,), "float32")
            S[tx] = A[tx]
            R[tx] = A[tx]
            A[tx] = Q[tx] + Q[127 - tx]
    assert_structural_equal(run(before.func), before.func)


def test_an_existing_barrier_is_reused() -> None:
    with T.prim_func("f") as before:
        A = T.param("A", (128,), "float32")
        with T.Kernel(1, threads=128):
            tx = T.get_thread_binding(0)
            S = T.alloc_shared((128,), "float32")
            S[tx] = A[tx]
            T.sync_threads()
            A[tx] = S[127 - tx]
    assert_structural_equal(run(before.func), before.func)


def test_conflict_before_a_loop_is_resolved_once_outside_it() -> None:
    with T.prim_func("f") as before:
        A = T.param("A", (4, 128), "float32")
        with T.Kernel(1, threads=128):
            tx = T.get_thread_binding(0)
            S = T.alloc_shared((128,), "float32")
            S[tx] = A[0, tx]
            for k in T.serial(4):
                A[k, tx] = S[127 - tx]

    with T.prim_func("f") as expected:
        A = T.param("A", (4, 128), "float32")
        with T.Kernel(1, threads=128):
            tx = T.get_thread_binding(0)
            S = T.alloc_shared((128,), "float32")
            S[tx] = A[0, tx]
            T.sync_threads()
            for k in T.serial(4):
                A[k, tx] = S[127 - tx]

    assert_structural_equal(run(before.func), expected.func)


def test_no_barrier_inside_a_thread_dependent_if() -> None:
    """A barrier inside `if tx < 64` would deadlock: it goes before the `if`."""
    with T.prim_func("f") as before:
        A = T.param("A", (128,), "float32")
        with T.Kernel(1, threads=128):
            tx = T.get_thread_binding(0)
            S = T.alloc_shared((128,), "float32")
            S[tx] = A[tx]
            with T.If(tx < 64):
                A[tx] = S[tx + 64]

    with T.prim_func("f") as expected:
        A = T.param("A", (128,), "float32")
        with T.Kernel(1, threads=128):
            tx = T.get_thread_binding(0)
            S = T.alloc_shared((128,), "float32")
            S[tx] = A[tx]
            T.sync_threads()
            with T.If(tx < 64):
                A[tx] = S[tx + 64]

    assert_structural_equal(run(before.func), expected.func)
