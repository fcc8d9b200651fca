"""The printer: golden builder text, the round trip print -> rebuild -> structural_equal, expression
precedence and constants, name disambiguation, the text forms of lowered IR, and marks."""

from __future__ import annotations

import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tsir
from tsir import T
from tsir.buffer import Buffer, BufferRegion, Range, make_buffer
from tsir.dtype import DataType, dtype
from tsir.expr import (
    Add,
    Broadcast,
    BufferLoad,
    Call,
    FloatImm,
    IntImm,
    Let,
    Min,
    Not,
    Ramp,
    Select,
    Sub,
    Var,
    const,
)
from tsir.function import DeviceKernel, Module, PrimFunc
from tsir.node import node
from tsir.printer import print_expr, print_func, print_node, rebuild
from tsir.stmt import (
    Allocate,
    AttrStmt,
    BufferStore,
    DeclBuffer,
    Evaluate,
    For,
    ForKind,
    KernelCall,
    KernelLaunch,
    LetStmt,
    SeqStmt,
    TileOpStmt,
)
from tsir.structural import assert_structural_equal, structural_equal
from tsir.tileop import TileOperatorNode


def golden(text: str) -> str:
    return textwrap.dedent(text).strip("\n")


# -- the example functions ------------------------------------------------------------------------


def vector_add(n: int = 1024, block: int = 128) -> PrimFunc:
    with T.prim_func("vector_add") as f:
        A = T.param("A", (n,), "float32")
        B = T.param("B", (n,), "float32")
        C = T.param("C", (n,), "float32")
        with T.Kernel(T.ceildiv(n, block), threads=block) as bx:
            for i in T.Parallel(block):
                C[bx * block + i] = A[bx * block + i] + B[bx * block + i]
    return f.func


def relu_or_scale() -> PrimFunc:
    """2-D element-wise with a dynamic dimension and an if/else."""
    M = T.dynamic("M")
    with T.prim_func("relu_or_scale") as f:
        X = T.param("X", (M, 64), "float16")
        Y = T.param("Y", (M, 64), "float16")
        with T.Kernel(T.ceildiv(M, 32), threads=128) as bx:
            for i, j in T.Parallel(32, 64):
                with T.If(bx * 32 + i < M):
                    with T.If(X[bx * 32 + i, j] > 0):
                        Y[bx * 32 + i, j] = X[bx * 32 + i, j] * 2.0
                    with T.Else():
                        Y[bx * 32 + i, j] = T.max(X[bx * 32 + i, j], -1.0)
    return f.func


def tile_scale() -> PrimFunc:
    """Shared memory: alloc_shared, T.copy, T.Parallel, T.sync_threads."""
    with T.prim_func("tile_scale") as f:
        A = T.param("A", (1024, 64), "float16")
        B = T.param("B", (1024, 64), "float32")
        with T.Kernel(8, threads=128) as bx:
            A_s = T.alloc_shared((128, 64), "float16")
            acc = T.alloc_fragment((128, 64), "float32")
            T.clear(acc)
            T.copy(A[bx * 128, 0], A_s)
            T.sync_threads()
            for i, j in T.Parallel(128, 64):
                acc[i, j] = acc[i, j] + T.cast(A_s[i, j], "float32") * 0.5
            T.copy(acc, B[bx * 128 : bx * 128 + 128, :])
    return f.func


