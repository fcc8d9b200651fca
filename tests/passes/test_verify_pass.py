"""Verify, the pipeline's first pass: well-formed IR passes through unchanged (the same object);
malformed IR raises a VerifyError naming the pass and the problem. The rules themselves are
tested in tests/test_verify.py."""

from __future__ import annotations

import pytest
from tsir.passes import PassContext, get

import tsir
from tsir import T
from tsir.expr import IntImm, Var
from tsir.stmt import BufferStore, For, ForKind, KernelLaunch, seq

CTX = PassContext(tsir.Target.parse("sm_90a"))


def test_well_formed_ir_is_returned_as_it_is() -> None:
    with T.prim_func("f") as f:
        A = T.param("A", (128,), "float32")
        with T.Kernel(1, threads=128):
            for i in T.Parallel(128):
                A[i] = A[i] + 1.0
    assert get("Verify")(f.func, CTX) is f.func


def test_malformed_ir_names_the_pass_and_the_problem() -> None:
    """A loop variable read after its loop."""
    A = tsir.buffer.make_buffer("A", (128,), "float32")
    i, bx, tx = Var("i"), Var("bx"), Var("tx")
    loop = For(i, IntImm(0), IntImm(128), ForKind.SERIAL, BufferStore(A, tsir.FloatImm(0.0), (i,)))
    body = seq(loop, BufferStore(A, tsir.FloatImm(1.0), (i,)))
    func = tsir.PrimFunc("f", (A,), KernelLaunch("k", (IntImm(1),), (128,), (bx,), (tx,), body))
    with pytest.raises(
        tsir.VerifyError, match=r"(?s)\[Verify\].*variable `i` is used outside its scope"
    ):
        get("Verify")(func, CTX)
