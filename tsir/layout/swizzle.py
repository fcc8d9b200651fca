"""Shared-memory layouts for mma operand tiles: XOR swizzles (128/64/32-byte) and padding.

Shared memory has 32 banks of 4 bytes: a 128-byte line. ldmatrix (and every 16-byte vector
access) is served in phases of 8 lanes, each reading one 16-byte chunk; a phase is conflict-free
when its 8 chunks fall in the 8 different 16-byte bank groups `(byte_address // 16) % 8`. ldmatrix
phases read 8 consecutive rows of a tile at the same column, which in a plain row-major tile whose
rows are a multiple of 128 bytes all hit one bank group: an 8-way conflict. Swizzles permute
16-byte chunks within each row so that those 8 rows land in 8 different groups.

The swizzle of width `S` bytes (`SwizzleMode.B128/B64/B32`; `W = S / 16` chunks) on a rows x
cols tile of `bits`-bit elements, with `vec = 128 / bits` elements per 16-byte chunk and
`span = vec * W`:

    phase(i)  = (i % 8) // (8 // W)                  # 3, 2 or 1 bits of the row
    swz(i, j) = ((j % span // vec) ^ phase(i)) * vec + j % vec
    physical  = (j // span, i, swz(i, j))           # just (i, swz(i, j)) when cols == span

i.e. the tile is cut into column blocks `span` elements (S bytes) wide, each block is stored as its
own rows x S region, and inside a region the byte offset `o = i * S + c * 16 + e` becomes
`o ^ (((o >> 7) & (W - 1)) << 4)`: CUTLASS's `Swizzle<log2 W, 4, 3>`, i.e. exactly what TMA's
`CU_TENSOR_MAP_SWIZZLE_{32,64,128}B` and the wgmma descriptor layouts produce, given a region base
aligned to `SwizzleMode.alignment` bytes. Requirements: rows % 8 == 0 and cols % span == 0.

Padding instead appends 16 bytes to every row whose size is a multiple of 32 bytes
(`(i * pitch + j,)` with an odd number of 16-byte chunks per pitch), the fallback when no swizzle
fits.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any

from ..dtype import DataType
from ..dtype import dtype as as_dtype
from ..errors import UnsupportedError
from ..structural import structural_equal
from .layout import Layout, simplify_over
from .numeric import const_shape

__all__ = [
    "SwizzleMode",
    "make_swizzle_layout",
    "make_full_bank_swizzle_layout",
    "make_half_bank_swizzle_layout",
    "make_quarter_bank_swizzle_layout",
    "make_padded_layout",
    "make_swizzled_layout",
    "detect_swizzle",
    "swizzle_error",
    "narrower_swizzle",
]


class SwizzleMode(enum.Enum):
    """A swizzle width in bytes (NONE: row-major)."""

    NONE = 0
    B32 = 32
    B64 = 64
    B128 = 128

    @property
    def chunks(self) -> int:
        """16-byte chunks permuted within a row (W)."""
        return self.value // 16

    @property
    def alignment(self) -> int:
        """Byte alignment a swizzled region's base needs (the 8-row swizzle atom)."""
        return 128 if self is SwizzleMode.NONE else 8 * self.value

    @property
    def tma_name(self) -> str:
        return "CU_TENSOR_MAP_SWIZZLE_" + ("NONE" if self is SwizzleMode.NONE else f"{self.value}B")

    @property
    def gmma_layout_type(self) -> int:
        """The layout-type field of a wgmma shared-memory descriptor."""
        return {SwizzleMode.NONE: 0, SwizzleMode.B128: 1, SwizzleMode.B64: 2, SwizzleMode.B32: 3}[
            self
        ]


def _bits(dtype: Any) -> int:
    if isinstance(dtype, int) and not isinstance(dtype, bool):
        return dtype
    dt = dtype if isinstance(dtype, DataType) else as_dtype(dtype)
    return dt.bits


def _tile(shape: Sequence[Any]) -> tuple[tuple[int, ...], int, int]:
    dims = const_shape(shape)
    if dims is None or len(dims) < 2:
        raise UnsupportedError(
            f"shared-memory tile layouts need a constant shape of >= 2 dims, got {tuple(shape)}"
        )
    return dims[:-2], dims[-2], dims[-1]


def swizzle_error(shape: Sequence[Any], dtype: Any, mode: SwizzleMode) -> str | None:
    """Why `mode` cannot swizzle a tile of this shape and dtype (None when it can)."""
    _, rows, cols = _tile(shape)
    bits = _bits(dtype)
    if bits not in (8, 16, 32, 64):
        return f"{bits}-bit elements do not pack 16-byte chunks"
    if mode is SwizzleMode.NONE:
        return None
    span = 128 // bits * mode.chunks
    if rows % 8:
        return f"{rows} rows is not a multiple of 8"
    if cols % span:
        return f"{cols} columns is not a multiple of the {mode.value}-byte span ({span} elements)"
    return None


