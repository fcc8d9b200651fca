"""Errors of the script forms name the user's file and line, and the source line itself."""

import inspect

import pytest

from tsir import T, TSIRError
from tsir.errors import BuildError, UnsupportedError
from tsir.script import Tensor

HERE = __file__


def _line_of(fn, text):
    lines, first = inspect.getsourcelines(fn)
    for k, ln in enumerate(lines):
        if text in ln:
            return first + k
    raise AssertionError(text)


def _check(exc, fn, text):
    assert exc.loc is not None and exc.loc.filename == HERE
    assert exc.loc.lineno == _line_of(fn, text)
    assert text in str(exc)
    assert f"{HERE}:{exc.loc.lineno}" in str(exc)


def test_shape_mismatch_in_copy_names_the_line():
    def bad(A: Tensor((64, 64), "float32")):
        with T.Kernel(1, threads=128):
            s = T.alloc_shared((32, 32), "float32")
            T.copy(A[0:64, 0:16], s)

    with pytest.raises(BuildError, match="T.copy shape mismatch") as e:
        T.prim_func(bad)
    _check(e.value, bad, "T.copy(A[0:64, 0:16], s)")


def test_python_error_in_body_becomes_build_error_at_line():
    def bad(A: Tensor((64,), "float32")):
        with T.Kernel(1, threads=64):
            A[0] = missing_constant  # noqa: F821

    with pytest.raises(BuildError, match="NameError: name 'missing_constant'") as e:
        T.prim_func(bad)
    _check(e.value, bad, "A[0] = missing_constant")


def test_rebinding_a_name_inside_a_runtime_loop_raises():
    def bad(A: Tensor((64,), "float32")):
        with T.Kernel(1, threads=1):
            acc = 0.0
            for k in T.serial(64):
                acc = acc + A[k]
            A[0] = acc

    with pytest.raises(BuildError, match="Use `acc = T.alloc_var") as e:
        T.prim_func(bad)
    _check(e.value, bad, "acc = acc + A[k]")


def test_name_bound_inside_runtime_if_is_unusable_after_it():
    def bad(A: Tensor((64,), "float32")):
        with T.Kernel(1, threads=64):
            tx = T.get_thread_binding(0)
            if tx == 0:
                v = A[tx]
            A[1] = v

    with pytest.raises(BuildError, match="`v` was bound inside a run-time `if`") as e:
        T.prim_func(bad)
    _check(e.value, bad, "A[1] = v")


def test_return_inside_kernel_and_break_in_runtime_loop_raise():
    def ret(A: Tensor((64,), "float32")):
        with T.Kernel(1, threads=64):
            return A

    with pytest.raises(BuildError, match="`return` inside a T.Kernel") as e:
        T.prim_func(ret)
    _check(e.value, ret, "return A")

    def brk(A: Tensor((64,), "float32")):
        with T.Kernel(1, threads=1):
            for k in T.serial(64):
                if k == 3:
                    break
                A[k] = 0.0

    with pytest.raises(UnsupportedError, match="`break` inside a run-time loop") as e:
        T.prim_func(brk)
    _check(e.value, brk, "break")


def test_while_on_runtime_condition_and_missing_annotation():
    def wh(A: Tensor((64,), "float32")):
        with T.Kernel(1, threads=64):
            tx = T.get_thread_binding(0)
            while tx < 3:
                A[tx] = 0.0

    with pytest.raises(UnsupportedError, match="while") as e:
        T.prim_func(wh)
    _check(e.value, wh, "while tx < 3:")

    def noann(A):
        pass

    with pytest.raises(TSIRError, match="parameter `A` of `noann` has no annotation") as e:
        T.prim_func(noann)
    assert e.value.loc is not None and e.value.loc.filename == HERE


def test_cluster_and_a_malformed_pipeline_schedule_raise():
    def clus(A: Tensor((64,), "float32")):
        with T.Kernel(1, threads=64, cluster=2):
            A[0] = 0.0

    with pytest.raises(UnsupportedError, match="cluster=2") as e:
        T.prim_func(clus)
    _check(e.value, clus, "cluster=2")

    def order(A: Tensor((64,), "float32")):
        with T.Kernel(1, threads=64):
            for k in T.Pipelined(4, num_stages=2, order=[0, 1], stage=[0]):
                A[k] = 0.0

    with pytest.raises(BuildError, match="one entry per statement group: 2 vs 1") as e:
        T.prim_func(order)
    _check(e.value, order, "T.Pipelined(4, num_stages=2, order=[0, 1], stage=[0])")
