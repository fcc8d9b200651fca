"""Simplify: index arithmetic in canonical form under the ranges in scope, and conditions the
ranges prove folded away (Before/Expected)."""

from __future__ import annotations

from tsir.passes import PassContext, get

import tsir
from tsir import T

CTX = PassContext(tsir.Target.parse("sm_90a"))


def test_indices_simplify_and_proved_conditions_fold() -> None:
    """With tx in [0, 64) and i in [0, 4): `tx * 4 + i < 256` always holds (its `if` goes),
    `(x // 4) * 4 + x % 4` is x, `i * 64 + tx - i * 64` is tx; `tx < 32` is not proved and
    stays."""
    with T.prim_func("s") as before:
        A = T.param("A", (256,), "float32")
        with T.Kernel(1, threads=64):
            tx = T.get_thread_binding(0)
            for i in T.unroll(4):
                with T.If(tx * 4 + i < 256):
                    A[(tx * 4 + i) // 4 * 4 + (tx * 4 + i) % 4] = A[i * 64 + tx - i * 64] + 1.0
                with T.If(tx < 32):
                    A[tx] = 0.0

    with T.prim_func("s") as expected:
        A = T.param("A", (256,), "float32")
        with T.Kernel(1, threads=64):
            tx = T.get_thread_binding(0)
            for i in T.unroll(4):
                A[i + tx * 4] = A[tx] + 1.0
                with T.If(tx < 32):
                    A[tx] = 0.0

    tsir.assert_structural_equal(get("Simplify")(before.func, CTX), expected.func)


def test_a_condition_proved_false_drops_its_branch() -> None:
    """`tx >= 64` is false for every thread of a 64-thread block: the else branch remains."""
    with T.prim_func("s") as before:
        A = T.param("A", (64,), "float32")
        with T.Kernel(1, threads=64):
            tx = T.get_thread_binding(0)
            with T.If(tx >= 64):
                A[tx] = 1.0
            with T.Else():
                A[tx] = 2.0

    with T.prim_func("s") as expected:
        A = T.param("A", (64,), "float32")
        with T.Kernel(1, threads=64):
            tx = T.get_thread_binding(0)
            A[tx] = 2.0

    tsir.assert_structural_equal(get("Simplify")(before.func, CTX), expected.func)
