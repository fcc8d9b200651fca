"""LowerCPEngineIntrin: copies written in kernels move to the host before the launch; bad copies
are refused when built (BuildError) or, for hand-written IR, by the pass (TSIRError)."""

from __future__ import annotations

import pytest
from tsir.passes import PassContext, get

import tsir
from tsir import T
from tsir.errors import BuildError, DTypeError, TSIRError
from tsir.stmt import CpEngineCopy, For, ForKind, KernelLaunch, SeqStmt
from tsir.structural import assert_structural_equal
from tsir.target import Target

N = 1024
CTX = PassContext(Target.parse("sm_90a"))


def run(f: tsir.PrimFunc) -> tsir.PrimFunc:
    return get("LowerCPEngineIntrin")(f, CTX)


def before() -> tsir.PrimFunc:
    with T.prim_func("ag") as f:
        A = T.param("A", (N,), "float32", scope="symmetric")
        AG = T.param("AG", (2 * N,), "float32", scope="symmetric")
        flags = T.param("flags", (2,), "int32", scope="symmetric")
        epoch = T.scalar("epoch", "int32")
        T.cp_engine_copy(A, AG[0:N], signal=(flags[0:1], epoch))
        with T.Kernel(1, threads=32) as bx:
            T.cp_engine_copy(A, AG[N : 2 * N], src_pe=1, signal=(flags[1], epoch))
            T.wait_eq(flags[1], epoch)
            AG[bx] = AG[N]
    return f.func


def expected() -> tsir.PrimFunc:
    with T.prim_func("ag") as f:
        A = T.param("A", (N,), "float32", scope="symmetric")
        AG = T.param("AG", (2 * N,), "float32", scope="symmetric")
        flags = T.param("flags", (2,), "int32", scope="symmetric")
        epoch = T.scalar("epoch", "int32")
        T.cp_engine_copy(A, AG[0:N], signal=(flags[0:1], epoch))
        T.cp_engine_copy(A, AG[N : 2 * N], src_pe=1, signal=(flags[1:2], epoch))
        with T.Kernel(1, threads=32) as bx:
            T.wait_eq(flags[1], epoch)
            AG[bx] = AG[N]
    return f.func


def test_copy_in_a_kernel_moves_before_its_launch() -> None:
    """The in-kernel copy stands right before the launch, after the host copy written before it."""
    assert_structural_equal(run(before()), expected())


def test_function_without_copies_is_returned_as_is() -> None:
    with T.prim_func("plain") as f:
        A = T.param("A", (N,), "float32")
        with T.Kernel(1, threads=32) as bx:
            A[bx] = 1.0
    assert run(f.func) is f.func


def test_input_is_untouched_and_printing_round_trips() -> None:
    from tsir.printer import rebuild

    f = before()
    text = str(f)
    run(f)
    assert str(f) == text
    assert_structural_equal(rebuild(text), f)
    assert "T.cp_engine_copy(A, AG[1024:1024 + 1], 1024, src_pe=1" in text


def test_copy_nested_in_a_kernel_loop_is_refused_by_the_pass() -> None:
    f = before()
    k = f.body.stmts[1]
    assert isinstance(k, KernelLaunch)
    copy = k.body.stmts[0]
    assert isinstance(copy, CpEngineCopy)
    i = tsir.Var("i", "int32")
    loop = For(i, tsir.IntImm(0, "int32"), tsir.IntImm(2, "int32"), ForKind.SERIAL, copy)
    bad = f.replace(
        body=SeqStmt((f.body.stmts[0], k.replace(body=SeqStmt((loop, *k.body.stmts[1:])))))
    )
    with pytest.raises(TSIRError, match="inside a loop or branch of kernel"):
        run(bad)


def test_pipeline_runs_it_and_the_host_program_gets_copy_steps() -> None:
    from tsir.runtime.kernel import _program_from_json, _program_to_json, host_program
    from tsir.runtime.launch_codegen import generate

    low = tsir.lower(before(), "sm_90a")
    assert not any(isinstance(n, CpEngineCopy) for n in tsir.visitor.walk(low.module.kernels))
    prog = host_program(low.module)
    assert [c.before for c in prog.copies] == [0, 0]
    c0, c1 = prog.copies
    assert (c0.dst_offset, c0.count, c0.src_pe, c0.flag_offset) == ("0", "1024", None, "0")
    assert (c1.dst_offset, c1.src_pe, c1.flag, c1.flag_value, c1.flag_bytes) == (
        "1024",
        "1",
        "flags",
        "epoch",
        4,
    )
    assert _program_from_json(_program_to_json(prog)) == prog
    src = generate(prog).source
    fence, launch, join = (src.index(s) for s in ("_cp_fence(", "_launch(", "_cp_join("))
    assert fence < src.index("_cp_copy(dev[1], 1,") < launch < join


