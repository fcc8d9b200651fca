"""Per-block state of the Hopper path at the thread level, and helpers the Hopper calls share.

`HopperState` (one per sweep: kernels with Hopper calls run one block per sweep, see strands.py)
holds the shared address space, the mbarrier objects (mbarrier.py), the TMA unit (tma.py), the
wgmma queues (wgmma_calls.py), the named barriers and the register budget of `setmaxnreg`.

Shared addresses. The headers pass shared memory as 32-bit shared-window addresses
(`tsir::shared_u32(&buf[i])`), to which kernels add offsets and which wgmma descriptors carry in
their low bits. Here every shared allocation of the block gets a base address (first fit from
0x400, each 1024-byte aligned, so that swizzle patterns line up as they do for tsir's aligned
allocations; address 0 belongs to nothing), and an address is resolved back to its allocation and
byte offset. An address outside every live allocation is an out-of-bounds access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import (
    DivergentWarpError,
    InterpretUnsupportedError,
    NamedBarrierError,
    OutOfBoundsError,
)
from .lanes import Mask
from .memory import Pointer, Region
from .report import describe_threads, fmt_idx

if TYPE_CHECKING:
    from .thread import ThreadExecutor

__all__ = ["HopperState", "SharedSpace", "hopper", "lane_values", "uniform", "warpgroups"]

REGISTER_FILE = 65536  # 32-bit registers per SM (one block per SM under __launch_bounds__(t, 1))


class SharedSpace:
    """Shared-window addresses of the block's shared allocations."""

    BASE = 0x400
    LIMIT = 1 << 18  # descriptors and mbarrier operands carry 18 address bits

    def __init__(self) -> None:
        self.live: list[tuple[int, int, Region]] = []  # (base, end, region), sorted by base
        self.base_of: dict[Region, int] = {}

    def add(self, region: Region) -> int:
        size = region.nbytes
        at = self.BASE
        for base, end, _ in self.live:
            if at + size <= base:
                break
            at = max(at, -(-end // 1024) * 1024)
        if at + size > self.LIMIT:
            raise InterpretUnsupportedError(
                f"shared memory of the block exceeds {self.LIMIT // 1024} KiB (allocating "
                f"`{region.name}`, {size} bytes)"
            )
        self.live.append((at, at + size, region))
        self.live.sort(key=lambda x: x[0])
        self.base_of[region] = at
        return at

    def remove(self, region: Region) -> None:
        self.live = [x for x in self.live if x[2] is not region]
        self.base_of.pop(region, None)

    def address(self, region: Region) -> int:
        base = self.base_of.get(region)
        if base is None:
            raise InterpretUnsupportedError(f"`{region.name}` has no shared address")
        return base

    def locate(self, ex: ThreadExecutor, addr: int, nbytes: int, what: str) -> tuple[Region, int]:
        """The allocation and byte offset of `nbytes` bytes at shared address `addr`."""
        for base, end, region in self.live:
            if base <= addr < end:
                if addr + nbytes > end:
                    break
                return region, addr - base
        raise OutOfBoundsError(
            f"{what}: shared address {addr:#x} (+{nbytes} bytes) is outside every live shared "
            f"allocation of the block ({self.describe()}){ex.ctx.where()}",
            accesses=[ex.ctx.access(what, None)],
        )

    def describe(self) -> str:
        parts = [f"`{r.name}` at [{b:#x}, {e:#x})" for b, e, r in self.live]
        return ", ".join(parts) if parts else "none"


class HopperState:
    """A block's Hopper units (`hopper_units.make_hopper_state` builds one: the units' modules
    import this one)."""

    def __init__(self, ex: ThreadExecutor, mbarriers: Any, tma: Any, wgmma: Any):
        self.ex = ex
        self.space = SharedSpace()
        self.mbarriers = mbarriers
        self.tma = tma
        self.wgmma = wgmma
        self.named: dict[int, dict[str, Any]] = {}
        self.labels: dict[tuple[Region, int], str] = {}
        lm = ex.lanes
        whole = -(-lm.per_block // 128) * 128
        self.initial_regs = min(256, REGISTER_FILE // whole // 8 * 8)
        self.regs: dict[int, int] = {}

    def finish(self) -> None:
        """At the end of the block: nothing may be left in flight."""
        self.tma.finish()
        self.wgmma.finish()
        self.finish_named()

    def finish_named(self) -> None:
        """A named barrier still holding arrivals that no bar.sync consumed (a bar.arrive without
        its partner) is reported: in a persistent or longer kernel it would complete a later
        generation early."""
        for bid, nb in sorted(self.named.items()):
            if not nb["warps"] or not self.ex.ctx.check:
                continue
            ctx = self.ex.ctx
            warps = sorted({w % ctx.warps_per_block for w in nb["warps"]})
            stmt, lanes = nb["arrivals"][nb["warps"][0]]
            raise NamedBarrierError(
                f"named barrier {bid} ends the block with {32 * len(nb['warps'])} of "
                f"{nb['count']} threads arrived (warps {warps}) and nobody waiting: every "
                f"bar.arrive needs the bar.sync that completes its generation{ctx.where()}",
                accesses=[ctx.access("arrival left pending", lanes, stmt)],
            )


# -- helpers the Hopper calls share ----------------------------------------------------------------


def hopper(ex: Any, what: str) -> HopperState:
    h = getattr(ex, "hopper", None)
    if h is None:
        raise InterpretUnsupportedError(
            f"{what} is a thread-level Hopper call; the {ex.level_name} interpreter cannot run it"
        )
    return h


def lane_values(ex: ThreadExecutor, e: Any, mask: Mask) -> np.ndarray:
    """An integer argument's value in each active lane (1-D, in mask order)."""
    v = ex.ev.eval(e, mask)
    if isinstance(v, Pointer) or not isinstance(v, np.ndarray):
        raise InterpretUnsupportedError(f"`{e}` must be a number here, not an address")
    return np.broadcast_to(v, (mask.n,))[mask.idx]


def uniform(
    ex: ThreadExecutor, e: Any, mask: Mask, what: str, err: type = DivergentWarpError
) -> int:
    """A value every active lane must agree on (an address, a count, a descriptor)."""
    vals = lane_values(ex, e, mask)
    if vals.size and (vals != vals[0]).any():
        k = int(np.flatnonzero(vals != vals[0])[0])
        raise err(
            f"{what}: `{e}` differs between the threads that execute it ({int(vals[0])} in one, "
            f"{int(vals[k])} in another){ex.ctx.where()}",
            accesses=[ex.ctx.access(what, mask.idx[[0, k]])],
        )
    return int(vals[0]) if vals.size else 0


def warpgroups(ex: ThreadExecutor, mask: Mask, what: str) -> list[tuple[int, np.ndarray]]:
    """The warpgroups executing a warpgroup-collective operation, each with its 128 lanes in
    thread order; every thread of each must be active (else DivergentWarpError)."""
    lm = ex.lanes
    t = lm.thread_of_lane[mask.idx]
    out = []
    for wg in np.unique(t // 128).tolist():
        lanes = np.flatnonzero((lm.thread_of_lane // 128) == wg)
        on = lanes[mask.arr[lanes]]
        if on.size != 128:
            off = lanes[~mask.arr[lanes]]
            if lanes.size < 128:
                have = f"{lanes.size} of the 128 threads of warpgroup {wg} exist in the block"
            else:
                have = f"{on.size} of the 128 threads of warpgroup {wg} execute it"
            raise DivergentWarpError(
                f"{what} is warpgroup-collective (.sync.aligned), but only {have}{ex.ctx.where()}",
                accesses=[ex.ctx.access("executed", on), ex.ctx.access("skipped", off)],
            )
        out.append((int(wg), lanes))
    return out


def threads_text(ex: ThreadExecutor, lanes: np.ndarray) -> str:
    """`threads 0..127 of block (0,)` for a contiguous range, else the first few threads."""
    lanes = np.sort(np.asarray(lanes).reshape(-1))
    lm = ex.lanes
    if lanes.size > 1 and (np.diff(lanes) == 1).all() and len(lm.threads) == 1:
        lo, hi = (int(lm.thread_of_lane[x]) for x in (lanes[0], lanes[-1]))
        block = fmt_idx(lm.blocks[int(lm.block_of_lane[lanes[0]])])
        return f"threads {lo}..{hi} of block {block}"
    return describe_threads(lm.describe(lanes))
