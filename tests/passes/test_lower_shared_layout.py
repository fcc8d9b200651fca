"""LowerSharedLayout: a shared tile with a layout (padding, swizzle) becomes a 1-D buffer indexed
through the layout; a vector access stays one vector access (Before/Expected)."""

from __future__ import annotations

import tsir
from tsir import T
from tsir.layout import Layout
from tsir.layout.swizzle import make_swizzled_layout
from tsir.passes import PassContext, get
from tsir.passes.lower_tile_op import SHARED_LAYOUT_ATTR
from tsir.stmt import AttrStmt

CTX = PassContext(tsir.Target.parse("sm_80"))


def with_layout(layout: Layout) -> tsir.PrimFunc:
    """A kernel writing a vector into an (8, 64) shared tile and reading one element back, with
    `layout` recorded for the tile the way LowerTileOp records it (around the kernel's body)."""
    with T.prim_func("f") as f:
        A = T.param("A", (8, 64), "float16")
        with T.Kernel(1, threads=64):
            tx = T.get_thread_binding(0)
            S = T.alloc_shared((8, 64), "float16")
            S[tx // 8, T.Ramp(tx % 8 * 8, 1, 8)] = A[tx // 8, T.Ramp(tx % 8 * 8, 1, 8)]
            A[tx // 8, tx % 8] = S[tx // 8, tx % 8 * 8 + 1]
    k = f.func.body
    return f.func.replace(body=k.replace(body=AttrStmt(SHARED_LAYOUT_ATTR, ((S, layout),), k.body)))


def test_a_padded_tile_is_indexed_by_its_padded_rows() -> None:
    """Rows of 64 halves padded to 72: the buffer holds 7 * 72 + 64 elements, 128-byte aligned;
    (i, j) lives at i * 72 + j, and the 8-lane vector at (i, j0) stays 8 contiguous lanes."""
    padded = Layout.from_fn((8, 64), lambda i, j: (i * 72 + j,))
    with T.prim_func("f") as expected:
        A = T.param("A", (8, 64), "float16")
        with T.Kernel(1, threads=64):
            tx = T.get_thread_binding(0)
            S = T.alloc_buffer((568,), "float16", scope="shared.dyn", align=128)
            S[T.Ramp(tx // 8 * 72 + tx % 8 * 8, 1, 8)] = A[tx // 8, T.Ramp(tx % 8 * 8, 1, 8)]
            A[tx // 8, tx % 8] = S[tx // 8 * 72 + tx % 8 * 8 + 1]

    tsir.assert_structural_equal(get("LowerSharedLayout")(with_layout(padded), CTX), expected.func)


def test_a_swizzled_tile_permutes_sixteen_byte_chunks_within_a_row() -> None:
    """The 128-byte swizzle of an (8, 64) half tile: chunk c of row i sits at chunk c ^ i, so the
    vector at (i, 8c) is still one contiguous 16-byte chunk, at ((c ^ i) * 8 + 64 i)."""
    swizzled = make_swizzled_layout((8, 64), tsir.DataType("float16"), True)
    with T.prim_func("f") as expected:
        A = T.param("A", (8, 64), "float16")
        with T.Kernel(1, threads=64):
            tx = T.get_thread_binding(0)
            S = T.alloc_buffer((512,), "float16", scope="shared.dyn", align=128)
            chunk = (tx % 8 ^ tx // 8) * 8 + tx // 8 * 64
            S[T.Ramp(chunk, 1, 8)] = A[tx // 8, T.Ramp(tx % 8 * 8, 1, 8)]
            A[tx // 8, tx % 8] = S[(tx % 8 ^ tx // 8) * 8 + tx // 8 * 64 + 1]

    tsir.assert_structural_equal(get("LowerSharedLayout")(with_layout(swizzled), CTX), expected.func)
