"""Shadow state of shared memory: the race detector and the cp.async pending-byte detector.

Every byte of a block's shared memory remembers its last writer and its readers since then, each as
one int64: lane (bits 0-19), the block's barrier epoch (20-39) and the warp's epoch (40-59) at the
access, an atomic flag (60) and a "several lanes" flag (61); -1 means never accessed. Two accesses
of one byte are ordered when a `__syncthreads()` of the block came between them (the block epoch
differs), or when both lanes are in one warp and a `__syncwarp()` came between them. A race is two
unordered accesses by different lanes, at least one a write, not both atomic. Everything is
vectorised over the bytes a statement touches, in all lanes at once.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .context import RunContext
from .errors import AsyncCopyHazardError, DataRaceError

__all__ = ["SharedShadow"]

_M20 = (1 << 20) - 1
_ATOMIC = np.int64(1 << 60)
_MULTI = np.int64(1 << 61)


class SharedShadow:
    def __init__(self, groups: int, row_bytes: int, name: str):
        n = groups * row_bytes
        self.row = row_bytes
        self.name = name
        self.w = np.full(n, -1, dtype=np.int64)
        self.r = np.full(n, -1, dtype=np.int64)
        self.w_stmt = np.full(n, -1, dtype=np.int32)
        self.r_stmt = np.full(n, -1, dtype=np.int32)
        self.pend: np.ndarray | None = None
        self.pend_lane: np.ndarray | None = None
        self.pend_stmt: np.ndarray | None = None

    # -- helpers -----------------------------------------------------------------------------------
    def _now(self, ctx: RunContext, lanes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(packed record of an access by `lanes` now, block epoch, warp epoch)."""
        lm = ctx.lanes
        b = ctx.block_epoch[lm.block_of_lane[lanes]] & _M20
        w = ctx.warp_epoch[lm.warp_of_lane[lanes]] & _M20
        return lanes.astype(np.int64) | (b << 20) | (w << 40), b, w

    def _unordered(self, rec: np.ndarray, ctx: RunContext, lanes: np.ndarray, b: np.ndarray,
                   w: np.ndarray) -> np.ndarray:
        has = rec >= 0
        rl = np.where(has, rec & _M20, 0)
        same_block_epoch = ((rec >> 20) & _M20) == b
        wol = ctx.lanes.warp_of_lane
        same_warp = wol[rl] == wol[lanes]
        ordered = ~same_block_epoch | (same_warp & (((rec >> 40) & _M20) != w))
        return has & ~ordered

    def _race(self, ctx: RunContext, fi: np.ndarray, lanes: np.ndarray, bad: np.ndarray, rec: np.ndarray,
              stmts: np.ndarray, prev_what: str, cur_what: str, buffer: str, base: int) -> DataRaceError:
        k = int(np.flatnonzero(bad)[0])
        other = int(rec[fi[k]] & _M20) if rec[fi[k]] >= 0 else int(lanes[k])
        multi = bool(rec[fi[k]] >= 0 and (rec[fi[k]] & _MULTI))
        prev_stmt = ctx.stmt_of(int(stmts[fi[k]]))
        byte = int(fi[k] % self.row)
        block = ctx.lanes.blocks[int(ctx.lanes.block_of_lane[lanes[k]])]
        first = ctx.access(prev_what + (" (and other threads)" if multi else ""), [other], prev_stmt)
        second = ctx.access(cur_what, [int(lanes[k])])
        from .report import fmt_idx

        return DataRaceError(
            f"data race on shared memory `{buffer}` (byte {byte - base} of it, byte {byte} of "
            f"`{self.name}`) in block {fmt_idx(block)}{ctx.where()}: two threads access it with no "
            f"barrier between them",
            accesses=[first, second], buffer=buffer, address=byte - base,
        )

    # -- pending cp.async bytes --------------------------------------------------------------------
    def check_pending(self, ctx: RunContext, fi: np.ndarray, lanes: np.ndarray, what: str, buffer: str,
                      base: int) -> None:
        if self.pend is None:
            return
        bad = self.pend[fi] > 0
        if not bad.any():
            return
        k = int(np.flatnonzero(bad)[0])
        assert self.pend_lane is not None and self.pend_stmt is not None
        issuer = int(self.pend_lane[fi[k]])
        byte = int(fi[k] % self.row)
        issue = ctx.access("cp.async issued", [issuer], ctx.stmt_of(int(self.pend_stmt[fi[k]])))
        cur = ctx.access(what, [int(lanes[k])])
        raise AsyncCopyHazardError(
            f"`{buffer}` (byte {byte - base}) is the destination of a cp.async that no "
            f"cp_async_wait has retired yet{ctx.where()}: its data may not have landed",
            accesses=[issue, cur], buffer=buffer, address=byte - base,
        )

    def issue_async(self, ctx: RunContext, fi: np.ndarray, lanes: np.ndarray, buffer: str, base: int) -> None:
        if self.pend is None:
            n = self.w.shape[0]
            self.pend = np.zeros(n, dtype=np.int32)
            self.pend_lane = np.full(n, -1, dtype=np.int32)
            self.pend_stmt = np.full(n, -1, dtype=np.int32)
        self.check_pending(ctx, fi, lanes, "cp.async into it", buffer, base)
        assert self.pend_lane is not None and self.pend_stmt is not None
        self.pend_lane[fi] = lanes
        dup = self.pend_lane[fi] != lanes
        if dup.any():
            k = int(np.flatnonzero(dup)[0])
            a = ctx.access("cp.async", [int(lanes[k]), int(self.pend_lane[fi[k]])])
            raise DataRaceError(
                f"two threads issue cp.async into the same bytes of `{buffer}` (byte "
                f"{int(fi[k] % self.row) - base}){ctx.where()}", accesses=[a], buffer=buffer,
            )
        self.pend[fi] += 1
        self.pend_stmt[fi] = ctx.stmt_id()

    def land(self, fi: np.ndarray) -> None:
        assert self.pend is not None
        self.pend[fi] -= 1

    def pending_bytes(self) -> np.ndarray:
        return np.zeros(0, dtype=np.int64) if self.pend is None else np.flatnonzero(self.pend > 0)

    # -- accesses ----------------------------------------------------------------------------------
    def read(self, ctx: RunContext, fi: np.ndarray, lanes: np.ndarray, buffer: str, base: int,
             stmt_id: int | None = None) -> None:
        self.check_pending(ctx, fi, lanes, "read", buffer, base)
        if not ctx.races:
            return
        now, b, w = self._now(ctx, lanes)
        rec = self.w[fi]
        bad = self._unordered(rec, ctx, lanes, b, w) & (((rec & _M20) != lanes) | ((rec & _MULTI) != 0))
        if bad.any():
            raise self._race(ctx, fi, lanes, bad, self.w, self.w_stmt, _what(rec, bad), "read", buffer, base)
        r = self.r[fi]
        same = (r >= 0) & (((r >> 20) & _M20) == b)
        multi = same & (((r & _M20) != lanes) | ((r & _MULTI) != 0))
        self.r[fi] = now | np.where(multi, _MULTI, 0)
        dup = (self.r[fi] & _M20) != lanes
        if dup.any():
            self.r[fi[dup]] |= _MULTI
        self.r_stmt[fi] = ctx.stmt_id() if stmt_id is None else stmt_id

    def write(self, ctx: RunContext, fi: np.ndarray, lanes: np.ndarray, buffer: str, base: int,
              atomic: bool = False, stmt_id: int | None = None, check_pending: bool = True) -> None:
        if check_pending:
            self.check_pending(ctx, fi, lanes, "atomic write" if atomic else "write", buffer, base)
        if not ctx.races:
            return
        now, b, w = self._now(ctx, lanes)
        what = "atomic write" if atomic else "write"
        rec = self.w[fi]
        unord = self._unordered(rec, ctx, lanes, b, w)
        other = (rec & _M20) != lanes
        rec_atomic = (rec & _ATOMIC) != 0
        rec_multi = (rec & _MULTI) != 0
        if atomic:
            bad = unord & ~rec_atomic & other
        else:
            bad = unord & (other | rec_multi)
        if bad.any():
            raise self._race(ctx, fi, lanes, bad, self.w, self.w_stmt, _what(rec, bad), what, buffer, base)
        r = self.r[fi]
        bad = self._unordered(r, ctx, lanes, b, w) & (((r & _M20) != lanes) | ((r & _MULTI) != 0))
        if bad.any():
            raise self._race(ctx, fi, lanes, bad, self.r, self.r_stmt, "read", what, buffer, base)
        new = now
        if atomic:
            new = new | _ATOMIC | np.where(unord & rec_atomic & (other | rec_multi), _MULTI, 0)
        self.w[fi] = new
        dup = (self.w[fi] & _M20) != lanes
        if dup.any():
            if not atomic:
                k = int(np.flatnonzero(dup)[0])
                winner = int(self.w[fi[k]] & _M20)
                a = ctx.access("write", [int(lanes[k]), winner])
                raise DataRaceError(
                    f"data race on shared memory `{buffer}` (byte {int(fi[k] % self.row) - base}){ctx.where()}: "
                    f"several threads write it in one statement",
                    accesses=[a], buffer=buffer, address=int(fi[k] % self.row) - base,
                )
            self.w[fi[dup]] |= _MULTI
        self.w_stmt[fi] = ctx.stmt_id() if stmt_id is None else stmt_id


def _what(rec: np.ndarray, bad: np.ndarray) -> str:
    k = int(np.flatnonzero(bad)[0])
    return "atomic write" if rec[k] >= 0 and (rec[k] & _ATOMIC) else "write"


_ = Any
