"""Every builder misuse raises a TSIRError subclass that names the user's source line."""

from __future__ import annotations

import inspect

import pytest

import tsir
from tsir import T


def here() -> int:
    """The line number of the caller (the line that should appear in the error)."""
    return inspect.currentframe().f_back.f_lineno  # type: ignore[union-attr]


def assert_user_error(exc: tsir.TSIRError, line: int, *fragments: str) -> None:
    text = str(exc)
    for frag in fragments:
        assert frag in text, f"{frag!r} not in {text!r}"
    assert exc.loc is not None
    assert exc.loc.filename == __file__
    assert exc.loc.lineno == line
    assert f"{__file__}:{line}" in text


def test_buffer_used_outside_its_kernel() -> None:
    with pytest.raises(tsir.BuildError) as e:
        with T.prim_func("f"):
            A = T.param("A", (128,), "float32")
            with T.Kernel(1, threads=128):
                S = T.alloc_shared((128,), "float32")
                T.copy(A, S)
            with T.Kernel(1, threads=128):
                line = here() + 1
                T.copy(S, A)
    assert_user_error(e.value, line, "`S`", "another kernel")


def test_global_element_access_outside_kernel() -> None:
    with pytest.raises(tsir.BuildError) as e:
        with T.prim_func("f"):
            A = T.param("A", (128,), "float32")
            line = here() + 1
            A[0] = 1.0
    assert_user_error(e.value, line, "`A`", "outside a `T.Kernel`")


def test_wrong_number_of_indices() -> None:
    with pytest.raises(tsir.BuildError) as e:
        with T.prim_func("f"):
            A = T.param("A", (16, 16), "float32")
            with T.Kernel(1, threads=32):
                line = here() + 1
                A[0] = 1.0
    assert_user_error(e.value, line, "`A` has 2 dimensions (16, 16), got 1 index")


def test_copy_shape_mismatch() -> None:
    with pytest.raises(tsir.BuildError) as e:
        with T.prim_func("f"):
            A = T.param("A", (64, 64), "float16")
            with T.Kernel(1, threads=128):
                S = T.alloc_shared((32, 64), "float16")
                line = here() + 1
                T.copy(A, S)
    assert_user_error(
        e.value, line, "T.copy shape mismatch", "`A` region (64, 64)", "`S` region (32, 64)"
    )


def test_float_index() -> None:
    with pytest.raises(tsir.DTypeError) as e:
        with T.prim_func("f"):
            A = T.param("A", (16,), "float32")
            with T.Kernel(1, threads=16) as bx:
                x = T.cast(bx, "float32")
                line = here() + 1
                A[x] = 0.0
    assert_user_error(e.value, line, "index 0 is the float", "`A`")


def test_dtype_mismatch_in_arithmetic() -> None:
    with pytest.raises(tsir.DTypeError) as e:
        with T.prim_func("f"):
            A = T.param("A", (16,), "float32")
            H = T.param("H", (16,), "float16")
            with T.Kernel(1, threads=16):
                for i in T.Parallel(16):
                    line = here() + 1
                    A[i] = A[i] + H[i]
    assert_user_error(e.value, line, "mixes float32", "float16", "T.cast")


def test_float_literal_with_integer_expression() -> None:
    with pytest.raises(tsir.DTypeError) as e:
        with T.prim_func("f"):
            A = T.param("A", (16,), "int32")
            with T.Kernel(1, threads=16):
                for i in T.Parallel(16):
                    line = here() + 1
                    A[i] = A[i] * 1.5
    assert_user_error(e.value, line, "float literal 1.5", "int32")


def test_truth_value_of_symbolic_expression() -> None:
    with pytest.raises(tsir.BuildError) as e:
        with T.prim_func("f"):
            A = T.param("A", (16,), "float32")
            with T.Kernel(1, threads=16) as bx:
                line = here() + 1
                if bx < 3:
                    A[bx] = 0.0
    assert_user_error(e.value, line, "truth value", "T.If")


