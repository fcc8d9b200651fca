"""Shadow state of shared memory: the race detector, the pending-byte detectors of cp.async and
TMA, and the async-proxy checks of the Hopper path.

Every byte of a block's shared memory remembers its last writer and its readers since then, each as
one int64: lane (bits 0-19), the accessing warp's own epoch (20-39) and the warp's `__syncwarp`
epoch (40-59) at the access, an atomic flag (60) and a "several lanes" flag (61); -1 means never
accessed. Accesses by two warps are ordered when the later warp's vector clock covers the earlier
one's epoch (`RunContext.vc`: a `__syncthreads()` joins every warp of the block; an mbarrier
arrive -> wait, a named barrier or a TMA completion joins some); two lanes of one warp are ordered
when a `__syncwarp()` or a barrier came between them. A race is two unordered accesses by
different lanes, at least one a write, not both atomic. Everything is vectorised over the bytes a
statement touches, in all lanes at once.

Beside that: bytes an async copy will write (cp.async until its wait, a TMA load until it lands)
must not be touched; bytes the async proxy reads (a wgmma operand until retired, a TMA store
source until its read-wait) must not be written; a generic write the async proxy reads needs a
`fence.proxy.async` by the writer in between; the 8 bytes of a live mbarrier are not data.
"""

from __future__ import annotations

import numpy as np

from .context import RunContext
from .errors import (
    AsyncCopyHazardError,
    DataRaceError,
    MbarrierError,
    ProxyFenceError,
    WgmmaHazardError,
)
from .report import fmt_idx

__all__ = ["SharedShadow"]

_M20 = (1 << 20) - 1
# Kinds of pending writes and of async-proxy reads (for the messages).
PEND_CP_ASYNC, PEND_TMA = 1, 2
ASYNC_WGMMA, ASYNC_TMA_STORE = 1, 2
_ATOMIC = np.int64(1 << 60)
_MULTI = np.int64(1 << 61)


