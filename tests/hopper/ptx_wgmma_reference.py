"""The PTX ISA's wgmma tables, transcribed as plainly as the ISA states them.

Independent of `tsir.layout.wgmma_layouts` on purpose: the tests check the library against these.
Sources (PTX ISA 9.7.15.5.1, "Register Fragments and Shared Memory Matrix Layouts"):
- Figure "WGMMA .m64nNk16 register fragment layout for accumulator matrix D" (and the same for
  k32/k8): each warp of the warpgroup owns 16 rows; inside them the m16n8 accumulator pattern
  repeats every 8 columns;
- Figures "WGMMA .m64nNk16 / .m64nNk32 register fragment layout for matrix A";
- "Shared Memory Matrix Layout" / "Strides": swizzle atoms of 8 rows x (swizzle bytes), the
  leading and stride byte offsets, and the swizzle as an XOR of address bits [4, 4 + b) with
  bits [7, 7 + b) for b = log2(swizzle bytes / 16).
"""

from __future__ import annotations


def warpgroup_ids(tid: int) -> tuple[int, int, int]:
    """(warp in warpgroup, groupID, threadID_in_group) of thread `tid` (0..127)."""
    warp, lane = divmod(tid, 32)
    return warp, lane >> 2, lane % 4


def wgmma_d(tid: int, n: int) -> list[tuple[int, int]]:
    """(row, col) of d0..d(N/2 - 1), fp32 accumulator of m64nN."""
    warp, g, t = warpgroup_ids(tid)
    out = []
    for i in range(n // 2):
        row = 16 * warp + g + (8 if i % 4 >= 2 else 0)
        col = 8 * (i // 4) + t * 2 + (i & 1)
        out.append((row, col))
    return out


def wgmma_a_16bit(tid: int) -> list[tuple[int, int]]:
    """(row, col) of a0..a7 (f16/bf16, m64nNk16, A in registers)."""
    warp, g, t = warpgroup_ids(tid)
    out = []
    for i in range(8):
        row = 16 * warp + g + (8 if i in (2, 3, 6, 7) else 0)
        col = t * 2 + (i & 1) + (8 if i >= 4 else 0)
        out.append((row, col))
    return out


def wgmma_a_8bit(tid: int) -> list[tuple[int, int]]:
    """(row, col) of a0..a15 (e4m3/e5m2, m64nNk32, A in registers)."""
    warp, g, t = warpgroup_ids(tid)
    out = []
    for i in range(16):
        row = 16 * warp + g + (8 if (4 <= i < 8 or 12 <= i < 16) else 0)
        col = t * 4 + (i & 3) + (16 if i >= 8 else 0)
        out.append((row, col))
    return out


def swizzle_address(addr: int, swizzle_bytes: int) -> int:
    """The 16-byte chunk index (address bits 4..) XORed with the 128-byte row index (bits 7..)
    modulo the number of chunks in the swizzle width; identity for no swizzle."""
    if swizzle_bytes == 0:
        return addr
    chunks = swizzle_bytes // 16
    return addr ^ (((addr >> 7) % chunks) << 4)


def canonical_address(
    *,
    start: int,
    lbo: int,
    sbo: int,
    swizzle_bytes: int,
    k_major: bool,
    esize: int,
    mn: int,
    k: int,
) -> int:
    """The shared byte address wgmma reads for operand element (mn, k) of one instruction, given
    the descriptor's start address, LBO, SBO and swizzle (absolute addresses: the swizzle pattern
    repeats from 1024-byte-aligned addresses for 128B and the base-offset field is 0).

    K-major swizzled: 8-row groups SBO apart, each row `swizzle_bytes` long, K contiguous within
    the row (LBO unused). MN-major swizzled: blocks of `swizzle_bytes` along MN, LBO apart; groups
    of 8 K-rows SBO apart; each K-row `swizzle_bytes` long with MN contiguous.
    """
    per_chunk = 16 // esize
    if swizzle_bytes == 0:
        if not k_major:
            raise ValueError("only K-major interleaved layouts are transcribed")
        linear = start + (mn // 8) * sbo + (k // per_chunk) * lbo + (mn % 8) * 16
        return linear + (k % per_chunk) * esize
    if k_major:
        assert k * esize < swizzle_bytes, "one instruction's K stays inside one swizzle row"
        linear = start + (mn // 8) * sbo + (mn % 8) * swizzle_bytes + k * esize
    else:
        span = swizzle_bytes // esize
        linear = start + (mn // span) * lbo + (k // 8) * sbo + (k % 8) * swizzle_bytes
        linear += (mn % span) * esize
    return swizzle_address(linear, swizzle_bytes)


def tma_swizzled_box_address(
    base: int, row: int, col: int, inner_bytes: int, esize: int, swizzle_bytes: int
) -> int:
    """Where a TMA tile load puts element (row, col) of a box whose rows are `inner_bytes` long:
    row-major in shared memory from `base` (aligned to the swizzle's repeat), then the same
    address swizzle (CUDA driver API, CUtensorMapSwizzle)."""
    return swizzle_address(base + row * inner_bytes + col * esize, swizzle_bytes)
