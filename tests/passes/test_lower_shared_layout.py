"""LowerSharedLayout: a shared tile with a layout (padding, swizzle) becomes a 1-D buffer indexed
through the layout; a vector access stays one vector access (Before/Expected)."""

from __future__ import annotations

from tsir.passes import PassContext, get
from tsir.passes.lower_tile_op import SHARED_LAYOUT_ATTR

import tsir
from tsir import T
from tsir.layout import Layout
from tsir.layout.swizzle import make_swizzled_layout
from tsir.stmt import AttrStmt, seq

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

    tsir.assert_structural_equal(
        get("LowerSharedLayout")(with_layout(swizzled), CTX), expected.func
    )


def test_a_swizzled_tile_the_async_proxy_reads_is_aligned_to_its_swizzle_atom() -> None:
    """wgmma (and TMA) swizzle absolute addresses: a 128-byte swizzled tile they touch starts on a
    1024-byte boundary (8 rows of 128 bytes); the same tile read only by ordinary loads keeps 128."""
    swizzled = make_swizzled_layout((8, 64), tsir.DataType("float16"), True)
    f = with_layout(swizzled)
    k = f.body
    S = k.body.body.buffer
    desc = T.call_intrin(
        "uint64",
        "tsir.wgmma.wgmma_desc",
        T.call_intrin(
            "uint32", "tsir.mbarrier.shared_u32", T.call_intrin("handle", "address_of", S[0, 0])
        ),
        16,
        1024,
        1,
    )
    acc = tsir.buffer.make_buffer("acc", (4,), "float32", "local")
    wgmma = tsir.Evaluate(
        T.call_intrin(
            "int32",
            "tsir.wgmma.wgmma_ss<tsir::kWgmmaF16, 8, 0, 0>",
            T.call_intrin("handle", "address_of", acc[0]),
            desc,
            desc,
            1,
        )
    )
    alloc = k.body.body
    read = f.replace(
        body=k.replace(body=k.body.replace(body=alloc.replace(body=seq(alloc.body, wgmma))))
    )
    aligned = {b.name: b.align for b in _allocated(get("LowerSharedLayout")(read, CTX))}
    plain = {b.name: b.align for b in _allocated(get("LowerSharedLayout")(f, CTX))}
    assert aligned["S"] == 1024 and plain["S"] == 128


def _allocated(func: tsir.PrimFunc) -> list[tsir.Buffer]:
    from tsir.stmt import Allocate
    from tsir.visitor import collect

    return [a.buffer for a in collect(func, Allocate)]
