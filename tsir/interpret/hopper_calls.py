"""Reference semantics of the small functions of mbarrier.h (shared addresses, the proxy fence,
elect, setmaxnreg, named barriers) and of sync.h's named barrier: entries of the one device-call
table (device_calls.py). The mbarrier objects themselves are in mbarrier.py."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..dtype import DataType
from ..expr import Call
from .device_calls import device_call
from .errors import (
    DivergentBarrierError,
    InterpretUnsupportedError,
    NamedBarrierError,
    OutOfBoundsError,
    RegisterBudgetError,
)
from .hopper import REGISTER_FILE, HopperState, hopper, lane_values, warpgroups
from .lanes import Mask
from .memory import Pointer
from .report import describe_stmt
from .values import cast_array

if TYPE_CHECKING:
    from .thread import ThreadExecutor

__all__: list[str] = []

_ZERO = np.zeros(1, dtype=np.int32)
_BOOL = DataType("bool")


def _shared_pointer(ex: ThreadExecutor, p: Any, what: str) -> Pointer:
    if not isinstance(p, Pointer):
        raise InterpretUnsupportedError(f"{what} takes an address (address_of), got `{p}`")
    if p.view.region.kind != "shared":
        raise OutOfBoundsError(
            f"{what} of `{p.view.name}`, which is {p.view.scope} memory, not shared memory"
            f"{ex.ctx.where()}",
            accesses=[ex.ctx.access(what, None)],
            buffer=p.view.name,
        )
    return p


# -- mbarrier.h: addresses, fences, elect, setmaxnreg, named barriers ------------------------------


@device_call("tsir.mbarrier.shared_u32")
def _shared_u32(ex: ThreadExecutor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    """shared_u32(p): the shared-window address of `p` (__cvta_generic_to_shared)."""
    h = hopper(ex, "shared_u32")
    p = _shared_pointer(ex, ex.ev.eval(e.args[0], mask), "shared_u32")
    region = p.view.region
    out = h.space.address(region) + p.view.byte_offset + p.elem * p.view.itemsize
    if out.shape[0] == 1:  # remember a name for the object there (mbarrier messages)
        at = (region, int(out[0]) - h.space.address(region))
        if at not in h.labels:
            idx = ", ".join(str(int(np.asarray(i).reshape(-1)[0])) for i in p.index)
            h.labels[at] = f"`{p.view.name}[{idx}]`"
    return out.astype(np.uint32)


@device_call("tsir.mbarrier.fence_proxy_async_shared")
def _fence_proxy(ex: ThreadExecutor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    """fence.proxy.async.shared::cta: this thread's generic shared writes so far become visible
    to the async proxy (wgmma operand reads, TMA stores) that a barrier orders after them."""
    hopper(ex, "fence_proxy_async_shared")
    ex.ctx.proxy_fences[mask.idx] += 1
    return _ZERO


@device_call("tsir.mbarrier.elect_one")
def _elect_one(ex: ThreadExecutor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    """elect.sync _|p, 0xffffffff: true in one lane (the lowest) of each fully active warp."""
    hopper(ex, "elect_one")
    ex.full_warps(mask, "elect_one (elect.sync with a full member mask)")
    out = np.zeros(mask.n, dtype=bool)
    out[mask.idx] = (ex.lanes.thread_of_lane[mask.idx] % 32) == 0
    return cast_array(out, _BOOL, e.dtype)


def _setmaxnreg(ex: ThreadExecutor, e: Call, targs: tuple[str, ...], mask: Mask, inc: bool) -> Any:
    name = f"setmaxnreg_{'inc' if inc else 'dec'}<{', '.join(targs)}>"
    h = hopper(ex, name)
    if len(targs) != 1 or not targs[0].lstrip("-").isdigit():
        raise InterpretUnsupportedError(f"{e.op}: one integer template argument (the count)")
    count = int(targs[0])
    for wg, lanes in warpgroups(ex, mask, name):
        cur = h.regs.get(wg, h.initial_regs)
        known = wg in h.regs
        problem = None
        if count % 8 or not 24 <= count <= 256:
            problem = "the count must be a multiple of 8 in [24, 256]"
        elif inc and known and count < cur:
            problem = f"an inc may not lower the count (warpgroup {wg} has {cur})"
        elif not inc and count > cur:
            most = "" if known else " at most"
            problem = f"a dec may not raise the count (warpgroup {wg} has {cur}{most})"
        if problem is not None:
            raise RegisterBudgetError(
                f"{name} in warpgroup {wg}: {problem}{ex.ctx.where()} (at kernel entry a thread "
                f"has at most {h.initial_regs} registers: the "
                f"__launch_bounds__({ex.lanes.per_block}, 1) cap)",
                accesses=[ex.ctx.access(name, lanes[:1])],
            )
        if inc:

            def fits(wg: int = wg, cur: int = cur) -> bool:
                return _total(h) - 128 * cur + 128 * count <= REGISTER_FILE

            def waiting(wg: int = wg) -> str:
                held = ", ".join(
                    f"warpgroup {k}: {h.regs.get(k, h.initial_regs)}"
                    for k in range(-(-ex.lanes.per_block // 128))
                )
                return (
                    f"{name} in warpgroup {wg} waits for registers no warpgroup gives back: the "
                    f"block holds {_total(h)} of {REGISTER_FILE} ({held} per thread)"
                )

            ex.park(fits, waiting)
        h.regs[wg] = count
    return _ZERO


def _total(h: HopperState) -> int:
    groups = -(-h.ex.lanes.per_block // 128)
    return sum(128 * h.regs.get(k, h.initial_regs) for k in range(groups))


@device_call("tsir.mbarrier.setmaxnreg_dec")
def _setmaxnreg_dec(ex: ThreadExecutor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    """setmaxnreg.dec.sync.aligned<COUNT>: the warpgroup gives registers back to the pool."""
    return _setmaxnreg(ex, e, targs, mask, inc=False)


@device_call("tsir.mbarrier.setmaxnreg_inc")
def _setmaxnreg_inc(ex: ThreadExecutor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    """setmaxnreg.inc.sync.aligned<COUNT>: the warpgroup takes registers from the pool, waiting
    until other warpgroups have given enough back."""
    return _setmaxnreg(ex, e, targs, mask, inc=True)


@device_call("tsir.mbarrier.named_barrier_sync")
@device_call("tsir.sync.named_barrier")
def _named_barrier(ex: ThreadExecutor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    """bar.sync id, count: the warps that arrive with barrier `id` wait until `count` threads
    (whole warps) have arrived; then all of them go on, ordered after each other's accesses and
    after those of the warps that arrived without waiting (bar.arrive)."""
    return _named(ex, e, mask, wait=True)


@device_call("tsir.mbarrier.named_barrier_arrive")
def _named_barrier_arrive(ex: ThreadExecutor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    """bar.arrive id, count: the warps count towards barrier `id`'s completion and go on at once;
    their earlier accesses are ordered before whatever the waiting warps (bar.sync) do after it
    completes (release). A warp arriving again before the barrier completed is reported."""
    return _named(ex, e, mask, wait=False)


def _named(ex: ThreadExecutor, e: Call, mask: Mask, wait: bool) -> Any:
    h = hopper(ex, "named_barrier")
    lm = ex.lanes
    ids = lane_values(ex, e.args[0], mask)
    counts = lane_values(ex, e.args[1], mask)
    form = "bar.sync" if wait else "bar.arrive"
    waits = []
    released = False
    for bid in np.unique(ids).tolist():
        sel = mask.idx[ids == bid]
        count = int(counts[ids == bid][0])
        what = f"{form} {bid}, {count}"
        if (counts[ids == bid] != count).any():
            raise DivergentBarrierError(
                f"{what}: the threads arriving at barrier {bid} give different thread counts"
                f"{ex.ctx.where()}",
                accesses=[ex.ctx.access("arrive", sel[:2])],
            )
        sub = Mask(np.isin(np.arange(mask.n), sel))
        warps = np.unique(lm.warp_of_lane[sel])
        ex.full_warps(sub, what)
        if not 0 <= bid < 16 or count % 32 or not 0 < count <= lm.per_block:
            raise DivergentBarrierError(
                f"{what}: ids are 0..15 and the count a multiple of 32 up to the block's "
                f"{lm.per_block} threads{ex.ctx.where()}",
                accesses=[ex.ctx.access("arrive", sel[:1])],
            )
        nb = h.named.setdefault(bid, _fresh_named())
        if nb["count"] is not None and nb["count"] != count:
            raise DivergentBarrierError(
                f"{what}: other warps wait at barrier {bid} with a count of {nb['count']}"
                f"{ex.ctx.where()}",
                accesses=[
                    ex.ctx.access("arrive", sel[:1]),
                    ex.ctx.access("waiting", None, nb["stmt"]),
                ],
            )
        again = sorted(set(warps.tolist()) & set(nb["warps"]))
        if again:
            first_stmt, first_lanes = nb["arrivals"][again[0]]
            raise NamedBarrierError(
                f"{what}: warp {again[0] % ex.ctx.warps_per_block} arrives at barrier {bid} "
                f"again before it completed ({32 * len(nb['warps'])} of {count} threads have "
                f"arrived){ex.ctx.where()}: the PTX ISA leaves a second arrival in one "
                "generation undefined (it would count towards this one)",
                accesses=[
                    ex.ctx.access("first arrival", first_lanes, first_stmt),
                    ex.ctx.access("second arrival", sel[:1]),
                ],
            )
        nb["count"], nb["stmt"] = count, ex.ctx.stmt
        nb["warps"].extend(warps.tolist())
        for w in warps.tolist():
            nb["arrivals"][w] = (ex.ctx.stmt, sel[lm.warp_of_lane[sel] == w][:1])
        if wait:
            nb["syncers"].extend(warps.tolist())
        else:
            # Release: what these warps did so far is ordered before the waiters' later accesses;
            # what they do next is not (they do not wait).
            snap = ex.ctx.release(warps)
            nb["clock"] = snap if nb["clock"] is None else np.maximum(nb["clock"], snap)
        arrived = 32 * len(nb["warps"])
        if arrived > count:
            raise DivergentBarrierError(
                f"{what}: {arrived} threads arrive at barrier {bid}, more than its count"
                f"{ex.ctx.where()}",
                accesses=[ex.ctx.access("arrive", sel[:1])],
            )
        if arrived == count:
            syncers = np.array(nb["syncers"], dtype=np.int64)
            if syncers.size:
                if nb["clock"] is not None:
                    ex.ctx.acquire(syncers, nb["clock"])
                ex.ctx.join(syncers)
            h.named[bid] = {**_fresh_named(), "gen": nb["gen"] + 1}
            released = released or not wait
        elif wait:
            waits.append((bid, nb["gen"], what))
    if released:
        ex.yield_to_waiters()  # the waiters run as early as the hardware would run them
    for bid, gen, what in waits:

        def passed(bid: int = bid, gen: int = gen) -> bool:
            return bool(h.named[bid]["gen"] > gen)

        def waiting(bid: int = bid, what: str = what, stmt: Any = ex.ctx.stmt) -> str:
            nb = h.named[bid]
            return (
                f"{what}: {32 * len(nb['warps'])} of {nb['count']} threads have arrived "
                f"(warps {sorted({w % ex.ctx.warps_per_block for w in nb['warps']})}) at "
                f"{describe_stmt(stmt)}"
            )

        ex.park(passed, waiting)
    return _ZERO


def _fresh_named() -> dict[str, Any]:
    """A named barrier's state in one generation: the count it was given, the warps arrived so far
    (and the statement of each arrival), those that wait, the released clock of those that do
    not, and the generation number."""
    return {
        "count": None,
        "warps": [],
        "arrivals": {},
        "syncers": [],
        "clock": None,
        "gen": 0,
        "stmt": None,
    }
