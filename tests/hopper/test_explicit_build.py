"""Explicit Hopper control with TileLang's names (issue 11, deliverable 4): what the builder, the
script forms and tsir.compat.tilelang build, and the errors bad input gets (with the user's line).
Lowering and interpreter runs: test_explicit_lowering.py."""

from __future__ import annotations

import os
import sys
from typing import Any

import pytest

import tsir
from tsir import T
from tsir.errors import BuildError, TSIRError, UnsupportedError
from tsir.script import Tensor

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "examples"))

import hopper_ws_gemm as H
import tilelang_ws_gemm as TL


def _renamed(f: tsir.PrimFunc, name: str) -> tsir.PrimFunc:
    """The function and its kernel under another name (a script form names them after its def)."""
    return f.replace(name=name, body=f.body.replace(name=f"{name}_kernel"))


def test_ws_is_a_marked_range_of_warpgroups() -> None:
    """`with T.ws(1):` is the thread range of warpgroup 1 under the warp-role marker."""
    with T.prim_func("f") as before:
        X = T.param("X", (256,), "float32")
        with T.Kernel(1, threads=256):
            with T.ws(1):
                T.fill(X, 1.0)
            with T.ws(0, 1):
                T.fill(X, 2.0)
    with T.prim_func("f") as expected:
        X = T.param("X", (256,), "float32")
        with T.Kernel(1, threads=256):
            tx = T.get_thread_binding()
            with T.attr("warp_role", (128, 256)), T.If((tx >= 128) & (tx < 256)):
                T.fill(X, 1.0)
            with T.attr("warp_role", (0, 256)), T.If(tx < 256):
                T.fill(X, 2.0)
    tsir.assert_structural_equal(before.func, expected.func)


def test_alloc_barrier_initialises_each_barrier_once_then_syncs_the_block() -> None:
    with T.prim_func("f") as before, T.Kernel(1, threads=128):
        bars = T.alloc_barrier([1, 128])
        T.barrier_arrive(bars[1])
        T.barrier_wait(bars[0], 1)
    with T.prim_func("f") as expected, T.Kernel(1, threads=128):
        tx = T.get_thread_binding()
        bars = T.alloc_buffer((2,), "uint64", scope="shared", align=8)

        def addr(i: int) -> object:
            ptr = T.call_intrin("handle", "address_of", bars[i])
            return T.call_intrin("uint32", "tsir.mbarrier.shared_u32", ptr)

        with T.If(tx == 0):
            T.evaluate(T.call_intrin("int32", "tsir.mbarrier.mbarrier_init", addr(0), 1))
            T.evaluate(T.call_intrin("int32", "tsir.mbarrier.mbarrier_init", addr(1), 128))
            T.evaluate(T.call_intrin("int32", "tsir.mbarrier.mbarrier_init_fence"))
        T.sync_threads()
        T.evaluate(T.call_intrin("int32", "tsir.mbarrier.mbarrier_arrive", addr(1)))
        T.evaluate(T.call_intrin("int32", "tsir.mbarrier.mbarrier_wait", addr(0), 1))
    tsir.assert_structural_equal(before.func, expected.func)


def test_script_form_builds_what_the_builder_builds() -> None:
    """tsir's `@T.prim_func` form of examples/hopper_ws_gemm.py's tma_scale."""
    M, N, bm, bn = 200, 192, 64, 64

    @T.prim_func
    def tma_scale(X: Tensor((M, N), "float32"), Y: Tensor((M, N), "float32")):
        with T.Kernel(T.ceildiv(N, bn), T.ceildiv(M, bm), threads=128) as (bx, by):
            X_s = T.alloc_shared((bm, bn), "float32")
            bar = T.alloc_barrier(128)
            T.tma_copy(X[by * bm, bx * bn], X_s, barrier=bar)
            T.barrier_arrive(bar)
            T.barrier_wait(bar, 0)
            for i, j in T.Parallel(bm, bn):
                Y[by * bm + i, bx * bn + j] = X_s[i, j] * 2.0

    tsir.assert_structural_equal(tma_scale, H.tma_scale(M, N))


