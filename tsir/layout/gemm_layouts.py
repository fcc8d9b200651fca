"""Register fragments of `mma.sync` (m16n8k16, fp16/bf16 operands) and the ldmatrix accesses that
fill them, derived from the PTX ISA ("Matrix Fragments for mma.m16n8k16", "ldmatrix").

PTX names, per warp: `lane = %laneid`, `g = lane // 4` (groupID), `t = lane % 4`
(threadID_in_group). One m16n8k16 instruction holds, per lane:

- C/D (16x8, 4 values): `c_r` at row `g + 8 * (r // 2)`, column `2 * t + r % 2`;
- A (16x16, 8 halves): `a_r` at row `g + 8 * (r // 2 % 2)`, column `2 * t + r % 2 + 8 * (r // 4)`;
- B (16x8 as K x N, 4 halves): `b_r` at row (k) `2 * t + r % 2 + 8 * (r // 2)`, column (n) `g`.

Inverted, element (i, j) of a tile lives in lane `i % 8 * 4 + j % 8 // 2` for all three (with (k, n)
for B read as (j, i)), in slot `c = j % 2 + 2 * (i // 8)`, `a = k % 2 + 2 * (m % 16 // 8) +
4 * (k % 16 // 8)`, `b = k % 2 + 2 * (k % 16 // 8)`.

A block tile is covered by `warps_m x warps_n` warps (`WarpPartition`, warp id =
`wm * warps_n + wn`, thread = `warp_id * 32 + lane`), each owning a `warp_m x warp_n` piece of C
made of `(warp_m / 16) x (warp_n / 8)` m16n8 tiles. Registers are numbered tile-major, row-major
over tiles:

- C: `local = (mi * (warp_n / 8) + ni) * 4 + c` (mi, ni: the tile inside the warp's piece);
- A (block_m x block_k): `local = (mi * (block_k / 16) + ki) * 8 + a`, replicated over the warps_n
  warps of a warp row (`rep` = wn);
- B (block_k x block_n): `local = (ki * (warp_n / 8) + ni) * 4 + b`, replicated over the warps_m
  warps of a warp column (`rep` = wm).

Two consequences the lowering relies on: one ldmatrix.x4 of A fills the 8 consecutive registers of
one (mi, ki) tile, and one ldmatrix.x4 of B the 8 consecutive registers of tiles (ki, ni) and
(ki, ni + 1) (ni even); and with `warps_n == 1` the C fragment of a (M x N) tile *is* the A
fragment of an (M x K = N) tile (the flash-attention `P = softmax(S)` reuse), which `tests/layout`
checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import UnsupportedError
from .fragment import Fragment
from .layout import simplify_over

__all__ = [
    "WarpPartition",
    "make_mma_c_fragment",
    "make_mma_a_fragment",
    "make_mma_b_fragment",
    "LdmatrixAccess",
    "ldmatrix_a",
    "ldmatrix_b",
]

WARP_SIZE = 32


@dataclass(frozen=True, slots=True)
class WarpPartition:
    """`warps_m x warps_n` warps over a block's C tile; warp id = `wm * warps_n + wn`."""

    warps_m: int
    warps_n: int

    @property
    def num_warps(self) -> int:
        return self.warps_m * self.warps_n

    def warp_id(self, wm: Any, wn: Any) -> Any:
        return wm * self.warps_n + wn

    def coords(self, warp_id: Any) -> tuple[Any, Any]:
        """(wm, wn) of a warp id (an int or an expression such as `tx // 32`)."""
        return warp_id // self.warps_n, warp_id % self.warps_n

    @staticmethod
    def of(block_m: int, block_n: int, warp_m: int, warp_n: int, tile_m: int = 16) -> WarpPartition:
        for what, block, warp, atom in (("M", block_m, warp_m, tile_m), ("N", block_n, warp_n, 8)):
            if warp <= 0 or block % warp or warp % atom:
                raise UnsupportedError(
                    f"mma warp tiling along {what}: the block extent {block} must be a multiple of "
                    f"the warp extent {warp}, itself a multiple of {atom}"
                )
        return WarpPartition(block_m // warp_m, block_n // warp_n)


def _lane(row: Any, col: Any) -> Any:
    """The lane holding element (row, col) of an 8x8 block: `g = row % 8`, `t = col % 8 // 2`."""
    return row % 8 * 4 + col % 8 // 2


def make_mma_c_fragment(
    block_m: int, block_n: int, warp_m: int, warp_n: int, dtype_bits: int = 32
) -> Fragment:
    """The accumulator fragment of a block_m x block_n tile computed by mma.sync.

    16/32-bit accumulators use m16n8 tiles (4 values per lane); 64-bit ones use the m8n8k4.f64
    tile (`c_r` at row g, column 2t + r: 2 values per lane).
    """
    if dtype_bits not in (16, 32, 64):
        raise UnsupportedError(f"mma accumulators are 16, 32 or 64 bits wide, got {dtype_bits}")
    tile_m = 8 if dtype_bits == 64 else 16
    per_tile = tile_m * 8 // WARP_SIZE
    wp = WarpPartition.of(block_m, block_n, warp_m, warp_n, tile_m)
    nt = warp_n // 8

    def thread(i: Any, j: Any) -> Any:
        return wp.warp_id(i // warp_m, j // warp_n) * WARP_SIZE + _lane(i, j)

    def index(i: Any, j: Any) -> Any:
        mi, ni = i % warp_m // tile_m, j % warp_n // 8
        slot = j % 2 + (i % 16 // 8 * 2 if tile_m == 16 else 0)
        return (mi * nt + ni) * per_tile + slot

    return _clean(Fragment.from_fn((block_m, block_n), thread, index))


def make_mma_a_fragment(
    block_m: int,
    block_n: int,
    block_k: int,
    warp_m: int,
    warp_n: int,
    *,
    transposed: bool = False,
    dtype_bits: int = 16,
) -> Fragment:
    """The A operand (block_m x block_k) in registers, as mma.m16n8k16 reads it.

    `transposed`: the buffer is stored K x M (indexed [k, m]); the fragment is then over that shape.
    Each element is held by the warps_n warps of its warp row (`rep` = wn).
    """
    _check_operand(dtype_bits, block_k)
    wp = WarpPartition.of(block_m, block_n, warp_m, warp_n)
    kt = block_k // 16

    def thread(m: Any, k: Any, rep: Any) -> Any:
        return wp.warp_id(m // warp_m, rep) * WARP_SIZE + _lane(m, k)

    def index(m: Any, k: Any) -> Any:
        slot = k % 2 + m % 16 // 8 * 2 + k % 16 // 8 * 4
        return (m % warp_m // 16 * kt + k // 16) * 8 + slot

    shape = (block_k, block_m) if transposed else (block_m, block_k)
    if transposed:
        frag = Fragment.from_fn(
            shape, lambda k, m, r: thread(m, k, r), lambda k, m: index(m, k), wp.warps_n
        )
    else:
        frag = Fragment.from_fn(shape, thread, index, wp.warps_n)
    return _clean(frag)


def make_mma_b_fragment(
    block_m: int,
    block_n: int,
    block_k: int,
    warp_m: int,
    warp_n: int,
    *,
    transposed: bool = False,
    dtype_bits: int = 16,
) -> Fragment:
    """The B operand (block_k x block_n) in registers, as mma.m16n8k16 reads it.

    `transposed`: the buffer is stored N x K (indexed [n, k]). Each element is held by the warps_m
    warps of its warp column (`rep` = wm).
    """
    _check_operand(dtype_bits, block_k)
    wp = WarpPartition.of(block_m, block_n, warp_m, warp_n)
    nt = warp_n // 8

    def thread(k: Any, n: Any, rep: Any) -> Any:
        return wp.warp_id(rep, n // warp_n) * WARP_SIZE + _lane(n, k)

    def index(k: Any, n: Any) -> Any:
        slot = k % 2 + k % 16 // 8 * 2
        return (k // 16 * nt + n % warp_n // 8) * 4 + slot

    shape = (block_n, block_k) if transposed else (block_k, block_n)
    if transposed:
        frag = Fragment.from_fn(
            shape, lambda n, k, r: thread(k, n, r), lambda n, k: index(k, n), wp.warps_m
        )
    else:
        frag = Fragment.from_fn(shape, thread, index, wp.warps_m)
    return _clean(frag)


def _check_operand(dtype_bits: int, block_k: int) -> None:
    if dtype_bits != 16:
        raise UnsupportedError(
            f"mma operand fragments are implemented for 16-bit types (m16n8k16), "
            f"got {dtype_bits}-bit"
        )
    if block_k % 16:
        raise UnsupportedError(f"block_k must be a multiple of 16 for m16n8k16, got {block_k}")


def _clean(frag: Fragment) -> Fragment:
    frag = frag.condense_rep_var()
    domain = (*frag.vars, frag.rep)
    extents = (*frag.input_shape, frag.replicate_size)
    index = simplify_over(frag.forward_index, domain, extents)
    (thread,) = simplify_over((frag.forward_thread,), domain, extents)
    return frag.replace(forward_index=index, forward_thread=thread)


# -- ldmatrix --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LdmatrixAccess:
    """One lane's part of an `ldmatrix.sync.aligned.m8n8.x{num}{.trans}.shared.b16`.

    The lane passes the address of storage element `[row, col]` (relative to the tile's origin, in
    the buffer's own index order): the start of one 16-byte row of an 8x8 matrix. Lanes `8q..8q+7`
    give the rows of matrix q, which lands in destination register q; register q holds the two
    halves that make fragment registers `2q, 2q + 1` of the tile.
    """

    num: int
    trans: bool
    row: Any
    col: Any


def ldmatrix_a(lane: Any, *, transposed: bool = False) -> LdmatrixAccess:
    """Load one 16x16 A tile (fragment registers a0..a7) with ldmatrix.x4.

    Stored M x K (K contiguous): no .trans, lane reads `[lane % 16, lane // 16 * 8]`.
    Stored K x M (`transposed`): .trans, lane reads
    `[lane // 16 * 8 + lane % 8, lane // 8 % 2 * 8]`.
    """
    if transposed:
        return LdmatrixAccess(4, True, lane // 16 * 8 + lane % 8, lane // 8 % 2 * 8)
    return LdmatrixAccess(4, False, lane % 16, lane // 16 * 8)


def ldmatrix_b(lane: Any, *, transposed: bool = False, num: int = 4) -> LdmatrixAccess:
    """Load B for one k16 step: x2 fills b0..b3 of one n8 tile, x4 those of two adjacent n8 tiles.

    Stored K x N (N contiguous): .trans, lane reads `[lane % 16, lane // 16 * 8]`.
    Stored N x K (`transposed`, K contiguous): no .trans, lane reads
    `[lane // 16 * 8 + lane % 8, lane // 8 % 2 * 8]`. (For x2 only lanes 0..15 matter.)
    """
    if num not in (2, 4):
        raise UnsupportedError(f"ldmatrix for B loads x2 or x4 matrices, got x{num}")
    if transposed:
        return LdmatrixAccess(num, False, lane // 16 * 8 + lane % 8, lane // 8 % 2 * 8)
    return LdmatrixAccess(num, True, lane % 16, lane // 16 * 8)
