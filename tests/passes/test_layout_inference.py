"""LayoutInference: strict (hardware-fixed), common (propagated), free (chosen) and conflicts."""

from __future__ import annotations

import pytest
from tsir.passes import PassContext, get
from tsir.passes.layout_inference import LAYOUT_ATTR

import tsir
from tsir import T
from tsir.layout import Fragment, make_mma_c_fragment
from tsir.stmt import AttrStmt
from tsir.tileop.planned_layouts import RowGroup, reduced_fragment, row_group_fragment
from tsir.visitor import collect

# mma.sync layouts: on sm_90a a gemm like these takes wgmma (tests/tileop/test_gemm_wgmma.py).
CTX = PassContext(tsir.Target.parse("sm_80"))


def layouts(func: tsir.PrimFunc) -> dict[str, object]:
    out = get("LayoutInference")(func, CTX)
    (attr,) = [a for a in collect(out, AttrStmt) if a.key == LAYOUT_ATTR]
    return {b.name: lay for b, lay, _ in attr.value}


def gemm_kernel(extra) -> tsir.PrimFunc:  # type: ignore[no-untyped-def]
    with T.prim_func("g") as f:
        A = T.param("A", (128, 32), "float16")
        B = T.param("B", (32, 128), "float16")
        C = T.param("C", (128, 128), "float32")
        with T.Kernel(1, threads=128):
            A_s = T.alloc_shared((128, 32), "float16")
            B_s = T.alloc_shared((32, 128), "float16")
            C_f = T.alloc_fragment((128, 128), "float32")
            T.clear(C_f)
            T.copy(A, A_s)
            T.copy(B, B_s)
            T.gemm(A_s, B_s, C_f)
            extra(C_f, C)
    return f.func


def test_gemm_accumulator_is_fixed_in_the_strict_stage() -> None:
    lay = layouts(gemm_kernel(lambda c, C: T.copy(c, C)))
    assert lay["C_f"].is_equal(make_mma_c_fragment(128, 128, 64, 64))
    # Operand tiles get swizzled shared layouts (64-byte rows: 64B swizzle; 256-byte rows: 128B).
    from tsir.layout.swizzle import SwizzleMode, detect_swizzle

    assert detect_swizzle(lay["A_s"], "float16") is SwizzleMode.B64
    assert detect_swizzle(lay["B_s"], "float16") is SwizzleMode.B128


def test_common_stage_propagates_through_parallel() -> None:
    """D_f is written from C_f with the same indices: it takes the accumulator layout."""

    def extra(C_f, C):  # type: ignore[no-untyped-def]
        D_f = T.alloc_fragment((128, 128), "float32")
        for i, j in T.Parallel(128, 128):
            D_f[i, j] = C_f[i, j] * 2.0
        T.copy(D_f, C)

    lay = layouts(gemm_kernel(extra))
    assert lay["D_f"].is_equal(lay["C_f"])


def test_propagation_into_a_reduction() -> None:
    """x is laid out in the free stage; y follows it through T.Parallel; s from the reduction."""
    with T.prim_func("r") as f:
        X = T.param("X", (4, 1024), "float32")
        S = T.param("S", (4,), "float32")
        with T.Kernel(1, threads=256):
            x = T.alloc_fragment((4, 1024), "float32")
            y = T.alloc_fragment((4, 1024), "float32")
            s = T.alloc_fragment((4,), "float32")
            T.copy(X, x)
            for i, j in T.Parallel(4, 1024):
                y[i, j] = x[i, j] * x[i, j]
            T.reduce_sum(y, s, dim=1)
            T.copy(s, S)
    lay = layouts(f.func)
    plan = RowGroup(rows=4, cols=1024, threads=256, group=256, vector=4)
    assert lay["x"].is_equal(row_group_fragment(plan))
    assert lay["y"].is_equal(lay["x"])
    assert lay["s"].is_equal(reduced_fragment(plan, 1))


def test_free_stage_choice_keeps_every_thread_busy() -> None:
    """An unconstrained 64x64 float32 tile on 256 threads: 16 threads per row, 4-wide vectors."""
    with T.prim_func("fr") as f:
        X = T.param("X", (64, 64), "float32")
        with T.Kernel(1, threads=256):
            x = T.alloc_fragment((64, 64), "float32")
            T.copy(X, x)
            for i, j in T.Parallel(64, 64):
                x[i, j] = x[i, j] + 1.0
            T.copy(x, X)
    frag = layouts(f.func)["x"]
    assert isinstance(frag, Fragment)
    assert frag.thread_extent == 256 and frag.local_size == 16
    assert frag.is_equal(row_group_fragment(RowGroup(64, 64, 256, 16, 4)))


def test_conflicting_layouts_name_both_ops_and_both_layouts() -> None:
    def extra(C_f, C):  # type: ignore[no-untyped-def]
        D_f = T.alloc_fragment((128, 128), "float32")
        T.annotate_layout({D_f: Fragment.fully_replicated((128, 128), 128)})
        for i, j in T.Parallel(128, 128):
            D_f[i, j] = C_f[i, j]
        T.copy(D_f, C)

    with pytest.raises(tsir.LayoutConflictError) as e:
        layouts(gemm_kernel(extra))
    msg = str(e.value)
    # The nest ties C_f (fixed by the gemm) to D_f (pinned fully replicated): one must give.
    assert "`C_f` gets two different layouts" in msg
    assert "from Gemm" in msg and "from T.Parallel over `i`" in msg
    # Both layouts, printed in their builder form: D_f's copies in every thread (`rep` -> thread).
    assert msg.count("tsir.layout.Fragment.from_fn((128, 128), lambda i, j, rep: ") == 2
    assert "lambda i, j, rep: rep, lambda i, j: (i * 128 + j,), 128)" in msg


def test_a_gemm_accumulator_reduces_to_the_layout_its_structure_gives() -> None:
    """The square-policy accumulator (2 x 2 warps) reduces along rows: each row's result is held
    by the 4 lanes of each of the two warps that share the row (tsir.tileop.reduce_plan)."""

    def extra(C_f, C):  # type: ignore[no-untyped-def]
        s = T.alloc_fragment((128,), "float32")
        T.reduce_sum(C_f, s, dim=1)

    frag = layouts(gemm_kernel(extra))["s"]
    assert isinstance(frag, Fragment)
    assert frag.replicate_size == 8 and frag.local_size == 8
    holders = {int(frag.table().outputs[-1][k]) for k in range(8)}  # row 0's threads
    assert holders == {0, 1, 2, 3, 32, 33, 34, 35}


def test_a_layout_without_a_butterfly_plan_reduces_through_shared_memory() -> None:
    """Rows held by three threads are no butterfly group: the result takes a free layout, the
    source is staged through shared memory, and TSIR_EXPLAIN says why."""
    rows = Fragment.from_fn((4, 96), lambda i, j: j // 32, lambda i, j: (i * 32 + j % 32,))
    with T.prim_func("r") as f:
        A = T.param("A", (4, 96), "float32")
        M = T.param("M", (4,), "float32")
        with T.Kernel(1, threads=32):
            X = T.alloc_fragment((4, 96), "float32")
            m = T.alloc_fragment((4,), "float32")
            T.annotate_layout({X: rows})
            T.copy(A, X)
            T.reduce_max(X, m, dim=1)
            T.copy(m, M)
    assert isinstance(layouts(f.func)["m"], Fragment)
    report = [str(d) for d in tsir.lower(f.func, "sm_80").report]
    assert any(
        "T.reduce_max: staged instead of layout:" in d and "not a butterfly group" in d
        for d in report
    )