@pytest.mark.parametrize(
    "tilelang_form, builder_form",
    [
        (
            lambda: TL.copy_0_gemm_1(256, 256, 256, 128, 128, 64),
            lambda: H.ws_gemm_barrier(256, 256, 256),
        ),
        (
            lambda: TL.copy_gemm_0_1(256, 256, 256, 128, 128, 64),
            lambda: H.ws_gemm_split_n(256, 256, 256),
        ),
    ],
    ids=["copy_0_gemm_1", "copy_gemm_0_1"],
)
def test_tilelang_programs_build_the_builder_examples(
    tilelang_form: Any, builder_form: Any
) -> None:
    """TileLang's examples/warp_specialize programs, through tsir.compat.tilelang, are the
    builder's examples."""
    tsir.assert_structural_equal(_renamed(tilelang_form(), "g"), _renamed(builder_form(), "g"))


def test_compat_names_are_no_longer_missing_and_copy_with_a_barrier_is_tma_copy() -> None:
    from tsir.compat.tilelang import language as L
    from tsir.compat.tilelang.missing import MISSING

    for name in (
        "ws",
        "alloc_barrier",
        "barrier_wait",
        "barrier_arrive",
        "mbarrier_wait_parity",
        "mbarrier_arrive",
        "mbarrier_expect_tx",
        "mbarrier_arrive_expect_tx",
        "tma_copy",
        "fence_proxy_async",
        "set_max_nreg",
        "inc_max_nreg",
        "dec_max_nreg",
    ):
        assert name not in MISSING and hasattr(L, name), name
    funcs = []
    for spelling in ("copy", "tma_copy"):
        with T.prim_func("f") as f:
            X = T.param("X", (64, 64), "float16")
            with T.Kernel(1, threads=128):
                S = T.alloc_shared((64, 64), "float16")
                bar = T.alloc_barrier(1)
                getattr(L, spelling)(X, S, barrier=bar)
        funcs.append(f.func)
    tsir.assert_structural_equal(funcs[0], funcs[1])


# -- bad input: clear errors naming the user's line ---------------------------------------------


def _kernel(threads: int = 256):  # type: ignore[no-untyped-def]
    return T.Kernel(1, threads=threads)


@pytest.mark.parametrize(
    "arg, match",
    [
        ("x", "arrive_count must be a positive int"),
        (0, "positive int"),
        ([], "non-empty list"),
        ([128, 2.5], "positive int"),
        (True, "positive int"),
    ],
)
def test_alloc_barrier_rejects_a_bad_arrive_count(arg: Any, match: str) -> None:
    with T.prim_func("f"), _kernel(), pytest.raises(BuildError, match=match) as e:
        T.alloc_barrier(arg)  # the user's line
    assert e.value.loc is not None and "T.alloc_barrier(arg)" in e.value.loc.line


def test_alloc_barrier_inside_a_role_would_deadlock_its_block_barrier() -> None:
    with T.prim_func("f"), _kernel(), T.ws(0):
        with pytest.raises(BuildError, match="top level of the T.Kernel"):
            T.alloc_barrier(128)


@pytest.mark.parametrize("n, inc", [(7, 1), (264, 0), (16, 1), (128, 2)])
def test_set_max_nreg_validates_the_register_count(n: int, inc: int) -> None:
    with T.prim_func("f"), _kernel():
        with pytest.raises(BuildError, match="setmaxnreg takes a multiple of 8|is_inc") as e:
            T.set_max_nreg(n, inc)  # the user's line
    assert "T.set_max_nreg(n, inc)" in e.value.loc.line


