"""Class `python-if-on-symbolic-eq` (found by the `misuse` family, 36% of its programs).

A Python `if` (or `while`, `and`, `or`, `not`, a conditional expression) on `==` or `!=` of a
symbolic expression must raise a TSIRError pointing to `with T.If(...)` (DESIGN, additions of
2026-12-07). Today `EQ.__bool__` falls back to identity: `if tx == 0:` silently drops its body and
`if tx != 0:` silently keeps it, so the kernel is wrong with no message. `<`, `>=` already raise.
"""

from __future__ import annotations

import pytest

import tsir
from tsir import T


def if_thread_is_zero() -> tsir.PrimFunc:
    with T.prim_func("if_eq") as f:
        Y = T.param("Y", (32,), "float32")
        with T.Kernel(1, threads=32):
            tx = T.get_thread_binding()
            if tx == 0:  # dropped today: must raise and say `with T.If(tx == 0):`
                Y[tx] = 1.0
    return f.func


def if_data_nonzero() -> tsir.PrimFunc:
    with T.prim_func("if_ne") as f:
        X = T.param("X", (2,), "int32")
        Y = T.param("Y", (64,), "float32")
        with T.Kernel(2, threads=32) as bx:
            tx = T.get_thread_binding()
            if X[bx] != 0:  # kept unconditionally today
                Y[bx * 32 + tx] = 1.0
    return f.func


def ternary_on_block() -> tsir.PrimFunc:
    with T.prim_func("ternary_eq") as f:
        Y = T.param("Y", (64,), "float32")
        with T.Kernel(2, threads=32) as bx:
            tx = T.get_thread_binding()
            Y[bx * 32 + tx] = 1.0 if bx == 1 else 2.0  # always 2.0 today
    return f.func


@pytest.mark.parametrize("build", [if_thread_is_zero, if_data_nonzero, ternary_on_block])
def test_python_control_flow_on_eq_raises(build) -> None:
    with pytest.raises(tsir.TSIRError, match="T.If"):
        build()
