"""wgmma (sm_90a) layouts: the accumulator and A-in-register fragments of a warpgroup, and the
shared-memory operand layouts its matrix descriptors read, from the PTX ISA ("Asynchronous
Warpgroup Level Matrix Multiply-Accumulate": register fragments, shared memory matrix layout,
matrix descriptor format).

Per warpgroup (128 threads; `warp = tid // 32`, `g = lane // 4`, `t = lane % 4`), one m64nNk
instruction holds:

- D (64 x N, fp32, N/2 registers): `d_r` at row `16 * warp + g + 8 * (r % 4 // 2)`, column
  `8 * (r // 4) + 2 * t + r % 2` -- mma.sync's m16n8 accumulator tile, N/8 times along N, one
  warp per 16 rows;
- A in registers, 16-bit (64 x 16, 8 values in 4 registers): `a_r` at row
  `16 * warp + g + 8 * (r // 2 % 2)`, column `2 * t + r % 2 + 8 * (r // 4)`;
- A in registers, 8-bit (64 x 32, 16 values in 4 registers): `a_r` at row
  `16 * warp + g + 8 * (r // 4 % 2)`, column `4 * t + r % 4 + 16 * (r // 8)`.

A block tile is covered by `wgs_m x wgs_n` warpgroups (warpgroup id `wm * wgs_n + wn`, thread
`id * 128 + tid`), each owning a `wg_m x wg_n` piece made of `wg_m / 64` m64 tiles; registers
are numbered m-tile-major: `local = mi * (wg_n / 2) + (j % wg_n // 8) * 4 + slot`. So, as with
mma.sync, the 16-bit A fragment of a 64 x K tile is the accumulator fragment of a 64 x N=K tile
(FlashAttention's P = softmax(S) feeds P.V from registers); for 8-bit A it is not (see
`a_fragment_matches_accumulator`).

Shared operands use tsir's swizzled tile layouts (`tsir.layout.swizzle`), which are what TMA
writes for a box whose inner extent is one swizzle span: a (rows, cols) tile, cols contiguous,
cut into blocks of `span` columns each stored as its own rows x S-byte region. `descriptor` gives
the start offset, LBO and SBO that make a wgmma instruction read the right elements of such a
tile, K-major (K = cols) or MN-major (MN = cols, 16-bit types only).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from ..errors import UnsupportedError
from .analysis import equivalent
from .fragment import Fragment
from .gemm_layouts import _clean
from .layout import Layout
from .swizzle import SwizzleMode, _bits, detect_swizzle, make_swizzle_layout, swizzle_error

__all__ = [
    "WarpgroupPartition",
    "make_wgmma_c_fragment",
    "make_wgmma_a_fragment",
    "a_fragment_matches_accumulator",
    "WgmmaDescriptor",
    "wgmma_operand_error",
    "choose_wgmma_swizzle",
    "make_wgmma_smem_layout",
    "descriptor",
    "instruction_k",
    "valid_wgmma_n",
    "TmaBox",
    "tma_boxes",
    "swizzle_mode",
]

WARPGROUP = 128


@dataclass(frozen=True, slots=True)
class WarpgroupPartition:
    """`wgs_m x wgs_n` warpgroups over a block's C tile; warpgroup id = `wm * wgs_n + wn`."""

    wgs_m: int
    wgs_n: int

    @property
    def num_warpgroups(self) -> int:
        return self.wgs_m * self.wgs_n

    @staticmethod
    def of(block_m: int, block_n: int, wg_m: int, wg_n: int) -> WarpgroupPartition:
        for what, block, part, atom in (("M", block_m, wg_m, 64), ("N", block_n, wg_n, 8)):
            if part <= 0 or block % part or part % atom:
                raise UnsupportedError(
                    f"wgmma warpgroup tiling along {what}: the block extent {block} must be a "
                    f"multiple of the warpgroup extent {part}, itself a multiple of {atom}"
                )
        return WarpgroupPartition(block_m // wg_m, block_n // wg_n)


def valid_wgmma_n(n: int) -> bool:
    """N of one wgmma instruction: 8..256 in steps of 8 (dense f16/bf16/fp8 with fp32 D)."""
    return 8 <= n <= 256 and n % 8 == 0


def instruction_k(dtype: Any) -> int:
    """K of one instruction: 16 for 16-bit operands, 32 for 8-bit ones."""
    bits = _bits(dtype)
    if bits not in (8, 16):
        raise UnsupportedError(
            f"tsir's wgmma path takes 16-bit (f16/bf16) or 8-bit (e4m3/e5m2) operands, "
            f"got {bits}-bit"
        )
    return 256 // bits


def _in_warpgroup(i: Any, j: Any) -> Any:
    """Thread within the warpgroup holding D element (i, j) of an m64 tile."""
    return i % 64 // 16 * 32 + i % 8 * 4 + j % 8 // 2


def make_wgmma_c_fragment(block_m: int, block_n: int, wg_m: int, wg_n: int) -> Fragment:
    """The fp32 accumulator of a block_m x block_n tile computed by warpgroups of wg_m x wg_n."""
    wp = WarpgroupPartition.of(block_m, block_n, wg_m, wg_n)

    def thread(i: Any, j: Any) -> Any:
        return (i // wg_m * wp.wgs_n + j // wg_n) * WARPGROUP + _in_warpgroup(i, j)

    def index(i: Any, j: Any) -> Any:
        mi = i % wg_m // 64
        slot = j % 2 + i % 16 // 8 * 2
        return mi * (wg_n // 2) + j % wg_n // 8 * 4 + slot

    return _clean(Fragment.from_fn((block_m, block_n), thread, index))


def make_wgmma_a_fragment(
    block_m: int, block_k: int, wg_m: int, dtype_bits: int = 16, wgs_n: int = 1
) -> Fragment:
    """A (block_m x block_k) in registers as the rs form of wgmma reads it, for warpgroups of
    wg_m rows; each element is held by the `wgs_n` warpgroups of its warpgroup row (`rep`).

    Register `(mi * (block_k / K) + kk) * R + r` holds a_r of k-step kk of m64 tile mi, where
    K = instruction_k and R = 8 (16-bit) or 16 (8-bit) values: 4 32-bit registers either way.
    """
    if dtype_bits not in (8, 16):
        raise UnsupportedError(f"wgmma A fragments are 8- or 16-bit, got {dtype_bits}-bit")
    kstep = 256 // dtype_bits
    if block_m % wg_m or wg_m % 64 or block_k % kstep:
        raise UnsupportedError(
            f"wgmma A fragment: block_m {block_m} must be a multiple of wg_m {wg_m}, itself a "
            f"multiple of 64, and block_k {block_k} a multiple of {kstep}"
        )
    wgs_m = block_m // wg_m
    per = 8 if dtype_bits == 16 else 16
    steps = block_k // kstep

    def thread(m: Any, k: Any, rep: Any) -> Any:
        if dtype_bits == 16:
            lane = m % 8 * 4 + k % 8 // 2
        else:
            lane = m % 8 * 4 + k % 16 // 4
        return (m // wg_m * wgs_n + rep) * WARPGROUP + m % 64 // 16 * 32 + lane

    def index(m: Any, k: Any) -> Any:
        if dtype_bits == 16:
            slot = k % 2 + m % 16 // 8 * 2 + k % 16 // 8 * 4
        else:
            slot = k % 4 + m % 16 // 8 * 4 + k % 32 // 16 * 8
        return (m % wg_m // 64 * steps + k // kstep) * per + slot

    del wgs_m
    return _clean(Fragment.from_fn((block_m, block_k), thread, index, wgs_n))


def a_fragment_matches_accumulator(rows: int, cols: int, dtype_bits: int) -> bool:
    """Whether the accumulator fragment of a rows x cols tile (one warpgroup column) is, register
    for register, the A fragment of a rows x (K = cols) operand of `dtype_bits` (True for 16-bit:
    convert in place; False for 8-bit, whose A packs 4 consecutive columns per thread)."""
    c = make_wgmma_c_fragment(rows, cols, rows, cols)
    a = make_wgmma_a_fragment(rows, cols, rows, dtype_bits)
    if c.local_size != a.local_size:
        return False
    return equivalent(c, a)


# -- shared-memory operands ------------------------------------------------------------------------


def wgmma_operand_error(dtype: Any, k_major: bool) -> str | None:
    """Why wgmma cannot read a shared operand of this dtype and majorness (None when it can)."""
    bits = _bits(dtype)
    if bits not in (8, 16):
        return f"wgmma reads 16-bit (f16/bf16) or 8-bit (e4m3/e5m2) operands, not {bits}-bit"
    if bits == 8 and not k_major:
        return (
            "8-bit wgmma operands must be K-major (K contiguous): the transpose immediates exist "
            "only for f16/bf16; store B as N x K (or transpose it while loading)"
        )
    return None


def choose_wgmma_swizzle(shape: tuple[int, int], dtype: Any) -> SwizzleMode | None:
    """The widest swizzle (128 > 64 > 32 bytes) a (rows, cols) operand tile takes, or None."""
    for mode in (SwizzleMode.B128, SwizzleMode.B64, SwizzleMode.B32):
        if swizzle_error(shape, dtype, mode) is None:
            return mode
    return None


@lru_cache(maxsize=512)
def swizzle_mode(layout: Layout, dtype: Any) -> SwizzleMode | None:
    """`detect_swizzle`, remembered per layout (immutable, hashed by identity): the wgmma and TMA
    lowerings ask it of the same operand tiles many times."""
    return detect_swizzle(layout, dtype)


def make_wgmma_smem_layout(shape: tuple[int, int], dtype: Any, mode: SwizzleMode) -> Layout:
    """The shared layout of a wgmma operand tile: tsir's `mode` swizzle (what TMA writes)."""
    if mode is SwizzleMode.NONE:
        raise UnsupportedError(
            "tsir's wgmma operands are swizzled (32/64/128 bytes); the interleaved unswizzled "
            "canonical layout is not produced by tsir's copies"
        )
    return make_swizzle_layout(shape, dtype, mode)


@dataclass(frozen=True, slots=True)
class WgmmaDescriptor:
    """The fields of one wgmma shared-memory descriptor, in bytes (the header shifts them)."""

    start: int
    """Offset of the instruction's first operand element from the tile's base (pre-swizzle)."""
    lbo: int
    sbo: int
    mode: SwizzleMode

    @property
    def layout_type(self) -> int:
        return self.mode.gmma_layout_type

    def encode(self, base_address: int) -> int:
        """The 64-bit descriptor for a tile at shared address `base_address` (ISA bit layout)."""
        addr = base_address + self.start
        return (
            ((addr & 0x3FFFF) >> 4)
            | (((self.lbo & 0x3FFFF) >> 4) << 16)
            | (((self.sbo & 0x3FFFF) >> 4) << 32)
            | (self.layout_type << 62)
        )


def descriptor(
    shape: tuple[int, int], dtype: Any, mode: SwizzleMode, *, k_major: bool, mn0: int, k0: int
) -> WgmmaDescriptor:
    """The descriptor of the instruction operand starting at (mn0, k0) of a swizzled tile.

    The tile is stored (rows, cols) with cols contiguous: (MN, K) when `k_major`, (K, MN) when
    not. `mn0` must start an 8-row group (K-major) or a swizzle span (MN-major); `k0` a K step
    (K-major: inside one span, so the instruction's K never crosses a region) or an 8-row group.
    """
    err = wgmma_operand_error(dtype, k_major) or swizzle_error(shape, dtype, mode)
    if err is None and mode is SwizzleMode.NONE:
        err = "the operand tile is not swizzled"
    if err is not None:
        raise UnsupportedError(f"no wgmma descriptor for a {shape} tile: {err}")
    rows, cols = shape
    esize = _bits(dtype) // 8
    span = mode.value // esize
    kstep = instruction_k(dtype)
    if k_major:
        if mn0 % 8 or k0 % kstep or not (0 <= mn0 < rows and 0 <= k0 < cols):
            raise UnsupportedError(f"operand origin ({mn0}, {k0}) is not on an 8 x {kstep} grid")
        region, col = divmod(k0, span)
        start = (region * rows + mn0) * mode.value + col * esize
        return WgmmaDescriptor(start, 16, 8 * mode.value, mode)
    if mn0 % span or k0 % 8 or not (0 <= mn0 < cols and 0 <= k0 < rows):
        raise UnsupportedError(f"operand origin ({mn0}, {k0}) is not on a {span} x 8 grid")
    start = (mn0 // span * rows + k0) * mode.value
    return WgmmaDescriptor(start, rows * mode.value, 8 * mode.value, mode)


# -- TMA boxes -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TmaBox:
    """One TMA load of a swizzled operand tile: a box `inner x outer` elements (inner contiguous)
    at global offset (+col0 inner, +0 outer) from the tile's origin, written at `smem_offset`."""

    inner: int
    outer: int
    col0: int
    smem_offset: int


def tma_boxes(shape: tuple[int, int], dtype: Any, mode: SwizzleMode) -> list[TmaBox]:
    """The TMA loads that fill a (rows, cols) tile in tsir's `mode` swizzle: one box per span of
    columns (the box's inner extent may not exceed the swizzle width), each its own region."""
    err = swizzle_error(shape, dtype, mode)
    if err is not None or mode is SwizzleMode.NONE:
        raise UnsupportedError(f"no TMA boxes for a {shape} tile in {mode}: {err or 'unswizzled'}")
    rows, cols = shape
    esize = _bits(dtype) // 8
    span = mode.value // esize
    if rows > 256:
        raise UnsupportedError(f"a TMA box has at most 256 rows, the tile has {rows}")
    return [TmaBox(span, rows, b * span, b * rows * mode.value) for b in range(cols // span)]
