"""Copy's TMA lowering (tsir/tileop/copy_tma.py): which copies have a bulk form (`bulk_load`), the
boxes that fill a tile in each layout, and the reasons a copy stays on cp.async."""

from __future__ import annotations

import pytest

import tsir
from tsir import T
from tsir.buffer import make_buffer
from tsir.dtype import int32
from tsir.expr import BufferLoad, IntImm
from tsir.layout.swizzle import SwizzleMode, make_padded_layout, make_swizzle_layout
from tsir.layout.wgmma_layouts import TmaBox
from tsir.stmt import TileOpStmt
from tsir.tileop import BulkLoad, Copy, OpArgs
from tsir.tileop.copy_tma import tma_boxes_of
from tsir.visitor import collect

SM90 = OpArgs(tsir.Target.parse("sm_90a"), 128)
BAR = BufferLoad(make_buffer("bar", (2,), "uint64", "shared"), (IntImm(0, int32),))


def copy_op(
    shape=(256, 256), tile=(128, 64), dtype="float16", dst_dtype=None, src_at=(0, 0), **kw
) -> Copy:
    with T.prim_func("c") as f:
        A = T.param("A", shape, dtype, **kw)
        with T.Kernel(1, threads=128):
            A_s = T.alloc_shared(tile, dst_dtype or dtype)
            T.copy(A[src_at], A_s)
    (op,) = [s.op for s in collect(f.func, TileOpStmt)]
    return op  # type: ignore[return-value]


def test_an_aligned_tile_copy_is_a_bulk_load_of_the_whole_box() -> None:
    load = copy_op().bulk_load(SM90, BAR)
    assert isinstance(load, BulkLoad)
    assert load.nbytes == 128 * 64 * 2
    assert load.op.mbarrier is BAR and load.op.async_copy  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "kwargs, reason",
    [
        (
            dict(shape=(256, 100)),
            "a tensor map: the stride of `A`'s dimension 0 (100 elements = 200 bytes) is not a multiple of 16 bytes",
        ),
        (
            dict(tile=(512, 32), shape=(1024, 64)),
            "a box: the box has 512 rows; a TMA box has at most 256",
        ),
        (
            dict(dst_dtype="float32"),
            "global to shared: `A` is float16 and `A_s` float32: TMA does not convert",
        ),
        (
            dict(shape=(2, 2, 2, 256), tile=(2, 64), src_at=(0, 0, 0, 0)),
            "a tensor map: `A` has 4 dimensions",
        ),
    ],
)
def test_copies_tma_cannot_take_say_why(kwargs: dict, reason: str) -> None:
    why = copy_op(**kwargs).bulk_load(SM90, BAR)
    assert isinstance(why, str) and why.startswith(reason), why


def test_no_tma_before_sm90() -> None:
    why = copy_op().bulk_load(OpArgs(tsir.Target.parse("sm_80"), 128), BAR)
    assert why == "TMA unit: sm_80 has no TMA (sm_90+)"


def test_a_dynamic_row_stride_cannot_be_proved_aligned() -> None:
    with T.prim_func("c") as f:
        N = T.dynamic("N")
        A = T.param("A", (128, N), "float16")
        with T.Kernel(1, threads=128):
            A_s = T.alloc_shared((128, 64), "float16")
            T.copy(A[0, 0], A_s)
    (op,) = [s.op for s in collect(f.func, TileOpStmt)]
    why = op.bulk_load(SM90, BAR)
    assert (
        isinstance(why, str) and "is not a constant, so it cannot be proved a multiple of 16" in why
    )


def test_boxes_follow_the_destination_layout() -> None:
    op = copy_op(tile=(64, 128))
    # Row-major: one box of the whole tile.
    assert tma_boxes_of(op, None) == [TmaBox(128, 64, 0, 0)]
    # A 128-byte swizzle: one box per 64-element span, each its own 64 x 128-byte region.
    swz = make_swizzle_layout((64, 128), "float16", SwizzleMode.B128)
    assert tma_boxes_of(op, swz) == [TmaBox(64, 64, 0, 0), TmaBox(64, 64, 64, 64 * 128)]
    # Padding is not something TMA writes.
    why = tma_boxes_of(op, make_padded_layout((64, 128), "float16"))
    assert isinstance(why, str) and "neither row-major nor a swizzle" in why


def test_a_wide_row_major_tile_needs_a_swizzle() -> None:
    why = tma_boxes_of(copy_op(shape=(512, 512), tile=(8, 512)), None)
    assert isinstance(why, str) and "not at most 256 and a multiple of 16 bytes" in why


def test_a_tile_that_is_not_a_multiple_of_128_bytes_stays_on_cp_async() -> None:
    """Found by the fuzzer: the stages of a 7 x 32 half tile (448 bytes) follow each other, and
    TMA writes only 128-byte aligned shared addresses."""
    why = copy_op(tile=(7, 32)).bulk_load(SM90, BAR)
    assert isinstance(why, str) and "tile's 448 bytes are not a multiple of 128" in why
