"""Reference semantics of `tsir::gemm_ss` (gemm_sm80.h): ldmatrix from swizzled shared tiles and
mma.sync.m16n8k16 into each thread's accumulator registers.

Written from the header's comments and the PTX ISA, not from tsir's layout code: each lane's
ldmatrix row address is computed the way `tile_ptr` computes it, the 8x8 matrices are distributed
to the lanes as ldmatrix (and ldmatrix .trans) does, the A/B/C fragments of mma.m16n8k16 are
assembled from those registers by the PTX fragment tables, and the result goes back to each
thread's registers by the accumulator table. A wrong swizzle, leading dimension or register layout
in a pass therefore gives a wrong answer here, as on the GPU.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import InterpretUnsupportedError, OutOfBoundsError
from .lanes import Mask
from .memory import Pointer

if TYPE_CHECKING:
    from .thread import ThreadExecutor

__all__ = ["gemm_ss", "gemm_rs"]

_T = np.arange(32)
_G, _TIG = _T // 4, _T % 4  # PTX: groupID = laneid >> 2, threadID_in_group = laneid % 4

# ldmatrix .x4: lane 8j + r gives the address of row r of matrix j; thread t receives, in register
# j, elements (t / 4, 2 (t % 4) + h) of matrix j (h = 0, 1), or with .trans (2 (t % 4) + h, t / 4).
_J, _H = np.arange(4)[None, :, None], np.arange(2)[None, None, :]
_LD_ROW = 8 * _J + (_G[:, None, None] + 0 * _H)
_LD_COL = 2 * _TIG[:, None, None] + _H + 0 * _J
_LDT_ROW = 8 * _J + 2 * _TIG[:, None, None] + _H
_LDT_COL = _G[:, None, None] + 0 * _J + 0 * _H

# mma.m16n8k16 (.f16/.bf16) fragments, element i of a thread's operand in register i // 2,
# half i % 2:
#   A (16x16): row = groupID + 8 ((i / 2) % 2), col = 2 tig + i % 2 + 8 (i / 4)
#   B (16x8):  row (k) = 2 tig + i % 2 + 8 (i / 2), col (n) = groupID
#   C (16x8, f32, element i in register i): row = groupID + 8 (i / 2), col = 2 tig + i % 2
_I8 = np.arange(8)
_A_ROW = (_G[:, None] + 8 * ((_I8 // 2) % 2)[None, :]).reshape(32, 4, 2)
_A_COL = (2 * _TIG[:, None] + (_I8 % 2)[None, :] + 8 * (_I8 // 4)[None, :]).reshape(32, 4, 2)
_I4 = np.arange(4)
_B_ROW = (2 * _TIG[:, None] + (_I4 % 2)[None, :] + 8 * (_I4 // 2)[None, :]).reshape(32, 2, 2)
_B_COL = (_G[:, None] + 0 * _I4[None, :]).reshape(32, 2, 2)
_C_ROW = _G[:, None] + 8 * (_I4 // 2)[None, :]
_C_COL = 2 * _TIG[:, None] + (_I4 % 2)[None, :]


def _tile_byte(
    base: np.ndarray, row: np.ndarray, col: np.ndarray, swz: int, rows: int, ld: int, size: int
) -> np.ndarray:
    """`tile_ptr<SWZ, ROWS, LD>(base, row, col)` as a byte address (gemm_sm80.h)."""
    if swz == 0:
        return base + (row * ld + col) * size
    span = swz // size
    o = row * swz + (col % span) * size
    o = o ^ (((o >> 7) & (swz // 16 - 1)) << 4)
    return base + (col // span) * (rows * swz) + o


def _ldmatrix(
    ex: ThreadExecutor, ptr: Pointer, byte: np.ndarray, lanes: np.ndarray, trans: bool
) -> np.ndarray:
    """ldmatrix.x4[.trans] for lanes arranged (U, ..., 32): returns registers (U, ..., 32, 4, 2)."""
    view = ptr.view
    region = view.region
    size = view.itemsize
    lo, hi = view.byte_offset, view.byte_offset + view.span * size
    if ((byte < lo) | (byte + 16 > hi)).any():
        k = np.flatnonzero(((byte < lo) | (byte + 16 > hi)).reshape(-1))[0]
        raise OutOfBoundsError(
            f"gemm_ss: ldmatrix reads bytes [{int(byte.reshape(-1)[k])}, +16) outside "
            f"`{view.name}` "
            f"(bytes [{lo}, {hi}) of `{region.name}`){ex.ctx.where()}",
            accesses=[ex.ctx.access("ldmatrix read", [int(lanes.reshape(-1)[k])])],
            buffer=view.name,
        )
    g = region.groups_of(lanes.reshape(-1)).reshape(lanes.shape)
    if ex.ctx.check and region.shadow is not None:
        fi = ((g * region.row + byte)[..., None] + np.arange(16)).reshape(-1)
        region.shadow.read(
            ex.ctx, fi, np.repeat(lanes.reshape(-1), 16), view.name, view.byte_offset
        )
    raw = region.data[g[..., None], byte[..., None] + np.arange(16)]
    rows = np.ascontiguousarray(raw).view(
        view.npdt
    )  # (..., 32, 8): row r of matrix j from lane 8j+r
    if trans:
        return rows[..., _LDT_ROW, _LDT_COL]
    return rows[..., _LD_ROW, _LD_COL]


def gemm_ss(ex: ThreadExecutor, targs: tuple[str, ...], args: tuple[Any, ...], mask: Mask) -> None:
    m, n, k, wm, wn = (int(x) for x in targs[:5])
    trans_a, trans_b = targs[5] == "true", targs[6] == "true"
    swz_a, ld_a, swz_b, ld_b = (int(x) for x in targs[7:11])
    a_ptr, b_ptr, c_ptr = (ex.ev.eval(x, mask) for x in args)
    for p, role in ((a_ptr, "A"), (b_ptr, "B"), (c_ptr, "C")):
        if not isinstance(p, Pointer):
            raise InterpretUnsupportedError(f"gemm_ss: argument {role} is not an address")
    if a_ptr.view.region.kind != "shared" or b_ptr.view.region.kind != "shared":
        raise InterpretUnsupportedError("gemm_ss: A and B must point into shared memory")
    if a_ptr.view.npdt != b_ptr.view.npdt or a_ptr.view.npdt.itemsize != 2:
        raise InterpretUnsupportedError(
            "gemm_ss: A and B must be float16 or bfloat16 tiles of one type"
        )
    lm = ex.lanes
    if lm.per_block % 32:
        raise InterpretUnsupportedError(
            f"gemm_ss with {lm.per_block} threads per block (not whole warps)"
        )
    ex.full_warps(mask, "gemm_ss (ldmatrix / mma.sync)")
    tm, tn = m // wm, n // wn
    mi_n, ni_n = tm // 16, tn // 8
    if tm % 16 or tn % 16 or k % 16:
        raise InterpretUnsupportedError(
            f"gemm_ss<{', '.join(targs)}>: tile not a multiple of the mma"
        )
    # Lanes of the active warps, (U, 32) with U = warps.
    lanes = mask.idx.reshape(-1, 32)
    tid = ex.ev.env[ex.thread_vars[0]] if ex.thread_vars else None
    tx = np.broadcast_to(tid, (lm.n,))[lanes] if tid is not None else lm.thread_of_lane[lanes]
    lane, warp = tx % 32, tx // 32
    m0 = (warp // wn) * tm  # (U, 32)
    n0 = (warp % wn) * tn
    size = 2
    a_base = np.broadcast_to(a_ptr.byte_addr(), (lm.n,))[lanes]
    b_base = np.broadcast_to(b_ptr.byte_addr(), (lm.n,))[lanes]
    rows_a, rows_b = (k if trans_a else m), (n if trans_b else k)
    # Accumulators: c[(mi * NI + ni) * 4 + r] of every thread.
    cmask = Mask(mask.arr)
    cvals = ex.mem.read_elems(c_ptr, mi_n * ni_n * 4, cmask, "gemm_ss accumulator read")
    cvals = cvals.reshape(lanes.shape[0], 32, mi_n, ni_n, 4).astype(np.float64)
    u = lanes.shape[0]
    acc = np.zeros((u, mi_n, ni_n, 16, 8), dtype=np.float64)
    acc[:, :, :, _C_ROW, _C_COL] = cvals.transpose(0, 2, 3, 1, 4)
    mi = np.arange(mi_n)[None, :, None]
    for ks in range(k // 16):
        k0 = ks * 16
        mrow = m0[:, None, :] + mi * 16  # (U, MI, 32)
        ln = lane[:, None, :]
        if not trans_a:
            ab = _tile_byte(
                a_base[:, None, :],
                mrow + ln % 16,
                k0 + (ln // 16) * 8 + 0 * mrow,
                swz_a,
                rows_a,
                ld_a,
                size,
            )
        else:
            ab = _tile_byte(
                a_base[:, None, :],
                k0 + ln % 8 + (ln // 16) * 8 + 0 * mrow,
                mrow + ((ln // 8) % 2) * 8,
                swz_a,
                rows_a,
                ld_a,
                size,
            )
        a_regs = _ldmatrix(ex, a_ptr, ab, np.broadcast_to(lanes[:, None, :], ab.shape), trans_a)
        b_tile = _b_tiles(
            ex, b_ptr, b_base, lanes, lane, n0, k0, trans_b, swz_b, rows_b, ld_b, ni_n
        )
        a_tile = np.zeros((u, mi_n, 16, 16), dtype=np.float64)
        a_tile[:, :, _A_ROW, _A_COL] = a_regs.astype(np.float64)
        # fp16/bf16 products are exact in fp32; the sum of a k16 step is rounded to fp32 once.
        step = np.einsum("umrk,unkc->umnrc", a_tile, b_tile)
        acc = (acc + step).astype(np.float32).astype(np.float64)
    out = acc[:, :, :, _C_ROW, _C_COL].transpose(0, 3, 1, 2, 4).reshape(u * 32, mi_n * ni_n * 4)
    ex.mem.write_elems(c_ptr, out.astype(np.float32), cmask, "gemm_ss accumulator write")


def _b_tiles(
    ex: ThreadExecutor,
    b_ptr: Pointer,
    b_base: np.ndarray,
    lanes: np.ndarray,
    lane: np.ndarray,
    n0: np.ndarray,
    k0: int,
    trans_b: bool,
    swz_b: int,
    rows_b: int,
    ld_b: int,
    ni_n: int,
) -> np.ndarray:
    """Each warp's B operands of k-step k0 (U, NI, 16, 8), read by ldmatrix as the header does."""
    size = 2
    u = lanes.shape[0]
    ln = lane[:, None, :]
    nj = np.arange(0, ni_n, 2)[None, :, None]
    ncol = n0[:, None, :] + nj * 8  # (U, NI/2, 32)
    if not trans_b:
        bb = _tile_byte(
            b_base[:, None, :],
            k0 + ln % 8 + ((ln // 8) % 2) * 8 + 0 * ncol,
            ncol + (ln // 16) * 8,
            swz_b,
            rows_b,
            ld_b,
            size,
        )
        r = _ldmatrix(ex, b_ptr, bb, np.broadcast_to(lanes[:, None, :], bb.shape), True)
    else:
        bb = _tile_byte(
            b_base[:, None, :],
            ncol + ln % 8 + (ln // 16) * 8,
            k0 + ((ln // 8) % 2) * 8 + 0 * ncol,
            swz_b,
            rows_b,
            ld_b,
            size,
        )
        r = _ldmatrix(ex, b_ptr, bb, np.broadcast_to(lanes[:, None, :], bb.shape), False)
    # b[ni] = {r0, r1}, b[ni + 1] = {r2, r3}  (U, NI/2, 32, 4, 2) -> (U, NI, 32, 2, 2)
    b_regs = (
        r.reshape(u, ni_n // 2, 32, 2, 2, 2).transpose(0, 1, 3, 2, 4, 5).reshape(u, ni_n, 32, 2, 2)
    )
    b_tile = np.zeros((u, ni_n, 16, 8), dtype=np.float64)
    b_tile[:, :, _B_ROW, _B_COL] = b_regs.astype(np.float64)
    return b_tile


def gemm_rs(ex: ThreadExecutor, targs: tuple[str, ...], args: tuple[Any, ...], mask: Mask) -> None:
    """`gemm_rs<M, N, K, WARPS_M, WARPS_N, TRANS_B, SWZ_B, LD_B>(a, B, c)`: A from each thread's
    registers, halves a[(mi * K/16 + ki) * 8 + i] placed by the PTX A table (element i of the
    m16 tile mi's k-step ki); B by ldmatrix as in gemm_ss; C likewise."""
    m, n, k, wm, wn = (int(x) for x in targs[:5])
    trans_b = targs[5] == "true"
    swz_b, ld_b = int(targs[6]), int(targs[7])
    a_ptr, b_ptr, c_ptr = (ex.ev.eval(x, mask) for x in args)
    for p, role in ((a_ptr, "A"), (b_ptr, "B"), (c_ptr, "C")):
        if not isinstance(p, Pointer):
            raise InterpretUnsupportedError(f"gemm_rs: argument {role} is not an address")
    if b_ptr.view.region.kind != "shared" or a_ptr.view.region.kind == "shared":
        raise InterpretUnsupportedError("gemm_rs: A must be registers and B shared memory")
    if a_ptr.view.npdt != b_ptr.view.npdt or b_ptr.view.npdt.itemsize != 2:
        raise InterpretUnsupportedError("gemm_rs: A and B must be float16 or bfloat16 of one type")
    lm = ex.lanes
    if lm.per_block % 32:
        raise InterpretUnsupportedError(
            f"gemm_rs with {lm.per_block} threads per block (not whole warps)"
        )
    ex.full_warps(mask, "gemm_rs (ldmatrix / mma.sync)")
    tm, tn = m // wm, n // wn
    mi_n, ni_n, ki_n = tm // 16, tn // 8, k // 16
    if tm % 16 or tn % 16 or k % 16:
        raise InterpretUnsupportedError(
            f"gemm_rs<{', '.join(targs)}>: tile not a multiple of the mma"
        )
    lanes = mask.idx.reshape(-1, 32)
    tid = ex.ev.env[ex.thread_vars[0]] if ex.thread_vars else None
    tx = np.broadcast_to(tid, (lm.n,))[lanes] if tid is not None else lm.thread_of_lane[lanes]
    lane, warp = tx % 32, tx // 32
    n0 = (warp % wn) * tn
    b_base = np.broadcast_to(b_ptr.byte_addr(), (lm.n,))[lanes]
    rows_b = n if trans_b else k
    u = lanes.shape[0]
    regs = Mask(mask.arr)
    avals = ex.mem.read_elems(a_ptr, mi_n * ki_n * 8, regs, "gemm_rs A register read")
    avals = avals.reshape(u, 32, mi_n, ki_n, 4, 2).astype(np.float64)
    cvals = ex.mem.read_elems(c_ptr, mi_n * ni_n * 4, regs, "gemm_rs accumulator read")
    cvals = cvals.reshape(u, 32, mi_n, ni_n, 4).astype(np.float64)
    acc = np.zeros((u, mi_n, ni_n, 16, 8), dtype=np.float64)
    acc[:, :, :, _C_ROW, _C_COL] = cvals.transpose(0, 2, 3, 1, 4)
    for ks in range(ki_n):
        b_tile = _b_tiles(
            ex, b_ptr, b_base, lanes, lane, n0, ks * 16, trans_b, swz_b, rows_b, ld_b, ni_n
        )
        a_tile = np.zeros((u, mi_n, 16, 16), dtype=np.float64)
        a_tile[:, :, _A_ROW, _A_COL] = avals[:, :, :, ks].transpose(0, 2, 1, 3, 4)
        step = np.einsum("umrk,unkc->umnrc", a_tile, b_tile)
        acc = (acc + step).astype(np.float32).astype(np.float64)
    out = acc[:, :, :, _C_ROW, _C_COL].transpose(0, 3, 1, 2, 4).reshape(u * 32, mi_n * ni_n * 4)
    ex.mem.write_elems(c_ptr, out.astype(np.float32), regs, "gemm_rs accumulator write")
