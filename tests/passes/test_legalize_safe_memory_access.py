"""LegalizeSafeMemoryAccess: guards only where the analyzer cannot prove an access in bounds."""

from __future__ import annotations

from tsir.passes import PassContext, get

import tsir
from tsir import T
from tsir.structural import assert_structural_equal

CTX = PassContext(tsir.Target.parse("sm_90a"))


def run(func: tsir.PrimFunc) -> tsir.PrimFunc:
    return get("LegalizeSafeMemoryAccess")(get("LowerTileOp")(func, CTX), CTX)


def tiled_copy(N: int) -> tsir.PrimFunc:
    with T.prim_func("f") as f:
        M = T.dynamic("M")
        A = T.param("A", (M, N), "float32")
        B = T.param("B", (M, N), "float32")
        with T.Kernel(T.ceildiv(N, 64), T.ceildiv(M, 64), threads=256) as (bx, by):
            for i, j in T.Parallel(64, 64):
                B[by * 64 + i, bx * 64 + j] = A[by * 64 + i, bx * 64 + j] * 2.0
    return f.func


def test_dynamic_rows_are_guarded_and_tiled_columns_are_not() -> None:
    """M dynamic, N a multiple of the tile: the store gets `row < M`, the load nothing more."""
    with T.prim_func("f") as expected:
        M = T.dynamic("M")
        A = T.param("A", (M, 1024), "float32")
        B = T.param("B", (M, 1024), "float32")
        with T.Kernel(16, (M + 63) // 64, threads=256) as (bx, by):
            tx = T.get_thread_binding(0)
            with T.attr("tile_op", "parallel"):
                for o in T.unroll(4):
                    for v in T.vectorized(4):
                        row = by * 64 + (o * 256 + tx) // 16
                        col = bx * 64 + ((o * 256 + tx) % 16 * 4 + v)
                        with T.If(row < M):
                            B[row, col] = A[row, col] * 2.0
    assert_structural_equal(run(tiled_copy(1024)), expected.func)


def test_generated_cuda_guards_m_and_not_n() -> None:
    src = tsir.compile(tiled_copy(1024), target="sm_90a").cuda_source
    assert "< M" in src
    assert "< 1024" not in src


def test_ragged_columns_are_guarded_too() -> None:
    src = tsir.compile(tiled_copy(1000), target="sm_90a").cuda_source
    assert "< M" in src and "< 1000" in src


def test_loads_outside_read_zero() -> None:
    """A load that the store's guard does not cover becomes `cond ? load : 0`."""
    with T.prim_func("f") as f:
        n = T.dynamic("n")
        A = T.param("A", (n,), "float32")
        B = T.param("B", (128,), "float32")
        with T.Kernel(1, threads=128):
            for i in T.Parallel(128):
                B[i] = A[i]

    with T.prim_func("f") as expected:
        n = T.dynamic("n")
        A = T.param("A", (n,), "float32")
        B = T.param("B", (128,), "float32")
        with T.Kernel(1, threads=128):
            tx = T.get_thread_binding(0)
            with T.attr("tile_op", "parallel"):
                B[tx] = T.if_then_else(tx < n, A[tx], 0.0)

    assert_structural_equal(run(f.func), expected.func)


def test_fully_provable_access_gets_no_guard() -> None:
    with T.prim_func("f") as f:
        A = T.param("A", (4096,), "float32")
        with T.Kernel(16, threads=256) as bx:
            for i in T.Parallel(256):
                A[bx * 256 + i] = 1.0
    assert "T.If" not in str(run(f.func))