def make_swizzle_layout(shape: Sequence[Any], dtype: Any, mode: SwizzleMode) -> Layout:
    """The `mode` swizzle of a (..., rows, cols) tile; leading dimensions pass through."""
    err = swizzle_error(shape, dtype, mode)
    if err is not None:
        raise UnsupportedError(
            f"cannot apply the {mode.value}-byte swizzle to {tuple(shape)}: {err}"
        )
    lead, rows, cols = _tile(shape)
    if mode is SwizzleMode.NONE:
        return Layout.row_major(shape)
    vec = 128 // _bits(dtype)
    w = mode.chunks
    span = vec * w

    def fn(i: Any, j: Any) -> tuple[Any, ...]:
        swz = ((j % span // vec) ^ (i % 8 // (8 // w))) * vec + j % vec
        return (i, swz) if cols == span else (j // span, i, swz)

    base = Layout.from_fn((rows, cols), fn)
    base = base.replace(
        forward_index=simplify_over(base.forward_index, base.vars, base.input_shape)
    )
    return base.expand(lead) if lead else base


def make_full_bank_swizzle_layout(shape: Sequence[Any], dtype: Any) -> Layout:
    return make_swizzle_layout(shape, dtype, SwizzleMode.B128)


def make_half_bank_swizzle_layout(shape: Sequence[Any], dtype: Any) -> Layout:
    return make_swizzle_layout(shape, dtype, SwizzleMode.B64)


def make_quarter_bank_swizzle_layout(shape: Sequence[Any], dtype: Any) -> Layout:
    return make_swizzle_layout(shape, dtype, SwizzleMode.B32)


def make_padded_layout(shape: Sequence[Any], dtype: Any, pad_bytes: int = 16) -> Layout:
    """Row-major with a row pitch of `cols + pad` elements: `(i * pitch + j,)`."""
    lead, rows, cols = _tile(shape)
    bits = _bits(dtype)
    if (pad_bytes * 8) % bits:
        raise UnsupportedError(
            f"a {pad_bytes}-byte pad is not a whole number of {bits}-bit elements"
        )
    pitch = cols + pad_bytes * 8 // bits
    base = Layout.from_fn((rows, cols), lambda i, j: (i * pitch + j,))
    return base.expand(lead) if lead else base


def make_swizzled_layout(
    shape: Sequence[Any], dtype: Any, k_inner: bool = True, *, allow_pad: bool = True
) -> Layout:
    """The shared layout for an mma operand tile (..., rows, cols), cols contiguous.

    Picks the widest swizzle that fits (128 > 64 > 32 bytes). 16-bit tiles are read by ldmatrix
    (.trans when the contiguous dimension is not K), so any orientation swizzles. Other widths have
    no transposing ldmatrix: when K is not the contiguous dimension (`k_inner=False`) their mma
    operands are read element-wise down columns, which XOR swizzles do not spread, so they get the
    fallback. The fallback pads rows by 16 bytes when a row is a multiple of 32 bytes (`allow_pad`)
    and stays row-major otherwise (rows of an odd number of 16-byte chunks are already conflict-free
    for ldmatrix).
    """
    bits = _bits(dtype)
    _, rows, cols = _tile(shape)
    if bits == 16 or k_inner:
        for mode in (SwizzleMode.B128, SwizzleMode.B64, SwizzleMode.B32):
            if swizzle_error(shape, bits, mode) is None:
                return make_swizzle_layout(shape, bits, mode)
    if allow_pad and bits in (8, 16, 32, 64) and (cols * bits) % 256 == 0:
        return make_padded_layout(shape, bits)
    return Layout.row_major(shape)


def detect_swizzle(layout: Layout, dtype: Any) -> SwizzleMode | None:
    """Which swizzle `layout` is (structurally), NONE for row-major, None for anything else."""
    shape = layout.input_shape
    if const_shape(shape) is None or len(shape) < 2:
        return None
    for mode in SwizzleMode:
        if swizzle_error(shape, dtype, mode) is None:
            if structural_equal(layout, make_swizzle_layout(shape, dtype, mode)):
                return mode
    return None


def narrower_swizzle(a: Layout, b: Layout, dtype: Any) -> Layout | None:
    """For two swizzles of one buffer, the narrower one (conflict-free for both users' ldmatrix
    reads, since every width is); None when either is not a swizzle."""
    ma, mb = detect_swizzle(a, dtype), detect_swizzle(b, dtype)
    if ma is None or mb is None:
        return None
    return a if ma.value <= mb.value else b
