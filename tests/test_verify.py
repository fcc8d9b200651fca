"""tsir.verify: every class of malformed IR is caught, with a message that names the pass and the
problem; well-formed functions pass."""

from __future__ import annotations

import pytest

import tsir
from tsir import T
from tsir.buffer import BufferRegion, make_buffer
from tsir.dtype import DataType
from tsir.expr import Add, BufferLoad, Call, Div, FloatImm, IntImm, Select, Var
from tsir.function import DeviceKernel, Module, PrimFunc
from tsir.stmt import (
    Allocate,
    BufferStore,
    Evaluate,
    For,
    ForKind,
    IfThenElse,
    KernelCall,
    KernelLaunch,
    LetStmt,
    SeqStmt,
    TileOpStmt,
)
from tsir.tileop import Copy
from tsir.verify import ALLOWED_CALL_PREFIXES, verify

i32 = DataType("int32")
f32 = DataType("float32")


def vector_add() -> PrimFunc:
    with T.prim_func("vector_add") as f:
        A = T.param("A", (1024,), "float32")
        B = T.param("B", (1024,), "float32")
        with T.Kernel(8, threads=128) as bx:
            for i in T.Parallel(128):
                B[bx * 128 + i] = A[bx * 128 + i] + 1.0
    return f.func


def tile() -> PrimFunc:
    M = T.dynamic("M")
    with T.prim_func("tile") as f:
        A = T.param("A", (M, 64), "float16")
        n = T.scalar("n")
        with T.Kernel(T.ceildiv(M, 128), threads=128) as bx:
            tx = T.get_thread_binding(0)
            A_s = T.alloc_shared((128, 64), "float16")
            T.copy(A[bx * 128, 0], A_s)
            T.sync_threads()
            for k in T.Pipelined(4, num_stages=2):
                for i, j in T.Parallel(32, 64):
                    with T.If(tx < n):
                        A_s[k * 32 + i, j] = A_s[k * 32 + i, j] * 2.0
                    with T.Else():
                        A_s[k * 32 + i, j] = T.if_then_else(tx > 3, T.float16(0), A_s[i, j])
            T.copy(A_s, A[bx * 128, 0])
    return f.func


def func(body, *params, name="f") -> PrimFunc:
    return PrimFunc(name, tuple(params), body)


def kernel(body, name="k", threads=128):
    bx, tx = Var("bx"), Var("tx")
    return KernelLaunch(name, (IntImm(1),), (threads,), (bx,), (tx,), body(bx, tx))


def problems(ir, pass_name=None) -> str:
    with pytest.raises(tsir.VerifyError) as e:
        verify(ir, pass_name=pass_name)
    return str(e.value)


A = make_buffer("A", (128,), "float32")
A2 = make_buffer("A2", (16, 16), "float32")
IB = make_buffer("IB", (128,), "int32")


def store(buf, value, *idx):
    return BufferStore(buf, value, tuple(idx))


# -- well-formed ----------------------------------------------------------------------------------


@pytest.mark.parametrize("build", [vector_add, tile])
def test_builder_functions_verify(build) -> None:
    verify(build())
    tsir.verify(build(), pass_name="Verify")