@pytest.mark.parametrize("form", ["eq", "ne", "and", "not", "in", "while"])
def test_truth_value_of_symbolic_equality(form: str) -> None:
    """`==` and `!=` on symbolic expressions are run-time values too: a Python `if` (or `and`,
    `not`, `in`, `while`) on them must raise, never silently pick a branch (issue 9)."""
    with pytest.raises(tsir.BuildError) as e:
        with T.prim_func("f"):
            A = T.param("A", (16,), "float32")
            with T.Kernel(1, threads=16) as bx:
                tx = T.get_thread_binding(0)
                line = here() + 2
                if form == "eq":
                    if tx == 0:
                        A[bx] = 0.0
                elif form == "ne":
                    if bx != 0:
                        A[bx] = 0.0
                elif form == "and":
                    _ = (tx == 1) and (bx == 0)
                elif form == "not":
                    _ = not (tx != 3)  # noqa: SIM202  (the form under test)
                elif form == "in":
                    _ = tx in (bx, 1)
                else:
                    while tx == bx:
                        break
    fragment = "!=" if form in ("ne", "not") else "=="
    assert_user_error(e.value, line + _FORM_LINE[form], "truth value", fragment, "T.If", "`is`")


_FORM_LINE = {"eq": 0, "ne": 3, "and": 6, "not": 8, "in": 10, "while": 12}


def test_an_expression_equals_itself() -> None:
    """The one decidable case: a node compared with itself (`x in [x]`) is True."""
    with T.prim_func("f"):
        with T.Kernel(1, threads=16):
            tx = T.get_thread_binding(0)
            assert bool(tx == tx)
            assert not bool(tx != tx)
            assert tx in [tx]


def test_parallel_outside_kernel() -> None:
    with pytest.raises(tsir.BuildError) as e:
        with T.prim_func("f"):
            T.param("A", (16,), "float32")
            line = here() + 1
            for _i in T.Parallel(16):
                pass
    assert_user_error(e.value, line, "T.Parallel must be inside a T.Kernel")


def test_too_many_threads() -> None:
    with pytest.raises(tsir.BuildError) as e:
        with T.prim_func("f"):
            line = here() + 1
            with T.Kernel(1, threads=(64, 32)):
                pass
    assert_user_error(e.value, line, "2048 threads per block exceeds")


def test_nested_kernel() -> None:
    with pytest.raises(tsir.BuildError) as e:
        with T.prim_func("f"):
            with T.Kernel(1):
                line = here() + 1
                with T.Kernel(1):
                    pass
    assert_user_error(e.value, line, "cannot be nested")


def test_constant_index_out_of_range() -> None:
    with pytest.raises(tsir.BuildError) as e:
        with T.prim_func("f"):
            A = T.param("A", (16,), "float32")
            with T.Kernel(1):
                line = here() + 1
                A[16] = 0.0
    assert_user_error(e.value, line, "index 16 is out of range", "extent 16")


def test_constant_division_by_zero() -> None:
    with pytest.raises(tsir.ArithError) as e:
        with T.prim_func("f"):
            A = T.param("A", (16,), "int32")
            with T.Kernel(1) as bx:
                A[0] = bx // 0
    assert "division by zero" in str(e.value)


def test_else_without_if() -> None:
    with pytest.raises(tsir.BuildError) as e:
        with T.prim_func("f"):
            with T.Kernel(1):
                line = here() + 1
                with T.Else():
                    pass
    assert_user_error(e.value, line, "must directly follow")


def test_builder_state_is_clean_after_an_error() -> None:
    with pytest.raises(tsir.BuildError):
        with T.prim_func("bad"):
            with T.Kernel(1):
                with T.Kernel(1):
                    pass
    with T.prim_func("good") as f:
        A = T.param("A", (16,), "float32")
        with T.Kernel(1, threads=16):
            for i in T.Parallel(16):
                A[i] = 0.0
    assert isinstance(f.func, tsir.PrimFunc)
    assert f.func.name == "good"


