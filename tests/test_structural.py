"""structural_equal / structural_hash / assert_structural_equal: binders compare up to renaming,
free variables by identity (or mapped on request), everything else by value; failures show where."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tsir import T
from tsir.buffer import make_buffer
from tsir.dtype import DataType
from tsir.expr import Add, FloatImm, IntImm, Let, Var
from tsir.function import PrimFunc
from tsir.stmt import BufferStore, For, ForKind, LetStmt, SeqStmt
from tsir.structural import assert_structural_equal, structural_equal, structural_hash


def scale(
    name: str = "scale",
    loop: str = "i",
    factor: float = 2.0,
    n: int = 256,
    dt: str = "float32",
    buf: str = "A",
) -> PrimFunc:
    """A function whose loop variable, buffer name, constants and dtypes the tests vary."""
    with T.prim_func(name) as f:
        A = T.param(buf, (n,), dt)
        with T.Kernel(n // 128, threads=128) as bx:
            for v in T.Parallel(128):
                A[bx * 128 + v] = A[bx * 128 + v] * factor
    func = f.func
    # rename the loop variable the way a pass would, to show names are not compared
    loop_for = func.body.body
    renamed = Var(loop, loop_for.loop_var.dtype)
    from tsir.visitor import substitute

    return func.replace(
        body=func.body.replace(
            body=substitute(loop_for, {loop_for.loop_var: renamed}).replace(loop_var=renamed)
        )
    )


def mismatch(a, b, **kw) -> str:
    with pytest.raises(AssertionError) as e:
        assert_structural_equal(a, b, **kw)
    return str(e.value)


# -- equal up to renaming -------------------------------------------------------------------------


def test_independent_builds_are_equal_and_hash_equal() -> None:
    a, b = scale(), scale()
    assert a is not b and a.params[0] is not b.params[0]
    assert structural_equal(a, b)
    assert structural_hash(a) == structural_hash(b)
    assert_structural_equal(a, b)


def test_binder_names_are_not_compared() -> None:
    a, b = scale(loop="i", buf="A"), scale(loop="row", buf="X")
    assert a.body.body.loop_var.name != b.body.body.loop_var.name
    assert structural_equal(a, b)
    assert structural_hash(a) == structural_hash(b)


def test_function_names_are_compared() -> None:
    text = mismatch(scale(name="f"), scale(name="g"))
    assert "structural mismatch at func.name: values differ: 'f' vs 'g'" in text


def test_binders_map_one_to_one() -> None:
    """`for i: for j: A[i, j]` differs from `for i: for j: A[j, i]` though both bind two vars."""
    A = make_buffer("A", (4, 4), "int32")

    def nest(swap: bool):
        i, j = Var("i"), Var("j")
        idx = (j, i) if swap else (i, j)
        inner = For(j, IntImm(0), IntImm(4), ForKind.SERIAL, BufferStore(A, IntImm(0), idx))
        return For(i, IntImm(0), IntImm(4), ForKind.SERIAL, inner)

    assert structural_equal(nest(False), nest(False))
    text = mismatch(nest(False), nest(True))
    assert (
        "at stmt.body.body.indices[0]: variable `i` is mapped to `i` on the right, found `j`"
        in text
    )


def test_let_binders() -> None:
    x, y, z = Var("x"), Var("y"), Var("z")
    assert structural_equal(Let(x, IntImm(1), x + 1), Let(y, IntImm(1), y + 1))
    assert not structural_equal(Let(x, IntImm(1), x + 1), Let(y, IntImm(1), z + 1))
    assert structural_hash(Let(x, IntImm(1), x + 1)) == structural_hash(Let(y, IntImm(1), y + 1))


def test_dynamic_dimensions_are_defined_by_parameters() -> None:
    def build():
        M = T.dynamic("M")
        with T.prim_func("dyn") as f:
            A = T.param("A", (M,), "float32")
            with T.Kernel(T.ceildiv(M, 128), threads=128) as bx:
                for i in T.Parallel(128):
                    with T.If(bx * 128 + i < M):
                        A[bx * 128 + i] = 0.0
        return f.func

    a, b = build(), build()
    assert a.params[0].shape[0] is not b.params[0].shape[0]
    assert_structural_equal(a, b)
    assert structural_hash(a) == structural_hash(b)


# -- different ------------------------------------------------------------------------------------


def test_different_constant_names_the_path() -> None:
    text = mismatch(scale(factor=2.0), scale(factor=3.0))
    path = "func.body.body.body.value.b.value"
    assert f"structural mismatch at {path}: values differ: 2.0 vs 3.0" in text
    assert f"  lhs {path} = 2.0" in text and f"  rhs {path} = 3.0" in text


def test_different_dtype_names_the_path() -> None:
    text = mismatch(scale(dt="float32"), scale(dt="float16"))
    assert "structural mismatch at func.params[0].dtype: values differ:" in text
    assert "dtype('float32') vs dtype('float16')" in text


def test_different_structure_names_the_node_types() -> None:
    i = Var("i")
    text = mismatch(i + 1, i - 1)
    assert "structural mismatch at expr: node types differ: Add vs Sub" in text


def test_different_lengths() -> None:
    A = make_buffer("A", (4,), "int32")
    s1 = BufferStore(A, IntImm(1), (IntImm(0),))
    text = mismatch(SeqStmt((s1, s1)), SeqStmt((s1, s1, s1)))
    assert "structural mismatch at stmt.stmts: lengths differ: 2 vs 3" in text


def test_floats_compare_exactly() -> None:
    assert not structural_equal(FloatImm(0.0), FloatImm(-0.0))
    assert structural_equal(FloatImm(float("nan")), FloatImm(float("nan")))
    assert not structural_equal(IntImm(1), IntImm(1, "int64"))
    assert not structural_equal(IntImm(1, "bool"), IntImm(1))


def test_mismatch_message_shows_both_irs_with_the_node_marked() -> None:
    text = mismatch(scale(factor=2.0), scale(factor=3.0))
    lhs, rhs = text.split("--- lhs ---\n")[1].split("--- rhs ---\n")
    for side, value in ((lhs, "2.0"), (rhs, "3.0")):
        lines = side.splitlines()
        k = next(n for n, line in enumerate(lines) if f"* {value}" in line)
        carets = lines[k + 1]
        assert set(carets.strip()) == {"^"}
        start = carets.index("^")
        assert lines[k][start : start + len(carets.strip())] == value


def test_mismatch_in_a_buffer_marks_its_declaration() -> None:
    text = mismatch(scale(n=256), scale(n=512))
    assert "structural mismatch at func.params[0].shape[0].value: values differ: 256 vs 512" in text
    assert re.search(r'A = T\.param\("A", \(256,\), "float32"\)\n +\^\^\^', text)


# -- free variables -------------------------------------------------------------------------------


def test_free_vars_compare_by_identity() -> None:
    x, y = Var("x"), Var("x")
    assert structural_equal(x + 1, x + 1)
    assert not structural_equal(x + 1, y + 1)
    text = mismatch(x + 1, y + 1)
    assert "free variables `x` and `x` are different objects" in text
    assert "map_free_vars=True" in text
    assert structural_hash(x + 1) != structural_hash(y + 1)


def test_map_free_vars() -> None:
    x, y, z = Var("x"), Var("y"), Var("z")
    assert structural_equal(x + y, y + x, map_free_vars=True)
    assert structural_equal(x * x, z * z, map_free_vars=True)
    assert not structural_equal(x * x, x * y, map_free_vars=True)  # one-to-one
    assert not structural_equal(x + y, z + z, map_free_vars=True)
    assert not structural_equal(x, Var("w", "int64"), map_free_vars=True)  # dtypes still compared
    assert structural_hash(x * x, map_free_vars=True) == structural_hash(z * z, map_free_vars=True)


def test_free_buffers() -> None:
    A, B = make_buffer("A", (4,), "int32"), make_buffer("B", (4,), "int32")
    s = lambda buf: BufferStore(buf, IntImm(1), (IntImm(0),))  # noqa: E731
    assert not structural_equal(s(A), s(B))
    assert structural_equal(s(A), s(B), map_free_vars=True)
    C = make_buffer("C", (8,), "int32")
    assert not structural_equal(s(A), s(C), map_free_vars=True)  # shapes still compared


def test_let_stmt_value_and_body() -> None:
    A = make_buffer("A", (4,), "int32")
    x, y = Var("x"), Var("y")
    a = LetStmt(x, IntImm(3), BufferStore(A, x, (IntImm(0),)))
    b = LetStmt(y, IntImm(3), BufferStore(A, y, (IntImm(0),)))
    assert structural_equal(a, b) and structural_hash(a) == structural_hash(b)


# -- hash consistency -----------------------------------------------------------------------------


@st.composite
def small_exprs(draw, depth: int = 3):
    leaves = [Var("a"), Var("b"), IntImm(draw(st.integers(-5, 5)))]
    if depth == 0 or draw(st.booleans()):
        return draw(st.sampled_from(leaves))
    op = draw(st.sampled_from(["+", "-", "*", "min", "let"]))
    a, b = draw(small_exprs(depth - 1)), draw(small_exprs(depth - 1))
    if op == "min":
        return T.min(a, b)
    if op == "let":
        v = Var("v")
        return Let(v, a, Add(v, b))
    return {"+": Add, "-": lambda p, q: p - q, "*": lambda p, q: p * q}[op](a, b)


def _copy(e):
    """The same expression rebuilt with fresh Let variables (free variables kept)."""
    from tsir.visitor import Mutator

    class Fresh(Mutator):
        def visit_Let(self, n: Let):
            v = Var(n.var.name + "_copy", n.var.dtype)
            from tsir.visitor import substitute

            return Let(v, self.visit(n.value), self.visit(substitute(n.body, {n.var: v})))

    return Fresh().visit(e)


@settings(max_examples=200, deadline=None)
@given(small_exprs(), small_exprs())
def test_hash_is_consistent_with_equality(a, b) -> None:
    assert structural_equal(a, _copy(a))
    assert structural_hash(a) == structural_hash(_copy(a))
    if structural_equal(a, b):
        assert structural_hash(a) == structural_hash(b)
    if structural_equal(a, b, map_free_vars=True):
        assert structural_hash(a, map_free_vars=True) == structural_hash(b, map_free_vars=True)


def test_hash_is_stable_across_processes() -> None:
    """Without free variables the hash depends only on the structure (no id(), no str hash)."""
    import os
    import subprocess
    import sys

    code = (
        "from tsir.expr import Let, Var, IntImm; from tsir.structural import structural_hash; "
        "v = Var('v'); print(structural_hash(Let(v, IntImm(3), v * v)))"
    )
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("1", "2")
    }
    assert len(outs) == 1
    v = Var("w")
    assert outs.pop().strip() == str(structural_hash(Let(v, IntImm(3), v * v)))


def test_dtype_objects_compare_by_value() -> None:
    assert structural_equal(Var("x", DataType("float32")).dtype, DataType("float32"))


def test_the_testing_api_is_at_the_top_level() -> None:
    """DESIGN's 2026-12-07 additions: the pass-level testing API at `tsir.*`, and still in
    `tsir.structural`; one error base name."""
    import tsir
    import tsir.structural as structural

    assert tsir.structural_equal is structural.structural_equal
    assert tsir.assert_structural_equal is structural.assert_structural_equal
    assert tsir.structural_hash is structural.structural_hash
    assert issubclass(tsir.VerifyError, tsir.TSIRError)
    assert not hasattr(tsir, "TsirError")
