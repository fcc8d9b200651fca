"""Reference semantics of mbarrier.h's barrier objects (PTX ISA, "mbarrier"): entries of the one
device-call table (device_calls.py).

An mbarrier is an object in 8 bytes of shared memory (8-byte aligned; while it is live those bytes
are not data). It counts, for its current phase, the arrivals still expected (re-armed from the
init count) and the transaction bytes still expected (raised by expect_tx, lowered by the
complete_tx of TMA loads, and allowed to go negative in between). The phase completes when both
reach zero: its parity flips and waiters of that parity go on. `wait(bar, p)` returns once the
phase with parity p is over, i.e. while the current phase's parity differs from p (so a fresh
barrier, in phase 0, lets `wait(bar, 1)` through at once).

Ordering: an arrival releases (the arriving warp's earlier accesses happen before the phase
completes); a wait that returns acquires; a TMA load's complete_tx releases the load's writes.
The vector clocks of context.py carry this to the race detector.

TMA loads land lazily: only when a thread polls a barrier whose phase cannot complete without
them, one at a time in issue order (tma.py). So a phase that completes without its loads (a
missing or too small expect_tx) lets waiters read bytes still in flight, which is reported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..dtype import DataType
from ..expr import Call
from .device_calls import device_call
from .errors import MbarrierError, MisalignedAccessError
from .hopper import hopper, lane_values, threads_text
from .lanes import Mask
from .memory import Region
from .report import describe_stmt
from .values import cast_array

if TYPE_CHECKING:
    from .thread import ThreadExecutor

__all__ = ["Barrier", "Mbarriers"]

_ZERO = np.zeros(1, dtype=np.int32)
_BOOL = DataType("bool")
TX_LIMIT = (1 << 20) - 1  # |tx-count| and the arrival count stay below 2**20


class Barrier:
    """One live mbarrier object."""

    def __init__(self, region: Region, offset: int, address: int, label: str, count: int):
        self.region = region
        self.offset = offset
        self.address = address
        self.label = label
        self.count = count
        self.pending = count
        self.tx = 0
        self.phase = 0
        self.cur_vc: np.ndarray | None = None  # joined clock of the releases so far
        self.done_vc: np.ndarray | None = None  # ... as of the last completed phase
        self.init_lane = -1
        self.init_stmt = -1
        self.init_record: tuple[int, int, int] = (0, 0, 0)  # (warp, own epoch, warp epoch)
        self.init_fences: tuple[int, int] = (0, 0)  # (proxy fences, init fences) of the initializer
        # Did the current phase announce transaction bytes; who completed the last phase by an
        # arrival, and had that phase announced any (mbarrier.py's missing-expect_tx check).
        self.had_tx = False
        self.last_completer = -1
        self.last_had_tx = True

    def state(self) -> str:
        return (
            f"in phase {self.phase} (parity {self.phase & 1}), {self.pending} of {self.count} "
            f"arrivals and {self.tx} transaction bytes pending"
        )


class Mbarriers:
    def __init__(self, ex: ThreadExecutor):
        self.ex = ex
        self.live: dict[tuple[Region, int], Barrier] = {}
        self.init_fences = np.zeros(max(1, ex.lanes.n), dtype=np.int64)

    # -- lookup ------------------------------------------------------------------------------------
    def locate(self, addr: int, what: str) -> tuple[Region, int]:
        ex = self.ex
        if addr % 8:
            raise MisalignedAccessError(
                f"{what}: the mbarrier address {addr:#x} is not 8-byte aligned{ex.ctx.where()}",
                accesses=[ex.ctx.access(what, None)],
            )
        return hopper(ex, what).space.locate(ex, addr, 8, what)

    def at(self, addr: int, lanes: np.ndarray, what: str) -> Barrier:
        """The live barrier at `addr`, checked to be initialised and its initialisation ordered
        before this use by `lanes`."""
        region, off = self.locate(addr, what)
        bar = self.live.get((region, off))
        ex = self.ex
        if bar is None:
            raise MbarrierError(
                f"{what}: no initialised mbarrier at shared address {addr:#x} (byte {off} of "
                f"`{region.name}`){ex.ctx.where()}: call tsir::mbarrier_init first",
                accesses=[ex.ctx.access(what, lanes[:1])],
                buffer=region.name,
                address=off,
            )
        self._visible(bar, lanes, what)
        return bar

    def _visible(self, bar: Barrier, lanes: np.ndarray, what: str) -> None:
        ctx = self.ex.ctx
        if not ctx.check:
            return
        warp, epoch, wepoch = bar.init_record
        wl = ctx.lanes.warp_of_lane[lanes]
        other = lanes != bar.init_lane
        known = ctx.vc[wl, ctx.local_warp(np.full_like(wl, warp))]
        ordered = np.where(wl == warp, ctx.warp_epoch[wl] != wepoch, epoch <= known)
        bad = other & ~ordered
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise MbarrierError(
                f"{what}: mbarrier {bar.label} is used by a thread that its initialisation is not "
                f"yet ordered before{ctx.where()}: put mbarrier_init_fence() and __syncthreads() "
                "between the init and the first use by other threads",
                accesses=[
                    ctx.access("mbarrier_init", [bar.init_lane], ctx.stmt_of(bar.init_stmt)),
                    ctx.access(what, [int(lanes[k])]),
                ],
            )

    def async_visible(self, bar: Barrier, lane: int, what: str) -> None:
        """The TMA unit completes transactions on `bar`: its init must have been fenced."""
        ex = self.ex
        proxy, init = bar.init_fences
        first = bar.init_lane
        if ex.ctx.check and (
            ex.ctx.proxy_fences[first] <= proxy and self.init_fences[first] <= init
        ):
            raise MbarrierError(
                f"{what} completes on mbarrier {bar.label}, whose initialisation its thread never "
                f"fenced for the async proxy{ex.ctx.where()}: call tsir::mbarrier_init_fence() "
                "(or fence_proxy_async_shared()) after mbarrier_init",
                accesses=[
                    ex.ctx.access("mbarrier_init", [bar.init_lane], ex.ctx.stmt_of(bar.init_stmt)),
                    ex.ctx.access(what, [lane]),
                ],
            )

    def label(self, region: Region, off: int) -> str:
        h = hopper(self.ex, "mbarrier")
        return h.labels.get((region, off), f"at byte {off} of `{region.name}`")

    # -- phase arithmetic --------------------------------------------------------------------------
    def _complete_if_done(self, bar: Barrier, by: int = -1) -> bool:
        if bar.pending == 0 and bar.tx == 0:
            bar.phase += 1
            bar.pending = bar.count
            bar.done_vc = None if bar.cur_vc is None else bar.cur_vc.copy()
            bar.last_completer, bar.last_had_tx = by, bar.had_tx
            bar.had_tx = False
            return True
        return False

    def expect(self, bar: Barrier, nbytes: int, lanes: np.ndarray, what: str) -> bool:
        bar.tx += nbytes
        bar.had_tx = True
        self._tx_range(bar, lanes, what)
        return self._complete_if_done(bar)

    def complete_tx(self, bar: Barrier, nbytes: int, clock: np.ndarray) -> bool:
        bar.tx -= nbytes
        bar.cur_vc = clock.copy() if bar.cur_vc is None else np.maximum(bar.cur_vc, clock)
        self._tx_range(bar, np.zeros(0, dtype=np.int64), "a TMA load's complete_tx")
        return self._complete_if_done(bar)

    def _tx_range(self, bar: Barrier, lanes: np.ndarray, what: str) -> None:
        if abs(bar.tx) > TX_LIMIT:
            raise MbarrierError(
                f"{what}: the transaction count of mbarrier {bar.label} reaches {bar.tx}, outside "
                f"+-{TX_LIMIT}{self.ex.ctx.where()}",
                accesses=[self.ex.ctx.access(what, lanes[:1])],
            )

    def arrive(self, bar: Barrier, lanes: np.ndarray, what: str) -> bool:
        """One arrival per lane (releasing the lanes' warps); True when a phase completed."""
        ctx = self.ex.ctx
        clock = ctx.release(ctx.lanes.warp_of_lane[lanes])
        bar.cur_vc = clock if bar.cur_vc is None else np.maximum(bar.cur_vc, clock)
        completed = False
        k = lanes.size
        while k > 0:
            if bar.pending == 0:
                raise MbarrierError(
                    f"{what}: more arrivals on mbarrier {bar.label} than its count of {bar.count} "
                    f"in one phase (it still waits for {bar.tx} transaction bytes){ctx.where()}",
                    accesses=[ctx.access(what, lanes[:1])],
                )
            take = min(k, bar.pending)
            bar.pending -= take
            k -= take
            completed = self._complete_if_done(bar, int(lanes[-1])) or completed
        return completed

    def check_expected(self, bar: Barrier, lane: int, what: str) -> None:
        """A TMA load right after its issuing thread completed the barrier's phase with an
        arrival, in a phase that announced no transaction bytes: the load was meant for that
        phase, whose waiters may already read its box (the expect_tx is missing)."""
        ctx = self.ex.ctx
        if (
            ctx.check
            and bar.last_completer == lane
            and not bar.last_had_tx
            and not bar.had_tx
            and bar.pending == bar.count
        ):
            raise MbarrierError(
                f"{what} completes on mbarrier {bar.label}, whose phase {bar.phase - 1} this "
                f"thread has just completed by an arrival that announced no transaction bytes"
                f"{ctx.where()}: the waiters of that phase go on before the load lands (use "
                "mbarrier_arrive_expect_tx with the bytes of the phase's loads)",
                accesses=[ctx.access(what, [lane])],
            )

    def poll(self, bar: Barrier, parity: int) -> bool:
        """Has the phase with `parity` completed? Lands the barrier's TMA loads, one at a time,
        while it has not and they could complete it."""
        tma = hopper(self.ex, "mbarrier").tma
        while (bar.phase & 1) == parity:
            if not tma.land_one(bar):
                return False
        return True


def _bars(
    ex: ThreadExecutor, e: Call, mask: Mask, what: str
) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(address, lanes, positions in mask.idx) of each distinct barrier address the lanes give."""
    addrs = lane_values(ex, e.args[0], mask).astype(np.int64)
    out = []
    for a in np.unique(addrs).tolist():
        pos = np.flatnonzero(addrs == a)
        out.append((int(a), mask.idx[pos], pos))
    return out


def _mb(ex: ThreadExecutor, what: str) -> Mbarriers:
    return hopper(ex, what).mbarriers


@device_call("tsir.mbarrier.mbarrier_init")
def _init(ex: ThreadExecutor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    """mbarrier.init(bar, count): a fresh barrier in phase 0 expecting `count` arrivals."""
    mb = _mb(ex, "mbarrier_init")
    counts = lane_values(ex, e.args[1], mask)
    for addr, lanes, pos in _bars(ex, e, mask, "mbarrier_init"):
        region, off = mb.locate(addr, "mbarrier_init")
        if lanes.size > 1:
            raise MbarrierError(
                f"mbarrier_init: {lanes.size} threads initialise the mbarrier at {addr:#x} at "
                f"once{ex.ctx.where()}",
                accesses=[ex.ctx.access("mbarrier_init", lanes[:2])],
            )
        count = int(counts[pos[0]])
        old = mb.live.get((region, off))
        if old is not None:
            raise MbarrierError(
                f"mbarrier_init of the live mbarrier {old.label}{ex.ctx.where()}: invalidate it "
                "(tsir::mbarrier_inval) before initialising it again",
                accesses=[ex.ctx.access("mbarrier_init", lanes)],
            )
        if not 1 <= count <= TX_LIMIT:
            raise MbarrierError(
                f"mbarrier_init with a count of {count}: the count is 1..{TX_LIMIT}"
                f"{ex.ctx.where()}",
                accesses=[ex.ctx.access("mbarrier_init", lanes)],
            )
        fi = np.arange(off, off + 8)
        if region.shadow is not None and ex.ctx.check:
            region.shadow.write(ex.ctx, fi, np.repeat(lanes, 8), region.name, 0)
            region.shadow.mark_object(fi, True)
        bar = Barrier(region, off, addr, mb.label(region, off), count)
        lane = int(lanes[0])
        warp = int(ex.lanes.warp_of_lane[lane])
        bar.init_lane = lane
        bar.init_stmt = ex.ctx.stmt_id()
        bar.init_record = (
            warp,
            int(ex.ctx.vc[warp, warp % ex.ctx.warps_per_block]),
            int(ex.ctx.warp_epoch[warp]),
        )
        bar.init_fences = (int(ex.ctx.proxy_fences[lane]), int(mb.init_fences[lane]))
        mb.live[(region, off)] = bar
    return _ZERO


@device_call("tsir.mbarrier.mbarrier_init_fence")
def _init_fence(ex: ThreadExecutor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    """fence.mbarrier_init.release.cluster: this thread's earlier inits become visible to the
    async proxy (TMA's complete_tx) and, with a barrier after it, to the other threads."""
    _mb(ex, "mbarrier_init_fence").init_fences[mask.idx] += 1
    return _ZERO


@device_call("tsir.mbarrier.mbarrier_inval")
def _inval(ex: ThreadExecutor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    """mbarrier.inval: the object is gone; its 8 bytes are memory again."""
    mb = _mb(ex, "mbarrier_inval")
    tma = hopper(ex, "mbarrier_inval").tma
    for addr, lanes, _ in _bars(ex, e, mask, "mbarrier_inval"):
        bar = mb.at(addr, lanes, "mbarrier_inval")
        if tma.in_flight(bar):
            raise MbarrierError(
                f"mbarrier_inval of {bar.label} while TMA loads still complete on it"
                f"{ex.ctx.where()}",
                accesses=[ex.ctx.access("mbarrier_inval", lanes)],
            )
        del mb.live[(bar.region, bar.offset)]
        if bar.region.shadow is not None:
            bar.region.shadow.mark_object(np.arange(bar.offset, bar.offset + 8), False)
    return _ZERO


def _arrive_call(ex: ThreadExecutor, e: Call, mask: Mask, what: str, expect: bool) -> Any:
    mb = _mb(ex, what)
    nbytes = lane_values(ex, e.args[1], mask) if expect else None
    completed = False
    for addr, lanes, pos in _bars(ex, e, mask, what):
        bar = mb.at(addr, lanes, what)
        if nbytes is None:
            completed = mb.arrive(bar, lanes, what) or completed
            continue
        for lane, p in zip(lanes.tolist(), pos.tolist()):
            one = np.array([lane], dtype=np.int64)
            bar.tx += int(nbytes[p])
            bar.had_tx = True
            mb._tx_range(bar, one, what)
            completed = mb.arrive(bar, one, what) or completed
    if completed:
        ex.yield_to_waiters()
    return _ZERO


@device_call("tsir.mbarrier.mbarrier_arrive")
def _arrive(ex: ThreadExecutor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    """mbarrier.arrive.release.cta: one arrival per calling thread."""
    return _arrive_call(ex, e, mask, "mbarrier_arrive", expect=False)


@device_call("tsir.mbarrier.mbarrier_arrive_expect_tx")
def _arrive_expect_tx(ex: ThreadExecutor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    """mbarrier.arrive.expect_tx: announce `bytes` transaction bytes, then arrive (per thread)."""
    return _arrive_call(ex, e, mask, "mbarrier_arrive_expect_tx", expect=True)


@device_call("tsir.mbarrier.mbarrier_expect_tx")
def _expect_tx(ex: ThreadExecutor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    """mbarrier.expect_tx.relaxed: announce `bytes` transaction bytes without arriving."""
    mb = _mb(ex, "mbarrier_expect_tx")
    nbytes = lane_values(ex, e.args[1], mask)
    completed = False
    for addr, lanes, pos in _bars(ex, e, mask, "mbarrier_expect_tx"):
        bar = mb.at(addr, lanes, "mbarrier_expect_tx")
        for lane, p in zip(lanes.tolist(), pos.tolist()):
            one = np.array([lane], dtype=np.int64)
            completed = mb.expect(bar, int(nbytes[p]), one, "mbarrier_expect_tx") or completed
    if completed:
        ex.yield_to_waiters()
    return _ZERO


def _wait_call(ex: ThreadExecutor, e: Call, mask: Mask, what: str, block: bool) -> np.ndarray:
    mb = _mb(ex, what)
    parities = lane_values(ex, e.args[1], mask) & 1
    out = np.zeros(mask.n, dtype=bool)
    stmt = ex.ctx.stmt
    for addr, lanes, pos in _bars(ex, e, mask, what):
        bar = mb.at(addr, lanes, what)
        for parity in np.unique(parities[pos]).tolist():
            sel = lanes[parities[pos] == parity]
            done = mb.poll(bar, int(parity))
            if not done and block:

                def describe(bar: Barrier = bar, parity: int = int(parity), sel: Any = sel) -> str:
                    who = threads_text(ex, sel)
                    tma = hopper(ex, what).tma.describe_in_flight(bar)
                    return (
                        f"{what} on mbarrier {bar.label} for the phase of parity {parity}, by "
                        f"{who}: the barrier is {bar.state()}{tma}\n      {describe_stmt(stmt)}"
                    )

                ex.park(lambda bar=bar, parity=int(parity): mb.poll(bar, parity), describe)
                done = True
            elif not done:
                ex.yield_any()
                done = mb.poll(bar, int(parity))
            if done:
                out[sel] = True
                if bar.done_vc is not None:
                    ex.ctx.acquire(ex.lanes.warp_of_lane[sel], bar.done_vc)
    return out


@device_call("tsir.mbarrier.mbarrier_wait")
def _wait(ex: ThreadExecutor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    """Block until the phase with parity `parity` has completed (acquire)."""
    _wait_call(ex, e, mask, "mbarrier_wait", block=True)
    return _ZERO


@device_call("tsir.mbarrier.mbarrier_try_wait")
def _try_wait(ex: ThreadExecutor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    """One poll: true once the phase with parity `parity` has completed. Like the instruction,
    which may suspend the thread a while before answering false, it lets the other warpgroups
    run once when the phase is not complete yet."""
    done = _wait_call(ex, e, mask, "mbarrier_try_wait", block=False)
    return cast_array(done, _BOOL, e.dtype)