def test_module_with_device_kernel_verifies() -> None:
    n, bx, tx = Var("n"), Var("bx"), Var("tx")
    B = make_buffer("B", (n,), "float32")
    body = IfThenElse(bx * 128 + tx < n, store(B, FloatImm(0.0), bx * 128 + tx))
    k = DeviceKernel("k", (B, n), ((n + 127) // 128,), (128,), (bx,), (tx,), body)
    host = PrimFunc("host", (B, n), KernelCall("k", ((n + 127) // 128,), (128,), 0, (B, n)))
    verify(Module(host, (k,)))


# -- scopes ---------------------------------------------------------------------------------------


def test_loop_var_used_after_its_loop() -> None:
    i = Var("i")
    loop = For(i, IntImm(0), IntImm(128), ForKind.SERIAL, store(A, FloatImm(0.0), i))
    f = func(kernel(lambda bx, tx: SeqStmt((loop, store(A, FloatImm(1.0), i)))), A)
    text = problems(f, pass_name="LowerTileOp")
    assert text.startswith("[LowerTileOp] malformed IR in `f` (1 problem):")
    assert "variable `i` is used outside its scope: the `for` loop over `i` has ended" in text
    assert "in `A[i] = 1.0` at func.body.body.stmts[1].indices[0]" in text


def test_loop_bound_may_not_use_its_own_var() -> None:
    i = Var("i")
    loop = For(i, IntImm(0), i + 1, ForKind.SERIAL, store(A, FloatImm(0.0), i))
    text = problems(func(kernel(lambda bx, tx: loop), A))
    assert "variable `i` is used but never defined" in text


def test_block_var_used_outside_its_kernel() -> None:
    first = kernel(lambda bx, tx: store(A, FloatImm(0.0), bx), name="first")
    bx = first.block_vars[0]
    second = kernel(lambda _bx, tx: store(A, FloatImm(0.0), bx), name="second")
    text = problems(func(SeqStmt((first, second)), A))
    assert "variable `bx` is used outside its scope: the kernel `first` has ended" in text


def test_undefined_variable() -> None:
    ghost = Var("ghost")
    text = problems(func(kernel(lambda bx, tx: store(A, FloatImm(0.0), ghost)), A))
    assert (
        "variable `ghost` is used but never defined (it is not a parameter, a loop variable, a "
        "kernel index or a let variable)"
    ) in text


def test_let_scope() -> None:
    v = Var("v")
    let = LetStmt(v, IntImm(1), store(A, FloatImm(0.0), v))
    text = problems(func(kernel(lambda bx, tx: SeqStmt((let, store(A, FloatImm(0.0), v)))), A))
    assert "variable `v` is used outside its scope: the let of `v` has ended" in text


def test_variable_defined_twice_in_its_own_scope() -> None:
    i = Var("i")
    inner = For(i, IntImm(0), IntImm(4), ForKind.SERIAL, store(A, FloatImm(0.0), i))
    outer = For(i, IntImm(0), IntImm(4), ForKind.SERIAL, inner)
    text = problems(func(kernel(lambda bx, tx: outer), A))
    assert (
        "variable `i` is defined again by the `for` loop over `i` inside its own scope (defined by "
        "the `for` loop over `i`)"
    ) in text


def test_buffer_used_outside_the_kernel_that_allocates_it() -> None:
    S = make_buffer("S", (128,), "float32", "shared.dyn")
    first = kernel(lambda bx, tx: Allocate(S, store(S, FloatImm(0.0), tx)), name="first")
    second = kernel(lambda bx, tx: store(A, BufferLoad(S, (tx,)), tx), name="second")
    text = problems(func(SeqStmt((first, second)), A))
    assert "buffer `S` (shared.dyn) is used outside the kernel `first` that allocates it" in text


def test_buffer_in_a_tile_op_outside_its_kernel() -> None:
    S = make_buffer("S", (128,), "float32", "shared.dyn")
    first = kernel(lambda bx, tx: Allocate(S, store(S, FloatImm(0.0), tx)), name="first")
    second = kernel(
        lambda bx, tx: TileOpStmt(Copy(BufferRegion.full(S), BufferRegion.full(A))), name="second"
    )
    text = problems(func(SeqStmt((first, second)), A))
    assert "buffer `S` (shared.dyn) is used outside the kernel `first` that allocates it" in text
    assert "at func.body.stmts[1].body.op.src.buffer" in text


def test_undeclared_buffer() -> None:
    text = problems(func(kernel(lambda bx, tx: store(A, FloatImm(0.0), tx))))
    assert (
        "buffer `A` is used but never defined (it is not a parameter and no Allocate or "
        "DeclBuffer defines it)" in text
    )


def test_shared_buffer_allocated_outside_a_kernel() -> None:
    S = make_buffer("S", (128,), "float32", "shared.dyn")
    text = problems(func(Allocate(S, Evaluate(IntImm(0)))))
    assert "buffer `S` (shared.dyn) is allocated outside any kernel" in text


def test_nested_kernels() -> None:
    inner = kernel(lambda bx, tx: store(A, FloatImm(0.0), tx), name="inner")
    text = problems(func(kernel(lambda bx, tx: inner, name="outer"), A))
    assert "kernel `inner` is launched inside kernel `outer`; kernels do not nest" in text


# -- buffer accesses ------------------------------------------------------------------------------


def test_index_count_must_match_ndim() -> None:
    text = problems(func(kernel(lambda bx, tx: store(A2, BufferLoad(A2, (tx,)), tx, tx)), A2))
    assert "`A2[tx]` has 1 indices but buffer `A2` has 2 dimensions" in text


def test_indices_must_be_integers() -> None:
    x = Var("x", "float32")
    text = problems(func(kernel(lambda bx, tx: store(A, FloatImm(0.0), x)), A, x))
    assert "index 0 of `A[x] = 0.0` is `x` of dtype float32; indices must be integers" in text


def test_store_value_dtype_must_match_buffer() -> None:
    text = problems(func(kernel(lambda bx, tx: store(A, tx, tx)), A))
    assert (
        "a value of dtype int32 is stored into the float32 buffer `A`; insert a Cast to float32"
        in text
    )


# -- dtypes ---------------------------------------------------------------------------------------


def test_binary_operands_must_share_a_dtype() -> None:
    w = Var("w", "int64")
    text = problems(func(kernel(lambda bx, tx: store(IB, Add(tx, w), tx)), IB, w))
    assert (
        "`tx + w` (Add) mixes int32 and int64; both operands need one dtype (insert a Cast)" in text
    )


def test_integer_div_is_rejected() -> None:
    text = problems(func(kernel(lambda bx, tx: store(IB, Div(tx, IntImm(2)), tx)), IB))
    assert (
        "`tx / 2` is a Div of int32 operands; Div is true division of floats (use FloorDiv for "
        "integers)" in text
    )


def test_if_condition_must_be_bool() -> None:
    text = problems(func(kernel(lambda bx, tx: IfThenElse(tx, store(A, FloatImm(0.0), tx))), A))
    assert (
        "the condition `tx` of an if has dtype int32, expected bool (compare it, e.g. `x != 0`)"
        in text
    )


def test_select_condition_must_be_bool() -> None:
    sel = Select(IntImm(1), FloatImm(1.0), FloatImm(2.0))
    text = problems(func(kernel(lambda bx, tx: store(A, sel, tx)), A))
    assert "the condition `1` of a Select has dtype int32, expected bool" in text


def test_loop_bounds_must_match_the_loop_var() -> None:
    i = Var("i")
    loop = For(i, IntImm(0), IntImm(4, "int64"), ForKind.SERIAL, store(A, FloatImm(0.0), i))
    text = problems(func(kernel(lambda bx, tx: loop), A))
    assert (
        "the extent `T.int64(4)` of the loop over `i` has dtype int64, but the loop variable is "
        "int32" in text
    )


def test_let_value_dtype() -> None:
    v = Var("v")
    text = problems(
        func(kernel(lambda bx, tx: LetStmt(v, FloatImm(1.0), store(A, FloatImm(0.0), v))), A)
    )
    assert "let `v` of dtype int32 is bound to a float32 value" in text


# -- calls ----------------------------------------------------------------------------------------


def test_unknown_call_op() -> None:
    call = Call(f32, "expp", (FloatImm(1.0),))
    text = problems(func(kernel(lambda bx, tx: store(A, call, tx)), A))
    assert (
        '`T.call_intrin("float32", "expp", 1.0)` calls `expp`, which is not an intrinsic of '
        "tsir.intrin.INTRINSICS; register it there, or name an extern function with one of the "
        "prefixes 'tsir.', 'extern:'"
    ) in text


@pytest.mark.parametrize("prefix", ALLOWED_CALL_PREFIXES)
def test_prefixed_calls_are_allowed(prefix) -> None:
    call = Call(f32, prefix + "my_fn", (FloatImm(1.0),))
    verify(func(kernel(lambda bx, tx: store(A, call, tx)), A))


def test_intrinsic_arity() -> None:
    call = Call(f32, "exp", (FloatImm(1.0), FloatImm(2.0)))
    text = problems(func(kernel(lambda bx, tx: store(A, call, tx)), A))
    assert "passes 2 argument(s) to `exp`, which takes 1" in text


# -- reporting ------------------------------------------------------------------------------------


def test_all_problems_are_listed_once() -> None:
    ghost = Var("ghost")
    body = SeqStmt(
        (
            store(A, FloatImm(0.0), ghost),
            store(A, FloatImm(0.0), ghost),
            store(A, tx_i := Var("t"), IntImm(0)),
        )
    )
    text = problems(func(kernel(lambda bx, tx: body), A))
    assert "(3 problems)" in text
    assert text.count("`ghost` is used but never defined") == 1
    assert (
        "  1. variable `ghost`" in text
        and "  2. a value of dtype int32" in text
        and "  3. variable `t`" in text
    )
    del tx_i


def test_error_without_pass_name_has_no_prefix() -> None:
    ghost = Var("ghost")
    text = problems(func(kernel(lambda bx, tx: store(A, FloatImm(0.0), ghost)), A))
    assert text.startswith("malformed IR in `f` (1 problem):")


def test_verify_error_carries_the_pass_and_problems() -> None:
    ghost = Var("ghost")
    with pytest.raises(tsir.VerifyError) as e:
        verify(func(kernel(lambda bx, tx: store(A, FloatImm(0.0), ghost)), A), pass_name="Simplify")
    assert e.value.where == "Simplify"
    assert len(e.value.problems) == 1


def test_module_launches_must_match_its_kernels() -> None:
    n, bx, tx = Var("n"), Var("bx"), Var("tx")
    B = make_buffer("B", (n,), "float32")
    k = DeviceKernel("k", (B, n), (IntImm(1),), (128,), (bx,), (tx,), store(B, FloatImm(0.0), tx))
    bad = SeqStmt(
        (
            KernelCall("k", (IntImm(1),), (128,), 0, (B,)),
            KernelCall("k2", (IntImm(1),), (128,), 0, (B, n)),
        )
    )
    text = problems(Module(PrimFunc("host", (B, n), bad), (k,)))
    assert "the host launches kernel `k` with 1 arguments; it takes 2" in text
    assert "the host launches kernel `k2`, which the module does not have (kernels: k)" in text