def test_finalize_of_a_plain_fragment_is_refused() -> None:
    with pytest.raises(tsir.BuildError) as e:
        with T.prim_func("f"):
            with T.Kernel(1, threads=64):
                F = T.alloc_fragment((4,), "float32")
                line = here() + 1
                T.finalize_reducer(F)
    assert_user_error(e.value, line, "was not made by T.alloc_reducer")


def test_floating_write_to_a_distributed_fragment_is_refused() -> None:
    """Every thread would run the store, but a gemm accumulator's elements live in one thread
    each. (A floating read is fine: tests/tileop/test_replicated_fragments.py.)"""
    with T.prim_func("f") as f:
        A = T.param("A", (64, 32), "float16")
        C = T.param("C", (64, 64), "float32")
        with T.Kernel(1, threads=128):
            A_s = T.alloc_shared((64, 32), "float16")
            F = T.alloc_fragment((64, 64), "float32")
            T.copy(A, A_s)
            T.gemm(A_s, A_s, F, transpose_B=True, clear_accum=True)
            F[0, 0] = 1.0
            T.copy(F, C)
    with pytest.raises(tsir.UnsupportedError, match="`F` is written outside T.Parallel"):
        tsir.lower(f.func, "sm_90a")


def _gemm_case(a_shape, b_shape, c_shape, dtype="float16", c_dtype="float32", **kw):  # type: ignore[no-untyped-def]
    with T.prim_func("g"):
        with T.Kernel(1, threads=128):
            A_s = T.alloc_shared(a_shape, dtype)
            B_s = T.alloc_shared(b_shape, dtype)
            C_f = T.alloc_fragment(c_shape, c_dtype)
            line = here() + 1
            T.gemm(A_s, B_s, C_f, **kw)
    return line  # pragma: no cover - the gemm raises first


@pytest.mark.parametrize(
    "args,kw,fragments",
    [
        (
            ((64, 32), (32, 64), (64, 64), "float32"),
            {},
            ("T.gemm", "float32", "float16 or bfloat16"),
        ),
        (((64, 24), (24, 64), (64, 64)), {}, ("T.gemm", "K tile (24) must be a multiple of 16")),
        (((64, 32), (16, 64), (64, 64)), {}, ("T.gemm", "A has K = 32 but B has K = 16")),
        (((64, 32), (32, 64), (64, 32)), {}, ("T.gemm", "C is 64x32 but A @ B is 64x64")),
        (((64, 32), (32, 64), (64, 64), "float16", "float16"), {}, ("accumulates in float32",)),
        (((64, 32), (32, 64), (64, 64)), {"policy": "rows"}, ("policy must be",)),
    ],
)
def test_gemm_the_hardware_cannot_do(args, kw, fragments) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(tsir.BuildError) as e:
        _gemm_case(*args, **kw)
    for frag in fragments:
        assert frag in str(e.value)
    assert e.value.loc is not None and e.value.loc.filename == __file__


@pytest.mark.parametrize(
    "attrs, fragment",
    [
        ({"target": "sm_90a"}, "unknown attribute 'target'"),
        ({"global_symbol": "main"}, "names the function's symbol after the function ('f')"),
        ({"tir.noalias": False}, "tir.noalias must be True"),
        ({"fast_math": 1}, "is not a mode"),
    ],
)
def test_func_attr_takes_only_what_tsir_honours(attrs: dict[str, object], fragment: str) -> None:
    with pytest.raises(tsir.BuildError) as e:
        with T.prim_func("f"):
            line = here() + 1
            T.func_attr(attrs)
    assert_user_error(e.value, line, fragment)


def test_func_attr_in_tvm_script_form_is_accepted() -> None:
    with T.prim_func("main") as f:
        T.func_attr({"global_symbol": "main", "tir.noalias": T.bool(True)})
        A = T.param("A", (4,), "float32")
        with T.Kernel(1, threads=32):
            A[0] = 1.0
    assert f.func.attr("tir.noalias") is not None