class SharedShadow:
    def __init__(self, groups: int, row_bytes: int, name: str, async_proxy: bool = False):
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
        self.pend_kind: np.ndarray | None = None
        # Hopper kernels: the last generic writer of each byte (-1: none, or the last write came
        # from the async proxy) and its fence.proxy.async count at the write.
        self.gen_lane: np.ndarray | None = None
        self.gen_fence: np.ndarray | None = None
        if async_proxy:
            self.gen_lane = np.full(n, -1, dtype=np.int32)
            self.gen_fence = np.zeros(n, dtype=np.int64)
        # Async-proxy reads in flight per byte (wgmma operands, TMA store sources).
        self.async_reads: np.ndarray | None = None
        self.async_kind: np.ndarray | None = None
        self.async_stmt: np.ndarray | None = None
        self.async_lane: np.ndarray | None = None
        # Bytes of live mbarrier objects.
        self.obj: np.ndarray | None = None

    # -- helpers -----------------------------------------------------------------------------------
    def _now(self, ctx: RunContext, lanes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(packed record of an access by `lanes` now, own warp epoch, syncwarp epoch)."""
        wl = ctx.lanes.warp_of_lane[lanes]
        b = ctx.vc[wl, ctx.local_warp(wl)] & _M20
        w = ctx.warp_epoch[wl] & _M20
        return lanes.astype(np.int64) | (b << 20) | (w << 40), b, w

    def _unordered(
        self, rec: np.ndarray, ctx: RunContext, lanes: np.ndarray, b: np.ndarray, w: np.ndarray
    ) -> np.ndarray:
        has = rec >= 0
        rl = np.where(has, rec & _M20, 0)
        wol = ctx.lanes.warp_of_lane
        rw, cw = wol[rl], wol[lanes]
        known = ctx.vc[cw, ctx.local_warp(rw)] & _M20
        other_ordered = ((rec >> 20) & _M20) <= known
        same_ordered = ((rec >> 40) & _M20) != w
        ordered = np.where(rw == cw, same_ordered, other_ordered)
        return has & ~ordered

    def _race(
        self,
        ctx: RunContext,
        fi: np.ndarray,
        lanes: np.ndarray,
        bad: np.ndarray,
        rec: np.ndarray,
        stmts: np.ndarray,
        prev_what: str,
        cur_what: str,
        buffer: str,
        base: int,
    ) -> DataRaceError:
        k = int(np.flatnonzero(bad)[0])
        other = int(rec[fi[k]] & _M20) if rec[fi[k]] >= 0 else int(lanes[k])
        multi = bool(rec[fi[k]] >= 0 and (rec[fi[k]] & _MULTI))
        prev_stmt = ctx.stmt_of(int(stmts[fi[k]]))
        byte = int(fi[k] % self.row)
        block = ctx.lanes.blocks[int(ctx.lanes.block_of_lane[lanes[k]])]
        first = ctx.access(
            prev_what + (" (and other threads)" if multi else ""), [other], prev_stmt
        )
        second = ctx.access(cur_what, [int(lanes[k])])

        return DataRaceError(
            f"data race on shared memory `{buffer}` ({_where(byte, base, buffer, self.name)}) in "
            f"block {fmt_idx(block)}{ctx.where()}: two threads access it with no barrier between "
            f"them",
            accesses=[first, second],
            buffer=buffer,
            address=byte - base,
        )

    # -- pending cp.async bytes --------------------------------------------------------------------
    def check_pending(
        self, ctx: RunContext, fi: np.ndarray, lanes: np.ndarray, what: str, buffer: str, base: int
    ) -> None:
        if self.pend is None:
            return
        bad = self.pend[fi] > 0
        if not bad.any():
            return
        k = int(np.flatnonzero(bad)[0])
        assert self.pend_lane is not None and self.pend_stmt is not None
        assert self.pend_kind is not None
        issuer = int(self.pend_lane[fi[k]])
        byte = int(fi[k] % self.row)
        tma = int(self.pend_kind[fi[k]]) == PEND_TMA
        issued = "TMA load issued" if tma else "cp.async issued"
        issue = ctx.access(issued, [issuer], ctx.stmt_of(int(self.pend_stmt[fi[k]])))
        cur = ctx.access(what, [int(lanes[k])])
        if tma:
            text = (
                f"`{buffer}` (byte {byte - base}) is the destination of a TMA load that has not "
                f"landed{ctx.where()}: wait on its mbarrier first (the phase completes only when "
                "the load's bytes arrive; a phase that completed anyway had no, or a too small, "
                "expect_tx)"
            )
        else:
            text = (
                f"`{buffer}` (byte {byte - base}) is the destination of a cp.async that no "
                f"cp_async_wait has retired yet{ctx.where()}: its data may not have landed"
            )
        raise AsyncCopyHazardError(text, accesses=[issue, cur], buffer=buffer, address=byte - base)

    def issue_async(
        self,
        ctx: RunContext,
        fi: np.ndarray,
        lanes: np.ndarray,
        buffer: str,
        base: int,
        kind: int = PEND_CP_ASYNC,
    ) -> None:
        if self.pend is None:
            n = self.w.shape[0]
            self.pend = np.zeros(n, dtype=np.int32)
            self.pend_lane = np.full(n, -1, dtype=np.int32)
            self.pend_stmt = np.full(n, -1, dtype=np.int32)
            self.pend_kind = np.zeros(n, dtype=np.int8)
        what = "TMA load into it" if kind == PEND_TMA else "cp.async into it"
        self.check_pending(ctx, fi, lanes, what, buffer, base)
        if ctx.races and kind != PEND_TMA:
            # The copy may land any time from its issue on: it must already be ordered after
            # every earlier access of other threads (the landing is checked again at the wait).
            # TMA loads are ordered by their mbarrier protocol instead.
            self._check_write_order(ctx, fi, lanes, "cp.async into it (issued)", buffer, base)
        if self.async_reads is not None:
            self.check_async_reads(ctx, fi, lanes, what, buffer, base)
        assert self.pend_lane is not None and self.pend_stmt is not None
        assert self.pend_kind is not None
        self.pend_kind[fi] = kind
        self.pend_lane[fi] = lanes
        dup = self.pend_lane[fi] != lanes
        if dup.any():
            k = int(np.flatnonzero(dup)[0])
            a = ctx.access("cp.async", [int(lanes[k]), int(self.pend_lane[fi[k]])])
            raise DataRaceError(
                f"two threads issue cp.async into the same bytes of `{buffer}` (byte "
                f"{int(fi[k] % self.row) - base}){ctx.where()}",
                accesses=[a],
                buffer=buffer,
            )
        self.pend[fi] += 1
        self.pend_stmt[fi] = ctx.stmt_id()

    def _check_write_order(
        self, ctx: RunContext, fi: np.ndarray, lanes: np.ndarray, what: str, buffer: str, base: int
    ) -> None:
        """A write by `lanes` now would race with an earlier unordered access of another thread:
        raise, recording nothing."""
        _, b, w = self._now(ctx, lanes)
        for table, stmts, kind in ((self.w, self.w_stmt, None), (self.r, self.r_stmt, "read")):
            rec = table[fi]
            bad = self._unordered(rec, ctx, lanes, b, w) & (
                ((rec & _M20) != lanes) | ((rec & _MULTI) != 0)
            )
            if bad.any():
                raise self._race(
                    ctx, fi, lanes, bad, table, stmts, kind or _what(rec, bad), what, buffer, base
                )

    def land(self, fi: np.ndarray) -> None:
        assert self.pend is not None
        self.pend[fi] -= 1

    def pending_bytes(self) -> np.ndarray:
        return np.zeros(0, dtype=np.int64) if self.pend is None else np.flatnonzero(self.pend > 0)

    # -- accesses ----------------------------------------------------------------------------------
    def read(
        self,
        ctx: RunContext,
        fi: np.ndarray,
        lanes: np.ndarray,
        buffer: str,
        base: int,
        stmt_id: int | None = None,
    ) -> None:
        self.check_pending(ctx, fi, lanes, "read", buffer, base)
        if self.obj is not None:
            self.check_object(ctx, fi, lanes, "read", buffer, base)
        if not ctx.races:
            return
        now, b, w = self._now(ctx, lanes)
        rec = self.w[fi]
        bad = self._unordered(rec, ctx, lanes, b, w) & (
            ((rec & _M20) != lanes) | ((rec & _MULTI) != 0)
        )
        if bad.any():
            raise self._race(
                ctx, fi, lanes, bad, self.w, self.w_stmt, _what(rec, bad), "read", buffer, base
            )
        r = self.r[fi]
        same = self._unordered(r, ctx, lanes, b, w)
        multi = same & (((r & _M20) != lanes) | ((r & _MULTI) != 0))
        self.r[fi] = now | np.where(multi, _MULTI, 0)
        dup = (self.r[fi] & _M20) != lanes
        if dup.any():
            self.r[fi[dup]] |= _MULTI
        self.r_stmt[fi] = ctx.stmt_id() if stmt_id is None else stmt_id

    def write(
        self,
        ctx: RunContext,
        fi: np.ndarray,
        lanes: np.ndarray,
        buffer: str,
        base: int,
        atomic: bool = False,
        stmt_id: int | None = None,
        check_pending: bool = True,
        generic: bool = True,
    ) -> None:
        what = "atomic write" if atomic else "write"
        if check_pending:
            self.check_pending(ctx, fi, lanes, what, buffer, base)
        if self.obj is not None:
            self.check_object(ctx, fi, lanes, what, buffer, base)
        if self.async_reads is not None:
            self.check_async_reads(ctx, fi, lanes, what, buffer, base)
        if self.gen_lane is not None:
            assert self.gen_fence is not None
            if generic:
                self.gen_lane[fi] = lanes
                self.gen_fence[fi] = ctx.proxy_fences[lanes]
            else:
                self.gen_lane[fi] = -1
        if not ctx.races:
            return
        now, b, w = self._now(ctx, lanes)
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
            raise self._race(
                ctx, fi, lanes, bad, self.w, self.w_stmt, _what(rec, bad), what, buffer, base
            )
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
                    f"data race on shared memory `{buffer}` (byte "
                    f"{int(fi[k] % self.row) - base}){ctx.where()}: "
                    f"several threads write it in one statement",
                    accesses=[a],
                    buffer=buffer,
                    address=int(fi[k] % self.row) - base,
                )
            self.w[fi[dup]] |= _MULTI
        self.w_stmt[fi] = ctx.stmt_id() if stmt_id is None else stmt_id

    # -- the async proxy (Hopper) --------------------------------------------------------------------
    def check_fenced(
        self, ctx: RunContext, fi: np.ndarray, reader: int, what: str, buffer: str, base: int
    ) -> None:
        """The async proxy reads `fi` (for `reader`'s statement): every generic write of those
        bytes must have been followed by a fence.proxy.async of its writer. Off where barriers
        are implicit (before ThreadSync, which places the proxy fences with the barriers)."""
        if self.gen_lane is None or not ctx.check or not ctx.races:
            return
        assert self.gen_fence is not None
        gl = self.gen_lane[fi]
        has = gl >= 0
        if not has.any():
            return
        bad = has & (self.gen_fence[fi] == ctx.proxy_fences[np.where(has, gl, 0)])
        if not bad.any():
            return
        k = int(np.flatnonzero(bad)[0])
        byte = int(fi[k] % self.row)
        writer = ctx.access(
            "generic write (no fence.proxy.async after it)",
            [int(gl[k])],
            ctx.stmt_of(int(self.w_stmt[fi[k]])),
        )
        raise ProxyFenceError(
            f"`{buffer}` (byte {byte - base}) is read by the async proxy ({what}) after a generic "
            f"write that no fence.proxy.async of its writing thread made visible to it"
            f"{ctx.where()}: call tsir::fence_proxy_async_shared() in every writing thread before "
            "the barrier that orders the write before this read",
            accesses=[writer, ctx.access(what, [reader])],
            buffer=buffer,
            address=byte - base,
        )

    def begin_async_read(self, fi: np.ndarray, kind: int, stmt_id: int, lane: int) -> None:
        if self.async_reads is None:
            n = self.w.shape[0]
            self.async_reads = np.zeros(n, dtype=np.int32)
            self.async_kind = np.zeros(n, dtype=np.int8)
            self.async_stmt = np.full(n, -1, dtype=np.int32)
            self.async_lane = np.full(n, -1, dtype=np.int32)
        assert self.async_kind is not None and self.async_stmt is not None
        assert self.async_lane is not None
        np.add.at(self.async_reads, fi, 1)
        self.async_kind[fi] = kind
        self.async_stmt[fi] = stmt_id
        self.async_lane[fi] = lane

    def end_async_read(self, fi: np.ndarray) -> None:
        assert self.async_reads is not None
        np.add.at(self.async_reads, fi, -1)

    def check_async_reads(
        self, ctx: RunContext, fi: np.ndarray, lanes: np.ndarray, what: str, buffer: str, base: int
    ) -> None:
        """A write of bytes the async proxy still reads (a pending wgmma operand, the source of a
        TMA store before its read-wait)."""
        assert self.async_reads is not None
        assert self.async_kind is not None and self.async_stmt is not None
        bad = self.async_reads[fi] > 0
        if not bad.any() or not ctx.check:
            return
        k = int(np.flatnonzero(bad)[0])
        byte = int(fi[k] % self.row)
        stmt = ctx.stmt_of(int(self.async_stmt[fi[k]]))
        assert self.async_lane is not None
        issuer = [int(self.async_lane[fi[k]])]
        cur = ctx.access(what, [int(lanes[min(k, lanes.shape[0] - 1)])])
        if int(self.async_kind[fi[k]]) == ASYNC_WGMMA:
            raise WgmmaHazardError(
                f"`{buffer}` (byte {byte - base}) is an operand of a wgmma that no wgmma_wait has "
                f"retired yet{ctx.where()}: the wgmma may still read it (wait for its group, and "
                "release the stage only after that wait)",
                accesses=[ctx.access("wgmma issued (reads it)", issuer, stmt), cur],
                buffer=buffer,
                address=byte - base,
            )
        raise AsyncCopyHazardError(
            f"`{buffer}` (byte {byte - base}) is the source of a TMA store that no "
            f"tma_store_wait_read has retired yet{ctx.where()}: the store may still read it",
            accesses=[ctx.access("TMA store issued (reads it)", issuer, stmt), cur],
            buffer=buffer,
            address=byte - base,
        )

    def mark_object(self, fi: np.ndarray, live: bool) -> None:
        if self.obj is None:
            self.obj = np.zeros(self.w.shape[0], dtype=bool)
        self.obj[fi] = live

    def check_object(
        self, ctx: RunContext, fi: np.ndarray, lanes: np.ndarray, what: str, buffer: str, base: int
    ) -> None:
        assert self.obj is not None
        bad = self.obj[fi]
        if not bad.any() or not ctx.check:
            return
        k = int(np.flatnonzero(bad)[0])
        byte = int(fi[k] % self.row)
        raise MbarrierError(
            f"`{buffer}` (byte {byte - base}) belongs to a live mbarrier object{ctx.where()}: its "
            "8 bytes are not data until tsir::mbarrier_inval",
            accesses=[ctx.access(what, [int(lanes[min(k, lanes.shape[0] - 1)])])],
            buffer=buffer,
            address=byte - base,
        )


def _where(byte: int, base: int, buffer: str, pool: str) -> str:
    if buffer == pool:
        return f"byte {byte - base}"
    return f"byte {byte - base} of it, byte {byte} of `{pool}`"


def _what(rec: np.ndarray, bad: np.ndarray) -> str:
    k = int(np.flatnonzero(bad)[0])
    return "atomic write" if rec[k] >= 0 and (rec[k] & _ATOMIC) else "write"