@pytest.mark.parametrize(
    "ids, match",
    [
        ((0, 2), "not contiguous"),
        ((2,), r"threads \[256, 384\), past the block"),
        ((), "one or more"),
        ((-1,), "one or more ints >= 0"),
    ],
)
def test_ws_rejects_bad_warpgroups(ids, match) -> None:  # type: ignore[no-untyped-def]
    with T.prim_func("f"), _kernel(), pytest.raises(BuildError, match=match), T.ws(*ids):
        pass


def test_ws_needs_a_one_dimensional_block_and_does_not_nest() -> None:
    with T.prim_func("f"), T.Kernel(1, threads=(128, 2)):  # noqa: SIM117  (raises inside)
        with pytest.raises(BuildError, match="1-D block"), T.ws(0):
            pass
    with T.prim_func("f"), _kernel(), T.ws(0, 1):  # noqa: SIM117
        with pytest.raises(BuildError, match="do not nest"), T.ws(0):
            pass


def test_barrier_arguments_must_be_one_barrier() -> None:
    with T.prim_func("f"), _kernel():
        bars = T.alloc_barrier([128, 128])
        with pytest.raises(
            BuildError, match=r"holds several barriers; pass one of them \(`bars\[i\]`\)"
        ):
            T.barrier_arrive(bars)
        with pytest.raises(
            BuildError, match=r"call T\.create_list_of_mbarrier\(\[count, \.\.\.\]\) first"
        ):
            T.mbarrier_wait_parity(3, 0)
        S = T.alloc_shared((4,), "float32")
        with pytest.raises(BuildError, match="not an mbarrier buffer"):
            T.barrier_wait(S[0], 0)


def test_tma_copy_needs_a_barrier_and_a_global_to_shared_direction() -> None:
    with T.prim_func("f"):
        X = T.param("X", (64, 64), "float16")
        with _kernel():
            S = T.alloc_shared((64, 64), "float16")
            bar = T.alloc_barrier(1)
            with pytest.raises(BuildError, match="completes on an mbarrier"):
                T.tma_copy(X, S)
            with pytest.raises(BuildError, match="loads global memory into shared memory"):
                T.tma_copy(S, X, barrier=bar)


def test_tma_copy_of_a_tile_tma_cannot_write_names_the_reason_and_line() -> None:
    """A 4x4 fp16 tile is 32 bytes: TMA writes whole 128-byte units (copy_tma.py's rule)."""
    with T.prim_func("f") as f:
        X = T.param("X", (64, 64), "float16")
        Y = T.param("Y", (4, 4), "float16")
        with T.Kernel(1, threads=128):
            S = T.alloc_shared((4, 4), "float16")
            bar = T.alloc_barrier(128)
            T.tma_copy(X[0, 0], S, barrier=bar)  # the misaligned tile
            T.barrier_arrive(bar)
            T.barrier_wait(bar, 0)
            T.copy(S, Y)
    with pytest.raises(
        UnsupportedError, match="cannot be a TMA load: a layout TMA writes: .*not a multiple of 128"
    ) as e:
        tsir.lower(f.func, "sm_90a")
    assert "the misaligned tile" in e.value.loc.line


def test_compat_tma_copy_refuses_what_tsir_does_not_do() -> None:
    from tsir.compat.tilelang import language as L

    with T.prim_func("f"):
        X = T.param("X", (64, 64), "float16")
        with _kernel():
            S = T.alloc_shared((64, 64), "float16")
            bar = T.alloc_barrier(1)
            with pytest.raises(
                UnsupportedError, match=r"T.tma_copy\(eviction_policy=...\) is not supported"
            ):
                L.tma_copy(X, S, barrier=bar, eviction_policy="evict_first")