def test_programs_without_copies_keep_the_plain_fast_path() -> None:
    from tsir.runtime.kernel import host_program
    from tsir.runtime.launch_codegen import generate

    with T.prim_func("plain") as f:
        A = T.param("A", (N,), "float32")
        with T.Kernel(1, threads=32) as bx:
            A[bx] = 1.0
    assert "_cp_" not in generate(host_program(tsir.lower(f.func, "sm_90a").module)).source


def test_rank_expressions_become_host_names() -> None:
    from tsir.runtime.kernel import host_program

    with T.prim_func("pull") as f:
        A = T.param("A", (N,), "float32", scope="symmetric")
        AG = T.param("AG", (4 * N,), "float32", scope="symmetric")
        src = (T.get_rank() + 1) % T.get_num_ranks()
        T.cp_engine_copy(A, AG[src * N : src * N + N], src_pe=src)
    (c,) = host_program(tsir.lower(f.func, "sm_90a").module).copies
    assert c.src_pe == "(__rank + 1) % __num_ranks"
    assert c.dst_offset == "(__rank + 1) % __num_ranks * 1024"


# -- refused when built ----------------------------------------------------------------------------


def build(body, A_scope="symmetric", B_scope="symmetric", dtype="float32"):  # type: ignore[no-untyped-def]
    with T.prim_func("bad") as f:
        A = T.param("A", (N,), "float32", scope=A_scope)
        B = T.param("B", (N,), dtype, scope=B_scope)
        flags = T.param("flags", (2,), "int32", scope="symmetric")
        body(A, B, flags)
    return f.func


def test_remote_copy_on_non_symmetric_memory_is_refused() -> None:
    with pytest.raises(
        BuildError, match=r"T.cp_engine_copy: dst `B` is in global memory, but a remote dst"
    ):
        build(lambda A, B, fl: T.cp_engine_copy(A, B, dst_pe=1), B_scope="global")
    with pytest.raises(BuildError, match=r"T.cp_engine_copy: src `A` is in global memory"):
        build(lambda A, B, fl: T.cp_engine_copy(A, B, src_pe=1), A_scope="global")


def test_size_that_does_not_fit_is_refused() -> None:
    with pytest.raises(BuildError, match=r"copying 1025 elements from src `A` element 0 runs past"):
        build(lambda A, B, fl: T.cp_engine_copy(A, B, N + 1))
    with pytest.raises(
        BuildError, match=r"copying 1000 elements from dst `B` element 100 runs past"
    ):
        build(lambda A, B, fl: T.cp_engine_copy(A, B[100:200], 1000))


def test_other_bad_copies_are_refused() -> None:
    with pytest.raises(DTypeError, match="needs one dtype"):
        build(lambda A, B, fl: T.cp_engine_copy(A, B), dtype="float16")
    with pytest.raises(BuildError, match="signal must be a \\(flag, value\\) pair"):
        build(lambda A, B, fl: T.cp_engine_copy(A, B, signal=fl))

    def in_loop(A, B, fl):  # type: ignore[no-untyped-def]
        with T.Kernel(1, threads=32):
            for _ in T.serial(2):
                T.cp_engine_copy(A, B)

    with pytest.raises(BuildError, match="inside a loop or branch of a kernel"):
        build(in_loop)

    def block_index(A, B, fl):  # type: ignore[no-untyped-def]
        with T.Kernel(4, threads=32) as bx:
            T.cp_engine_copy(A[bx * 256 : bx * 256 + 256], B[0:256])

    with pytest.raises(BuildError, match="`bx` is not known on the host"):
        build(block_index)

    def shared(A, B, fl):  # type: ignore[no-untyped-def]
        with T.Kernel(1, threads=32):
            S = T.alloc_shared((N,), "float32")
            T.cp_engine_copy(A, S)

    with pytest.raises(BuildError, match="copy engines move global or symmetric memory"):
        build(shared)
