"""The PTX ISA's fragment tables, transcribed as plainly as the ISA states them.

Independent of `tsir.layout.gemm_layouts` on purpose: the tests check the library's fragments and
ldmatrix address patterns against these (ISA 9.7.14.5.8 "Matrix Fragments for mma.m16n8k16 with
floating point type", 9.7.14.5.1 m8n8k4 .f64 accumulators, 9.7.14.5.15 ldmatrix).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable


def group_id(lane: int) -> int:
    return lane >> 2


def thread_in_group(lane: int) -> int:
    return lane % 4


def mma_m16n8k16_a(lane: int) -> list[tuple[int, int]]:
    """(row, col) of a0..a7 (f16/bf16)."""
    out = []
    for i in range(8):
        row = group_id(lane) if (0 <= i < 2 or 4 <= i < 6) else group_id(lane) + 8
        col = thread_in_group(lane) * 2 + (i & 1) + (8 if i >= 4 else 0)
        out.append((row, col))
    return out


def mma_m16n8k16_b(lane: int) -> list[tuple[int, int]]:
    """(row = k, col = n) of b0..b3 (f16/bf16)."""
    out = []
    for i in range(4):
        row = thread_in_group(lane) * 2 + (i & 1) + (8 if i >= 2 else 0)
        out.append((row, group_id(lane)))
    return out


def mma_m16n8_c(lane: int) -> list[tuple[int, int]]:
    """(row, col) of c0..c3 (f32 or f16 accumulators of m16n8k16)."""
    out = []
    for i in range(4):
        row = group_id(lane) if i < 2 else group_id(lane) + 8
        col = thread_in_group(lane) * 2 + (i & 1)
        out.append((row, col))
    return out


def mma_m8n8k4_f64_c(lane: int) -> list[tuple[int, int]]:
    """(row, col) of c0, c1 for mma.m8n8k4 .f64."""
    return [(group_id(lane), thread_in_group(lane) * 2 + i) for i in range(2)]


def ldmatrix(
    num: int,
    trans: bool,
    address: Callable[[int], tuple[int, int]],
    read: Callable[[int, int], Hashable],
) -> list[list[tuple[Hashable, Hashable]]]:
    """Simulate `ldmatrix.sync.aligned.m8n8.x{num}{.trans}.b16`.

    Lane `8q + r` (for q < num) supplies the address of row r of matrix q: `address(lane)` is the
    (row, col) of its first element, and the row is the 8 elements (row, col..col+7). Without .trans
    lane l receives, in register q, elements (l // 4, 2 * (l % 4) + h) (h = 0, 1) of matrix q; with
    .trans the matrix is delivered transposed: elements (2 * (l % 4) + h, l // 4).
    Returns regs[lane][q] = (low half, high half).
    """
    rows = {}
    for q in range(num):
        for r in range(8):
            base_row, base_col = address(8 * q + r)
            rows[q, r] = [read(base_row, base_col + e) for e in range(8)]
    out = []
    for lane in range(32):
        regs = []
        for q in range(num):
            if trans:
                pair = tuple(rows[q, 2 * (lane % 4) + h][lane // 4] for h in range(2))
            else:
                pair = tuple(rows[q, lane // 4][2 * (lane % 4) + h] for h in range(2))
            regs.append(pair)
        out.append(regs)
    return out