@pytest.mark.parametrize("target", ["sm_80", "sm_100a"])
def test_explicit_hopper_control_needs_sm_90a(target: str) -> None:
    with T.prim_func("f") as f:
        X = T.param("X", (256,), "float32")
        with T.Kernel(1, threads=256), T.ws(1):  # the role
            T.fill(X, 1.0)
    with pytest.raises(
        UnsupportedError, match=f"warp role .* needs sm_90a.*the target is {target}"
    ) as e:
        tsir.lower(f.func, target)
    assert "the role" in e.value.loc.line
    with T.prim_func("g") as g, T.Kernel(1, threads=128):
        T.set_max_nreg(40, 0)  # the budget
    with pytest.raises(
        UnsupportedError, match="T.set_max_nreg in kernel `g_kernel` needs sm_90a"
    ) as e:
        tsir.lower(g.func, target)
    assert "the budget" in e.value.loc.line


def test_a_fragment_used_by_two_roles_is_refused() -> None:
    with T.prim_func("f") as f:
        X = T.param("X", (128, 64), "float32")
        with T.Kernel(1, threads=256):
            F = T.alloc_fragment((128, 64), "float32")
            with T.ws(0):
                T.clear(F)
            with T.ws(1):
                T.copy(F, X)
    with pytest.raises(
        TSIRError,
        match=r"fragment `F` is used by .* in warp role \[0, 128\) and by .* in "
        r"warp role \[128, 256\)",
    ):
        tsir.lower(f.func, "sm_90a")


def _ids_program(by_id: bool) -> tsir.PrimFunc:
    """A two-stage handshake between warpgroups (barriers 0, 1: full; 2, 3: empty), naming the barriers by TileLang's integer
    ids (T.create_list_of_mbarrier) or by elements of a T.alloc_barrier buffer."""
    with T.prim_func("ids") as f:
        X = T.param("X", (128,), "float32")
        with T.Kernel(1, threads=256):
            S = T.alloc_shared((128,), "float32")
            if by_id:
                T.create_list_of_mbarrier([128] * 4)
                full, empty = (lambda k: k % 2), (lambda k: k % 2 + 2)
            else:
                bars = T.alloc_barrier([128] * 4)
                full, empty = (lambda k: bars[k % 2]), (lambda k: bars[k % 2 + 2])
            for k in T.serial(2):
                with T.ws(1):
                    T.mbarrier_wait_parity(mbarrier=empty(k), parity=(k + 1) % 2)
                    T.mbarrier_arrive(mbarrier=full(k))
                with T.ws(0):
                    T.mbarrier_wait_parity(mbarrier=full(k), parity=k % 2)
                    T.mbarrier_arrive(mbarrier=empty(k))
            with T.ws(0):
                T.copy(X, S)
    return f.func


def test_integer_barrier_ids_name_the_kernels_list_of_mbarriers() -> None:
    """TileLang's form (T.create_list_of_mbarrier, then `mbarrier=ko % 2`) builds the same
    kernel as T.alloc_barrier with `bars[ko % 2]`, up to the buffer's name."""
    a, b = _ids_program(True), _ids_program(False)
    assert tsir.structural.structural_equal(a, b), f"{a}\n---\n{b}"
    assert 'address_of", mbar[k % 2 + 2]' in str(a)


def test_get_mbarrier_and_constant_ids_are_checked_against_the_list() -> None:
    with T.prim_func("f"), _kernel():
        lst = T.create_list_of_mbarrier(128, 64)  # the counts as arguments
        assert lst.shape[0].value == 2
        one = T.get_mbarrier(1)
        assert one.buffer is lst and one.indices[0].value == 1
        idx = T.alloc_var("int32")
        T.mbarrier_arrive(mbarrier=idx)  # an integer variable is an id too
        with pytest.raises(BuildError, match=r"has 2, ids 0\.\.1"):
            T.mbarrier_arrive(mbarrier=2)
        with pytest.raises(BuildError, match="already has its list of mbarriers"):
            T.create_list_of_mbarrier([128])
        with pytest.raises(BuildError, match="must be an integer"):
            T.get_mbarrier(1.5)
