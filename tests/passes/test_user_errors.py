"""Errors leaving the pipeline name the pass and the user's line (issue 12, item 5): a TSIRError a
pass raises without a location gets the statement it was rewriting; any other exception is a tsir
bug, reported as a short `tsir.InternalError` (TSIR_DEBUG=1: the original, with its traceback)."""

from __future__ import annotations

import inspect

import pytest
from tsir.passes import Pass, run_pipeline

import tsir
from tsir import T, knobs
from tsir.stmt import BufferStore
from tsir.visitor import Mutator


def kernel() -> tuple[tsir.PrimFunc, int]:
    with T.prim_func("f") as f:
        X = T.param("X", (64,), "float32")
        with T.Kernel(1, threads=64):
            tx = T.get_thread_binding(0)
            X[tx] = X[tx] + 1.0  # the store the broken passes below stop at
            line = inspect.currentframe().f_lineno - 1  # type: ignore[union-attr]
    return f.func, line


class _Raise(Mutator):
    def __init__(self, exc: Exception):
        super().__init__()
        self.exc = exc

    def visit_BufferStore(self, s: BufferStore) -> BufferStore:
        raise self.exc


def broken(exc: Exception) -> Pass:
    return Pass("Broken", lambda ir, ctx: _Raise(exc).visit(ir), "raises inside a store")


def test_a_refusal_without_a_location_gets_the_statement_being_rewritten() -> None:
    func, line = kernel()
    with pytest.raises(tsir.UnsupportedError) as e:
        run_pipeline(func, "sm_80", [broken(tsir.UnsupportedError("cannot do this store"))])
    assert e.value.where == "Broken"
    assert e.value.loc is not None and (e.value.loc.filename, e.value.loc.lineno) == (
        __file__,
        line,
    )
    assert str(e.value).startswith("[Broken] cannot do this store\n  at ")
    assert "X[tx] = X[tx] + 1.0" in str(e.value)


def test_a_python_exception_inside_a_pass_is_a_short_internal_error() -> None:
    func, line = kernel()
    with pytest.raises(tsir.InternalError) as e:
        run_pipeline(func, "sm_80", [broken(KeyError("lost"))])
    err = e.value
    assert isinstance(err, tsir.TSIRError) and isinstance(err.original, KeyError)
    assert err.where == "Broken" and err.loc is not None and err.loc.lineno == line
    assert "internal error, a tsir bug: KeyError: 'lost' (raised at test_user_errors.py:" in str(
        err
    )
    assert err.__cause__ is None and err.__suppress_context__  # no 40-frame chained traceback


def test_tsir_debug_lets_the_original_exception_through() -> None:
    func, _ = kernel()
    with knobs.override(debug=True), pytest.raises(KeyError, match="lost"):
        run_pipeline(func, "sm_80", [broken(KeyError("lost"))])


def test_a_real_refusal_of_the_pipeline_names_the_user_line() -> None:
    """LowerTileOp's refusal of a fragment copy in a thread range, raised outside any walker
    that knows the statement: it gets the `T.copy` line."""
    with T.prim_func("frag_range") as f:
        X = T.param("X", (16, 64), "float32")
        with T.Kernel(1, threads=256):
            tx = T.get_thread_binding(0)
            g = T.alloc_fragment((16, 64), "float32")
            with T.If(tx < 128):
                T.copy(X, g)
    with pytest.raises(tsir.TSIRError) as e:
        tsir.lower(f.func, "sm_80")
    assert e.value.loc is not None and e.value.loc.filename == __file__
    assert "LowerTileOp" in str(e.value)