def kitchen_sink() -> PrimFunc:
    """Every builder construct: loop kinds, scopes, dtypes, two kernels, operators, sync calls."""
    N = T.dynamic("N", "int64")
    with T.prim_func("sink") as f:
        A = T.param("A", (N, 64), "float16")
        S = T.param("S", (8,), "int32", scope="symmetric")
        n = T.scalar("n")
        alpha = T.scalar("alpha", "float32")
        with T.Kernel(4, 2, threads=(32, 4)) as (bx, by):
            tx = T.get_thread_binding(0)
            ty = T.get_thread_binding(1)
            A_s = T.alloc_shared((64, 64), "float16", scope="shared")
            loc = T.alloc_local((4,), "float32")
            cnt = T.alloc_var("int32", init=0)
            T.fill(loc, 1.5)
            T.copy(A[bx * 64 : bx * 64 + 64, 0:64], A_s)
            T.copy(A_s[0, 0:32], A[bx * 64 + 1, 32:64])
            for k in T.Pipelined(4, num_stages=2):
                for i in T.serial(2, n):
                    for u in T.unroll(4):
                        loc[u] = loc[u] + T.cast(A_s[k * 16 + i, u], "float32") * alpha
            for v in T.vectorized(4):
                cnt[0] = cnt[0] + (tx ^ ty) + (tx << 1) + (v & 3) - (-v)
            with T.If(T.all(tx < 16, ty != 0)):
                S[by] = T.if_then_else(cnt[0] > 3, cnt[0] // 2, -1)
            with T.Else():
                with T.If(~(tx == 0) | (ty >= 2)):
                    T.sync_warp()
            T.sync_threads()
        with T.Kernel(T.cast(N, "int32") // 64, threads=128) as bx:
            for i, j in T.Parallel(T.int64(64), 64):
                x = A[T.cast(bx, "int64") * 64 + i, j]
                A[T.cast(bx, "int64") * 64 + i, j] = T.max(x, T.float16(0)) + T.exp(x) * T.infinity(
                    "float16"
                )
    return f.func


EXAMPLES = [vector_add, relu_or_scale, tile_scale, kitchen_sink]


# -- golden text ----------------------------------------------------------------------------------


def test_vector_add_golden() -> None:
    assert print_func(vector_add()) == golden(
        """
        with T.prim_func("vector_add") as f:
            A = T.param("A", (1024,), "float32")
            B = T.param("B", (1024,), "float32")
            C = T.param("C", (1024,), "float32")
            with T.Kernel(8, threads=128) as bx:
                for i in T.Parallel(128):
                    C[bx * 128 + i] = A[bx * 128 + i] + B[bx * 128 + i]
        """
    )


def test_dynamic_2d_if_else_golden() -> None:
    assert print_func(relu_or_scale()) == golden(
        """
        with T.prim_func("relu_or_scale") as f:
            M = T.dynamic("M")
            X = T.param("X", (M, 64), "float16")
            Y = T.param("Y", (M, 64), "float16")
            with T.Kernel((M + 31) // 32, threads=128) as bx:
                for i, j in T.Parallel(32, 64):
                    with T.If(bx * 32 + i < M):
                        with T.If(X[bx * 32 + i, j] > 0.0):
                            Y[bx * 32 + i, j] = X[bx * 32 + i, j] * 2.0
                        with T.Else():
                            Y[bx * 32 + i, j] = T.max(X[bx * 32 + i, j], -1.0)
        """
    )


def test_shared_tile_golden() -> None:
    assert print_func(tile_scale()) == golden(
        """
        with T.prim_func("tile_scale") as f:
            A = T.param("A", (1024, 64), "float16")
            B = T.param("B", (1024, 64), "float32")
            with T.Kernel(8, threads=128) as bx:
                A_s = T.alloc_shared((128, 64), "float16")
                acc = T.alloc_fragment((128, 64), "float32")
                T.clear(acc)
                T.copy(A[bx * 128, 0], A_s)
                T.sync_threads()
                for i, j in T.Parallel(128, 64):
                    acc[i, j] = acc[i, j] + T.cast(A_s[i, j], "float32") * 0.5
                T.copy(acc, B[bx * 128, 0])
        """
    )


def test_str_of_a_function_is_its_printed_form() -> None:
    f = vector_add()
    assert str(f) == print_func(f) == print_node(f)
    assert repr(f.body).startswith("<KernelLaunch: with T.Kernel(8, threads=128) as bx:")


# -- round trip -----------------------------------------------------------------------------------


@pytest.mark.parametrize("build", EXAMPLES, ids=lambda fn: fn.__name__)
def test_round_trip(build) -> None:
    """print -> rebuild gives a structurally equal function, which prints the same text."""
    func = build()
    text = print_func(func)
    again = rebuild(text)
    assert_structural_equal(func, again)
    assert print_func(again) == text


def test_round_trip_keeps_names() -> None:
    """rebuild runs the text as a source file, so the builder reads the names off its lines."""
    again = rebuild(print_func(tile_scale()))
    kernel = again.body
    assert isinstance(kernel, KernelLaunch)
    assert isinstance(kernel.body, Allocate) and kernel.body.buffer.name == "A_s"


def test_rebuild_rejects_text_without_a_function() -> None:
    with pytest.raises(ValueError, match="expected `with T.prim_func"):
        rebuild("x = 1")


# -- expressions ----------------------------------------------------------------------------------

i = Var("i")
j = Var("j")
k64 = Var("k", "int64")
x = Var("x", "float32")
h = Var("h", "float16")
p = Var("p", "bool")
q = Var("q", "bool")


@pytest.mark.parametrize(
    "expr, text",
    [
        (i + j * 4, "i + j * 4"),
        ((i + j) * 4, "(i + j) * 4"),
        (i - (j - 1), "i - (j - 1)"),
        (i - j - 1, "i - j - 1"),
        (Add(i, Add(j, IntImm(1))), "i + (j + 1)"),
        (i // 4, "i // 4"),
        (i % 4, "i % 4"),
        ((i + 1) // (j % 3), "(i + 1) // (j % 3)"),
        (x / (x + 1.0), "x / (x + 1.0)"),
        (T.min(i, j), "T.min(i, j)"),
        (T.max(i + 1, 2), "T.max(i + 1, 2)"),
        (T.if_then_else(i < j, x, 0.0), "T.if_then_else(i < j, x, 0.0)"),
        (T.if_then_else(i < j, 1.0, x), "T.if_then_else(i < j, 1.0, x)"),
        (T.cast(i, "float16"), 'T.cast(i, "float16")'),
        (T.exp(x) + T.sqrt(x), "T.exp(x) + T.sqrt(x)"),
        (T.abs(i - j), "T.abs(i - j)"),
        ((i < j) & (j <= 4), "(i < j) & (j <= 4)"),
        (p | q & ~p, "p | q & ~p"),
        (~(p | q), "~(p | q)"),
        ((i == j) == p, "(i == j) == p"),
        (i * -1, "i * -1"),
        (0 - i, "0 - i"),
        ((i & 7) | (j << 2) ^ (i >> 1), "i & 7 | j << 2 ^ i >> 1"),
        (((i | 7) & j) ^ 1, "(i | 7) & j ^ 1"),
        (i + j << 2, "i + j << 2"),
        (k64 + 1, "k + 1"),
        (k64 * (i + 0).astype("int64"), 'k * T.cast(i, "int64")'),
    ],
)
def test_expression_precedence(expr, text) -> None:
    assert print_expr(expr) == text
    assert_structural_equal(
        eval(text, {"T": T, "i": i, "j": j, "k": k64, "x": x, "p": p, "q": q}), expr
    )


@pytest.mark.parametrize(
    "expr, text",
    [
        (IntImm(5), "5"),
        (IntImm(-5), "-5"),
        (IntImm(5, "int64"), "T.int64(5)"),
        (IntImm(200, "uint8"), "T.uint8(200)"),
        (IntImm(1, "bool"), "True"),
        (FloatImm(0.1), "0.1"),
        (FloatImm(-0.0), "-0.0"),
        (FloatImm(1e-30), "1e-30"),
        (FloatImm(0.5, "float16"), "T.float16(0.5)"),
        (FloatImm(2.0, "float64"), "T.float64(2.0)"),
        (FloatImm(float("inf")), 'T.infinity("float32")'),
        (FloatImm(float("inf"), "bfloat16"), 'T.infinity("bfloat16")'),
        (FloatImm(float("-inf")), 'T.float32("-inf")'),
        (FloatImm(float("nan"), "float16"), 'T.float16("nan")'),
        # `T.int32(1) + 2` would fold to 3 when rebuilt: the node is spelled out.
        (Add(IntImm(1), IntImm(2)), "tsir.Add(T.int32(1), T.int32(2))"),
        (Add(FloatImm(1.0), FloatImm(2.0)), "T.float32(1.0) + 2.0"),
        (Sub(IntImm(1, "int64"), k64), "1 - k"),
        (Add(k64, IntImm(1)), "k + T.int32(1)"),  # ill-typed, and shown so
        (Min(IntImm(3), i), "T.min(3, i)"),
        (IntImm(3) < i, "T.int32(3) < i"),  # `3 < i` would build `i > 3`
        (Not(IntImm(1, "bool")), "~T.bool(True)"),
        (Select(p, IntImm(1, "int64"), IntImm(2, "int64")), "T.if_then_else(p, 1, T.int64(2))"),
        (Select(p, IntImm(1), IntImm(2)), "T.if_then_else(p, 1, 2)"),
        (x * 2.0, "x * 2.0"),
        (h * 2.0, "h * 2.0"),
        (Add(h, FloatImm(1.0, "float32")), "h + T.float32(1.0)"),
        (IntImm(3_000_000_000, "int64"), "3000000000"),
    ],
)
def test_constants(expr, text) -> None:
    assert print_expr(expr) == text


@pytest.mark.parametrize(
    "text",
    [
        "T.float32(1.0) + 2.0",
        "1 - k",
        "T.min(3, i)",
        "T.int32(3) < i",
        "~T.bool(True)",
        "T.if_then_else(p, 1, T.int64(2))",
        "h * 2.0",
        'T.float16("nan")',
        'T.float32("-inf")',
        "3000000000",
    ],
)
def test_constants_rebuild(text) -> None:
    env = {"T": T, "i": i, "k": k64, "p": p, "h": h}
    assert print_expr(eval(text, env)) == text


def test_vector_and_other_text_forms() -> None:
    """Ramp, Broadcast, Let and calls without builder sugar print in a documented text form."""
    assert print_expr(Ramp(i * 4, IntImm(1), 4)) == "T.Ramp(i * 4, 1, 4)"
    assert print_expr(Broadcast(x, 8)) == "T.Broadcast(x, 8)"
    v = Var("v")
    assert print_expr(Let(v, i + 1, v * v)) == "T.Let(v, i + 1, v * v)"
    assert (
        print_expr(Call(DataType("float32"), "fma", (x, x, x)))
        == 'T.call_intrin("float32", "fma", x, x, x)'
    )
    assert print_expr(Call(DataType("int32"), "extern:foo", (i, tsir.StringImm('a"b')))) == (
        'T.call_intrin("int32", "extern:foo", i, "a\\"b")'
    )


# -- random expressions round-trip ----------------------------------------------------------------

VARS = {
    "int32": [Var("a"), Var("b")],
    "int64": [Var("w", "int64")],
    "float32": [Var("x", "float32"), Var("y", "float32")],
    "float16": [Var("h", "float16")],
    "bool": [Var("p", "bool")],
}
INT_TYPES = ("int32", "int64")
FLOAT_TYPES = ("float32", "float16")


def _const(draw, dt: str):
    if dt == "bool":
        return const(draw(st.booleans()), dt)
    if dt in INT_TYPES:
        return const(draw(st.integers(-(2**31), 2**31 - 1)), dt)
    value = draw(
        st.floats(allow_nan=True, allow_infinity=True, width=16 if dt == "float16" else 32)
    )
    return FloatImm(value, dtype(dt))


@st.composite
def exprs(draw, dt: str, depth: int = 3):
    """Expressions built the way users build them: Python operators and T.* functions."""
    if depth == 0 or draw(st.integers(0, 3)) == 0:
        if draw(st.booleans()):
            return draw(st.sampled_from(VARS[dt]))
        return _const(draw, dt)
    sub = lambda t=dt: draw(exprs(t, depth - 1))  # noqa: E731
    if dt == "bool":
        kind = draw(st.sampled_from(["cmp", "and", "or", "not", "select"]))
        if kind == "cmp":
            t = draw(st.sampled_from(INT_TYPES + FLOAT_TYPES))
            op = draw(st.sampled_from(["<", "<=", ">", ">=", "==", "!="]))
            return eval(f"a {op} b", {"a": sub(t), "b": sub(t)})
        if kind == "not":
            return ~sub()
        if kind == "select":
            return T.if_then_else(sub(), sub(), sub())
        return sub() & sub() if kind == "and" else sub() | sub()
    ops = ["+", "-", "*", "min", "max", "select", "cast"]
    ops += ["//", "%", "&", "|", "^", "<<", ">>"] if dt in INT_TYPES else ["/", "exp"]
    op = draw(st.sampled_from(ops))
    if op == "min":
        return T.min(sub(), sub())
    if op == "max":
        return T.max(sub(), sub())
    if op == "select":
        return T.if_then_else(sub("bool"), sub(), sub())
    if op == "cast":
        return T.cast(sub(draw(st.sampled_from(INT_TYPES + FLOAT_TYPES))), dt)
    if op == "exp":
        return T.exp(sub())
    a, b = sub(), sub()
    if op in ("//", "%") and isinstance(b, IntImm) and b.value == 0:
        b = IntImm(3, b.dtype)
    return eval(f"a {op} b", {"a": a, "b": b})


ENV = {"T": T, **{v.name: v for vs in VARS.values() for v in vs}}


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(VARS)).flatmap(exprs))
def test_random_expressions_round_trip(expr) -> None:
    text = print_expr(expr)
    again = tsir.convert(eval(text, ENV))  # a bare literal is converted by whatever consumes it
    assert structural_equal(again, expr), f"{text!r} rebuilt as {print_expr(again)!r}"


# -- names ----------------------------------------------------------------------------------------


def test_distinct_vars_with_one_name_are_disambiguated() -> None:
    with T.prim_func("twice") as f:
        A = T.param("A", (128,), "float32")
        with T.Kernel(1, threads=128):
            for i in T.Parallel(128):
                A[i] = 0.0
            for i in T.Parallel(128):  # noqa: B007  (a second, distinct `i`)
                A[i] = A[i] + 1.0
    assert print_func(f.func).splitlines()[3:] == [
        "        for i in T.Parallel(128):",
        "            A[i] = 0.0",
        "        for i_1 in T.Parallel(128):",
        "            A[i_1] = A[i_1] + 1.0",
    ]
    assert print_func(f.func) == print_func(rebuild(print_func(f.func)))


def test_reserved_and_odd_names() -> None:
    """Names that are not identifiers, or that the text uses (T, f, keywords), are renamed."""
    a, b, c = Var("T"), Var("f"), Var("in")
    d = Var("x.y")
    assert print_expr(a + b + c + d) == "T_1 + f_1 + in_1 + x_y"


# -- text forms of lowered IR ---------------------------------------------------------------------


def lowered_parts():
    n = Var("n")
    A = Buffer("A", (n,), DataType("float32"))
    pool = make_buffer("buf_dyn", (1024,), "uint8", "shared.dyn")
    A_s = make_buffer("A_s", (128,), "float32", "shared.dyn")
    bx, tx, v, t = Var("bx"), Var("tx"), Var("v"), Var("t")
    store = BufferStore(
        A_s, BufferLoad(A, (Ramp(bx * 128 + t * 4, IntImm(1), 4),)), (Ramp(t * 4, IntImm(1), 4),)
    )
    body = For(t, IntImm(0), IntImm(32), ForKind.THREAD_BINDING, store, "threadIdx.x")
    body = DeclBuffer(
        A_s, pool, 256, SeqStmt((body, Evaluate(Call(DataType("int32"), "sync_threads", ()))))
    )
    body = Allocate(pool, body)
    return n, A, bx, tx, v, body


def test_lowered_statement_forms() -> None:
    n, A, bx, tx, v, body = lowered_parts()
    kernel = KernelLaunch("k", (n // 128,), (32,), (bx,), (tx,), body, None, 1024)
    let = LetStmt(
        v,
        bx * 2,
        AttrStmt("pragma", IntImm(1), Evaluate(Call(DataType("int32"), "extern:foo", (v,)))),
    )
    f = PrimFunc(
        "lowered",
        (A, n),
        SeqStmt((kernel, KernelCall("k", (n // 128,), (32,), 1024, (A, n)))),
        (("target", "sm_90a"),),
    )
    assert print_func(f) == golden(
        """
        with T.prim_func("lowered") as f:
            n = T.dynamic("n")
            A = T.param("A", (n,), "float32")
            T.scalar(n)
            T.func_attr({"target": "sm_90a"})
            with T.Kernel(n // 128, threads=32, dyn_shared_bytes=1024, name="k") as bx:
                buf_dyn = T.alloc_shared((1024,), "uint8")
                A_s = T.decl_buffer((128,), "float32", scope="shared.dyn", data=buf_dyn, byte_offset=256)
                for t in T.thread_binding(32, thread="threadIdx.x"):
                    A_s[T.Ramp(t * 4, 1, 4)] = A[T.Ramp(bx * 128 + t * 4, 1, 4)]
                T.sync_threads()
            T.call_kernel("k", A, n, grid=(n // 128,), threads=(32,), dyn_shared_bytes=1024)
        """
    )
    assert print_node(let) == golden(
        """
        v: T.int32 = bx * 2
        with T.attr("pragma", 1):
            T.evaluate(T.call_intrin("int32", "extern:foo", v))
        """
    )


def test_scoped_statement_followed_by_others_is_wrapped() -> None:
    v = Var("v")
    A = make_buffer("A", (4,), "int32")
    s = SeqStmt(
        (
            LetStmt(v, IntImm(1), BufferStore(A, v, (IntImm(0),))),
            BufferStore(A, IntImm(2), (IntImm(1),)),
        )
    )
    assert print_node(s) == golden(
        """
        with T.scope():
            v: T.int32 = 1
            A[0] = v
        A[1] = 2
        """
    )


def test_device_kernel_and_module_forms() -> None:
    n, A, bx, tx, v, body = lowered_parts()
    kernel = DeviceKernel("k", (A, n), (n // 128,), (32,), (bx,), (tx,), body, 1024)
    host = PrimFunc("host", (A, n), KernelCall("k", (n // 128,), (32,), 1024, (A, n)))
    text = print_node(Module(host, (kernel,)))
    assert text.startswith(
        '# tsir.Module: the host function, then its 1 device kernel(s)\n\nwith T.prim_func("host")'
    )
    assert (
        golden(
            """
        with T.device_kernel("k", grid=(n // 128,), threads=(32,), dyn_shared_bytes=1024) as f:
            n = T.dynamic("n")
            A = T.param("A", (n,), "float32")
            T.scalar(n)
            bx = T.get_block_binding(0)
            tx = T.get_thread_binding(0)
            buf_dyn = T.alloc_shared((1024,), "uint8")
        """
        )
        in text
    )


def test_loop_annotations_and_generic_tile_op() -> None:
    @node
    class Swizzle(TileOperatorNode):
        buffer: Buffer
        factor: int

    Swizzle.op_name = "tl.Swizzle"
    i = Var("i")
    A = make_buffer("A", (8, 8), "float32", "shared.dyn")
    loop = For(
        i,
        IntImm(1),
        IntImm(7),
        ForKind.SERIAL,
        TileOpStmt(Swizzle(A, 3)),
        None,
        (("unroll_hint", 2),),
    )
    assert print_node(loop) == golden(
        """
        for i in T.serial(1, 8, annotations={"unroll_hint": 2}):
            T.tile_op("tl.Swizzle", buffer=A, factor=3)
        """
    )


def test_regions_print_as_slices() -> None:
    A = make_buffer("A", (64, 64), "float32")
    r = Var("r")
    region = BufferRegion(
        A,
        (
            Range(r, IntImm(1)),
            Range(IntImm(0), IntImm(32)),
        ),
    )
    assert print_node(region) == "A[r, :32]"
    region = BufferRegion(A, (Range(r * 2, IntImm(2)), Range(IntImm(0), IntImm(64))))
    assert print_node(region) == "A[r * 2:r * 2 + 2, :]"
    assert print_node(BufferRegion.full(A)) == "A"


# -- marks ----------------------------------------------------------------------------------------


def test_mark_underlines_an_expression() -> None:
    f = vector_add()
    store = f.body.body.body  # kernel -> loop -> store
    text = print_func(f, mark=store.value.b)
    lines = text.splitlines()
    k = lines.index("            C[bx * 128 + i] = A[bx * 128 + i] + B[bx * 128 + i]")
    assert lines[k + 1] == "                                                ^^^^^^^^^^^^^^^"
    assert lines[k + 1].index("^") == lines[k].index("B[")


def test_mark_underlines_a_statement() -> None:
    f = vector_add()
    text = print_func(f, mark=f.body.body)
    assert "        for i in T.Parallel(128):\n        ^^^^^^^^^^^^^^^^^^^^^^^^^\n" in text


def test_text_forms_that_flag_unusual_ir() -> None:
    """A Pipelined loop without stages, a bool fill, a kernel without block indices."""
    i = Var("i")
    B = make_buffer("B", (4,), "bool", "local")
    loop = For(i, IntImm(0), IntImm(4), ForKind.PIPELINED, BufferStore(B, IntImm(1, "bool"), (i,)))
    assert print_node(loop).splitlines()[0] == "for i in T.Pipelined(4, num_stages=None):"
    from tsir.tileop import Fill

    fill = TileOpStmt(Fill(BufferRegion.full(B), IntImm(0, "bool")))
    assert print_node(fill) == "T.fill(B, False)"
    k = KernelLaunch("k", (), (32,), (), (Var("tx"),), fill)
    assert print_node(k).splitlines()[0] == "with T.Kernel(threads=32):"


def test_every_node_has_a_str() -> None:
    A = make_buffer("A", (4, 4), "float32", "shared.dyn")
    assert str(A) == 'T.Buffer("A", (4, 4), "float32", scope="shared.dyn")'
    assert str(Range(IntImm(0), IntImm(4))) == "Range(min=0, extent=4)"
    assert str(BufferRegion.full(A)) == "A"
    from tsir.tileop import Copy

    op = Copy(BufferRegion.full(A), BufferRegion.full(A))
    assert str(op) == "T.copy(A, A)"
    assert repr(IntImm(3)) == "<IntImm: 3>"
