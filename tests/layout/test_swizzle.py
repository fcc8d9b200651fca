"""Shared-memory swizzles: bijective, TMA-compatible, and free of bank conflicts for ldmatrix."""

from __future__ import annotations

import numpy as np
import pytest

from tsir.errors import UnsupportedError
from tsir.layout import (
    Layout,
    SwizzleMode,
    detect_swizzle,
    make_padded_layout,
    make_swizzle_layout,
    make_swizzled_layout,
    narrower_swizzle,
    swizzle_error,
)

MODES = [SwizzleMode.B32, SwizzleMode.B64, SwizzleMode.B128]
BITS = [8, 16, 32, 64]


def byte_offsets(layout: Layout, bits: int) -> np.ndarray:
    """The byte offset of every logical element (row-major over the logical tile)."""
    t = layout.table()
    offset = np.zeros(t.size, dtype=np.int64)
    for out, extent in zip(t.outputs, t.output_extents()):
        offset = offset * extent + out
    return (offset * bits // 8).reshape(layout.const_input_shape())


def tiles(bits: int, mode: SwizzleMode) -> list[tuple[int, int]]:
    span = 128 // bits * mode.chunks
    return [(8, span), (16, 2 * span), (64, 4 * span), (24, 3 * span)]


def assert_ldmatrix_conflict_free(offsets: np.ndarray, bits: int, stores: bool = True) -> None:
    """Every ldmatrix phase (8 lanes reading 16-byte row chunks of 8 consecutive rows at one column)
    and, with `stores`, every 16-byte store phase (8 consecutive chunks of the row-major tile, as
    a coalesced global->shared copy writes them) touches 8 distinct 16-byte bank groups; every chunk
    is 16 contiguous, 16-byte aligned bytes."""
    vec = 128 // bits
    rows, cols = offsets.shape[-2:]
    chunks = offsets.reshape(-1, rows, cols // vec, vec)
    assert np.all(np.diff(chunks, axis=-1) == bits // 8), "a 16-byte chunk is split"
    starts = chunks[..., 0]
    assert np.all(starts % 16 == 0)
    group = (starts // 16) % 8
    for r0 in range(0, rows - rows % 8, 8):  # ldmatrix: one column of chunks, 8 rows
        phase = group[:, r0 : r0 + 8, :]
        assert all(
            len(set(phase[b, :, c].tolist())) == 8
            for b in range(phase.shape[0])
            for c in range(phase.shape[2])
        )
    if not stores:
        return
    flat = group.reshape(group.shape[0], -1)  # vectorized copies: 8 consecutive chunks
    for s in range(0, flat.shape[1] - flat.shape[1] % 8, 8):
        assert all(len(set(flat[b, s : s + 8].tolist())) == 8 for b in range(flat.shape[0]))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("bits", BITS)
def test_swizzles_are_bijections_and_conflict_free(bits: int, mode: SwizzleMode) -> None:
    for rows, cols in tiles(bits, mode):
        layout = make_swizzle_layout((rows, cols), bits, mode)
        assert layout.is_bijective()
        assert int(np.prod(layout.const_output_shape())) == rows * cols
        # Row-major copies stay conflict-free when a row fits one swizzle block, or for 128-byte
        # blocks; narrower blocks side by side (which the chooser avoids) put a 128-byte row
        # segment into 2 or 4 regions.
        one_block = cols * bits // 8 == mode.value or mode is SwizzleMode.B128
        assert_ldmatrix_conflict_free(byte_offsets(layout, bits), bits, stores=one_block)


@pytest.mark.parametrize("bits", [8, 16, 32])
def test_plain_row_major_tiles_do_conflict(bits: int) -> None:
    """The reason swizzles exist: 128-byte rows put a whole ldmatrix column in one bank group."""
    layout = Layout.row_major((8, 1024 // bits))
    with pytest.raises(AssertionError):
        assert_ldmatrix_conflict_free(byte_offsets(layout, bits), bits)


@pytest.mark.parametrize("mode", MODES)
def test_swizzle_is_the_tma_byte_swizzle(mode: SwizzleMode) -> None:
    """Inside each column block the byte offset o is `o ^ (((o >> 7) & (W - 1)) << 4)` of the
    block's row-major offset: CU_TENSOR_MAP_SWIZZLE_<S>B / Swizzle<log2 W, 4, 3>."""
    bits, rows = 16, 32
    span = 8 * mode.chunks
    cols = 2 * span
    got = byte_offsets(make_swizzle_layout((rows, cols), bits, mode), bits)
    w = mode.chunks
    for i in range(rows):
        for j in range(cols):
            block, jj = divmod(j, span)
            o = (i * span + jj) * 2
            assert got[i, j] == block * rows * span * 2 + (o ^ (((o >> 7) & (w - 1)) << 4))
    assert mode.alignment == 8 * mode.value and mode.tma_name.endswith(f"{mode.value}B")


def test_chooser_picks_the_widest_legal_swizzle() -> None:
    assert detect_swizzle(make_swizzled_layout((64, 64), "float16"), 16) is SwizzleMode.B128
    assert detect_swizzle(make_swizzled_layout((64, 32), "float16"), 16) is SwizzleMode.B64
    assert detect_swizzle(make_swizzled_layout((64, 16), "bfloat16"), 16) is SwizzleMode.B32
    assert detect_swizzle(make_swizzled_layout((64, 32), "float32"), 32) is SwizzleMode.B128
    assert detect_swizzle(make_swizzled_layout((32, 128), "int8"), 8) is SwizzleMode.B128
    # 16-bit tiles swizzle in either orientation (ldmatrix.trans); K x N int8 pads instead.
    assert (
        detect_swizzle(make_swizzled_layout((32, 64), "float16", k_inner=False), 16)
        is SwizzleMode.B128
    )
    padded = make_swizzled_layout((32, 64), "int8", k_inner=False)
    assert padded.is_equal(make_padded_layout((32, 64), 8))
    assert detect_swizzle(padded, 8) is None


def test_padded_fallback_is_conflict_free_and_needs_a_guard_to_invert() -> None:
    """Rows that are not a multiple of 8 cannot swizzle; a 16-byte pad per row spreads them."""
    layout = make_swizzled_layout((12, 64), "float16")
    assert layout.is_equal(make_padded_layout((12, 64), 16))
    assert_ldmatrix_conflict_free(byte_offsets(layout, 16).reshape(12, 64)[:8], 16)
    offs = byte_offsets(layout, 16)
    groups = (offs[:8, ::8] // 16) % 8
    assert all(len(set(groups[:, c].tolist())) == 8 for c in range(8))
    assert layout.is_injective() and not layout.is_bijective()
    inv, guard = layout.inverse_with_guard()
    assert "% 72 < 64" in str(guard)
    with pytest.raises(UnsupportedError, match="inverse_with_guard"):
        layout.inverse()
    assert str(inv.forward((72 * 3 + 5,))[0]) == "3"


def test_odd_chunk_rows_stay_row_major() -> None:
    layout = make_swizzled_layout((12, 24), "float16")  # 48-byte rows: 3 chunks
    assert layout.is_equal(Layout.row_major((12, 24)))


def test_leading_dimensions_pass_through() -> None:
    layout = make_swizzled_layout((3, 64, 64), "float16")
    two_d = make_swizzle_layout((64, 64), 16, SwizzleMode.B128)
    assert layout.is_equal(two_d.expand((3,)))
    assert detect_swizzle(layout, 16) is SwizzleMode.B128
    assert layout.const_output_shape() == (3, 64, 64)
    assert_ldmatrix_conflict_free(byte_offsets(layout, 16), 16)


def test_narrower_swizzle_and_errors() -> None:
    a = make_swizzle_layout((64, 64), 16, SwizzleMode.B128)
    b = make_swizzle_layout((64, 64), 16, SwizzleMode.B64)
    assert narrower_swizzle(a, b, 16) is b and narrower_swizzle(b, a, 16) is b
    assert narrower_swizzle(a, make_padded_layout((64, 64), 16), 16) is None
    assert swizzle_error((12, 64), 16, SwizzleMode.B128) == "12 rows is not a multiple of 8"
    with pytest.raises(UnsupportedError, match="not a multiple of the 128-byte span"):
        make_swizzle_layout((64, 32), "float16", SwizzleMode.B128)
