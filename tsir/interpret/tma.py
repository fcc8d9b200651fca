"""Reference semantics of tma.h (PTX ISA "cp.async.bulk.tensor", "cp.async.bulk.commit_group /
wait_group", "prefetch.tensormap"; CUDA driver API `cuTensorMapEncodeTiled`): tensor maps, TMA
loads and stores. Entries of the one device-call table (device_calls.py).

Tensor maps in tsir IR. The header takes a `const __grid_constant__ tsir::TmaDescriptor` kernel
parameter (128 opaque bytes the host encodes). In the IR a tensor map is the value of the
intrinsic

    tma_descriptor(address_of(A[0, ..., 0]), box_0, ..., box_{r-1}, swizzle_bytes)

(handle dtype): the whole global buffer `A` (its dtype, shape and strides; rank r = its number of
dimensions), a box of `box_0 x ... x box_{r-1}` elements (outermost first, as tsir writes shapes;
the header's coordinates are innermost first) and the swizzle in bytes (0, 32, 64 or 128). It may
stand inline as a TMA call's `desc` argument, be bound to a handle Var by a LetStmt, or -- once
SplitHostDevice hoists it -- be a kernel parameter Var whose host-side LetStmt binds the call (the
host program then encodes the map with runtime.tensor_map and passes it by value). The map is
checked with the driver's rules when it is made (TmaError naming the rule).

A load writes the box into shared memory at `dst` in row-major order, each element's address
permuted by the swizzle (16-byte chunk index XOR the 128-byte row index modulo the chunks of the
swizzle width, on absolute shared addresses), zero-filling elements outside the tensor, and then
completes the box's full byte count on the mbarrier. It is an async event: from its issue its
bytes are "pending" (a read or write of them is reported) until it lands, which happens only when
a thread polls the barrier and the phase cannot complete without it (mbarrier.py). A store reads
the box from shared memory (through the swizzle) and writes the in-bounds elements to global
memory; its source may not be written until `tma_store_wait_read` retires its bulk group, and its
global writes land at `tma_store_wait` (or at the end of the kernel).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..expr import Call
from .device_calls import device_call
from .errors import (
    AsyncCopyHazardError,
    InterpretUnsupportedError,
    MisalignedAccessError,
    TmaError,
)
from .hazards import ASYNC_TMA_STORE, PEND_TMA
from .hopper import hopper, lane_values
from .lanes import Mask
from .memory import Pointer, Region, View

if TYPE_CHECKING:
    from .evaluator import Evaluator
    from .mbarrier import Barrier
    from .thread import ThreadExecutor

__all__ = ["TensorMap", "TmaUnit", "box_addresses", "make_tensor_map"]

_ZERO = np.zeros(1, dtype=np.int32)
_GLOBAL = ("global", "symmetric")
_SWIZZLES = (0, 32, 64, 128)


@dataclass(frozen=True, eq=False)
class TensorMap:
    """A tensor map: the global tensor (a view), its box and swizzle."""

    view: View
    box: tuple[int, ...]
    swizzle: int

    @property
    def rank(self) -> int:
        return len(self.box)

    @property
    def box_bytes(self) -> int:
        return int(np.prod(self.box)) * self.view.itemsize

    def __str__(self) -> str:
        return f"tensor map of `{self.view.name}` (box {list(self.box)}, swizzle {self.swizzle})"


def make_tensor_map(ev: Evaluator, e: Call) -> TensorMap:
    """The value of `tma_descriptor(address_of(A[0, ...]), box..., swizzle)`."""
    one = Mask.full(1)
    if len(e.args) < 3:
        raise InterpretUnsupportedError(
            f"`{e}`: tma_descriptor(address_of(A[0, ..., 0]), box..., swizzle_bytes)"
        )
    p = ev.eval(e.args[0], one)
    if not isinstance(p, Pointer) or p.view.scope not in _GLOBAL:
        raise InterpretUnsupportedError(
            f"`{e}`: the first argument must be address_of an element of a global buffer"
        )
    if p.elem.shape[0] != 1 or int(p.elem[0]) != 0:
        raise InterpretUnsupportedError(
            f"`{e}`: a tensor map describes a whole buffer: pass address_of its element [0, ...]"
        )
    dims = [ev.uniform_int(a, "a tensor map's box") for a in e.args[1:-1]]
    swizzle = ev.uniform_int(e.args[-1], "a tensor map's swizzle")
    view = p.view
    tmap = TensorMap(view, tuple(dims), swizzle)
    _check_map(ev, tmap, e)
    return tmap


def _check_map(ev: Evaluator, m: TensorMap, e: Call) -> None:
    view = m.view
    esize = view.itemsize

    def fail(rule: str, found: str) -> None:
        raise TmaError(
            f"`{e}` cannot be a tensor map: {rule}; {found}",
            accesses=[ev.ctx.access("tma_descriptor", None)],
            buffer=view.name,
        )

    if len(m.box) != len(view.shape):
        fail(
            "the box has one extent per dimension of the buffer",
            f"{len(m.box)} for {len(view.shape)}",
        )
    if not 1 <= m.rank <= 5:
        fail("a tensor map has 1 to 5 dimensions", f"got {m.rank}")
    if view.buffer.dtype.is_bool or view.buffer.dtype.is_handle:
        fail("TMA copies 8/16/32/64-bit numbers", f"got {view.buffer.dtype}")
    if view.strides[-1] != 1:
        fail("the innermost dimension must be contiguous", f"its stride is {view.strides[-1]}")
    if view.byte_offset % 16:
        fail("the global address must be 16-byte aligned", f"it is {view.byte_offset} bytes in")
    for d, s in enumerate(view.strides[:-1]):
        if (s * esize) % 16:
            fail("every outer stride is a multiple of 16 bytes", f"dimension {d}: {s * esize}")
    for d, b in enumerate(m.box):
        if not 1 <= b <= 256:
            fail("every box dimension has 1 to 256 elements", f"box dimension {d} is {b}")
    inner = m.box[-1] * esize
    if inner % 16:
        fail("the box's inner extent is a multiple of 16 bytes", f"it is {inner} bytes")
    if m.swizzle not in _SWIZZLES:
        fail("the swizzle is 0, 32, 64 or 128 bytes", f"got {m.swizzle}")
    if m.swizzle and inner > m.swizzle:
        fail(
            f"with the {m.swizzle}-byte swizzle the inner extent is at most that", f"{inner} bytes"
        )


def swizzle(addr: np.ndarray, swizzle_bytes: int) -> np.ndarray:
    """The swizzled address of each byte address (16-byte chunk XOR 128-byte row, mod chunks)."""
    if swizzle_bytes == 0:
        return addr
    chunks = swizzle_bytes // 16
    return addr ^ (((addr >> 7) % chunks) << 4)


def box_addresses(m: TensorMap, dst: int) -> np.ndarray:
    """Shared address of each element of the box (row-major over the box), swizzled."""
    n = int(np.prod(m.box))
    return swizzle(dst + np.arange(n, dtype=np.int64) * m.view.itemsize, m.swizzle)


def _global_elements(m: TensorMap, coords: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(element offsets in the buffer, in-bounds mask) of the box at `coords` (innermost
    first), row-major over the box."""
    grids = np.indices(m.box, dtype=np.int64).reshape(m.rank, -1)
    starts = list(reversed(coords))
    off = np.zeros(grids.shape[1], dtype=np.int64)
    inside = np.ones(grids.shape[1], dtype=bool)
    for d in range(m.rank):
        idx = grids[d] + starts[d]
        inside &= (idx >= 0) & (idx < m.view.shape[d])
        off += np.where(inside, idx, 0) * m.view.strides[d]
    return np.where(inside, off, 0), inside


class TmaUnit:
    """In-flight TMA loads (per barrier, in issue order) and bulk store groups (per thread)."""

    def __init__(self, ex: ThreadExecutor):
        self.ex = ex
        self.loads: list[dict[str, Any]] = []
        self.stores: list[dict[str, Any]] = []
        self.open = np.zeros(max(1, ex.lanes.n), dtype=np.int64)

    # -- loads -------------------------------------------------------------------------------------
    def issue_load(
        self, m: TensorMap, dst: int, bar: Barrier, coords: list[int], lane: int, what: str
    ) -> None:
        ex, ctx = self.ex, self.ex.ctx
        region, off = self._smem(m, dst, what, lane)
        hopper(ex, what).mbarriers.async_visible(bar, lane, what)
        hopper(ex, what).mbarriers.check_expected(bar, lane, what)
        elems, inside = _global_elements(m, coords)
        esize = m.view.itemsize
        src = m.view.region.data[0]
        gbytes = (m.view.byte_offset + elems * esize)[:, None] + np.arange(esize)
        data = np.where(inside[:, None], src[gbytes], 0).astype(np.uint8)
        fi = self._bytes(m, region, off, dst)
        lanes_e = np.full(fi.shape[0], lane, dtype=np.int64)
        if region.shadow is not None and ctx.check:
            region.shadow.write(ctx, fi, lanes_e, region.name, 0, generic=False)
            region.shadow.issue_async(ctx, fi, lanes_e, region.name, 0, kind=PEND_TMA)
        warp = ctx.lanes.warp_of_lane[np.array([lane])]
        clock = ctx.release(warp)
        rec = {"bar": bar, "region": region, "fi": fi, "data": data.reshape(-1)}
        rec.update(bytes=m.box_bytes, clock=clock, stmt=ctx.stmt_id(), lane=lane)
        self.loads.append(rec)

    def _smem(self, m: TensorMap, addr: int, what: str, lane: int) -> tuple[Region, int]:
        ex = self.ex
        if addr % 128:
            raise MisalignedAccessError(
                f"{what}: the shared address {addr:#x} is not 128-byte aligned{ex.ctx.where()}",
                accesses=[ex.ctx.access(what, [lane])],
            )
        pos = box_addresses(m, addr)
        lo, hi = int(pos.min()), int(pos.max()) + m.view.itemsize
        region, off = hopper(ex, what).space.locate(ex, lo, hi - lo, what)
        return region, off - (lo - addr)

    def _bytes(self, m: TensorMap, region: Region, off: int, dst: int) -> np.ndarray:
        pos = box_addresses(m, dst) - dst + off
        return (pos[:, None] + np.arange(m.view.itemsize)).reshape(-1)

    def in_flight(self, bar: Barrier) -> bool:
        return any(rec["bar"] is bar for rec in self.loads)

    def land_one(self, bar: Barrier) -> bool:
        """Land the oldest in-flight load completing on `bar`; False when there is none."""
        for i, rec in enumerate(self.loads):
            if rec["bar"] is bar:
                del self.loads[i]
                self._land(rec)
                return True
        return False

    def _land(self, rec: dict[str, Any]) -> None:
        region: Region = rec["region"]
        region.data.reshape(-1)[rec["fi"]] = rec["data"]
        if region.shadow is not None and region.shadow.pend is not None:
            region.shadow.land(rec["fi"])
        hopper(self.ex, "TMA").mbarriers.complete_tx(rec["bar"], rec["bytes"], rec["clock"])

    def describe_in_flight(self, bar: Barrier) -> str:
        n = sum(1 for rec in self.loads if rec["bar"] is bar)
        return f"; {n} TMA loads in flight complete on it" if n else "; no TMA load completes on it"

    # -- stores ------------------------------------------------------------------------------------
    def issue_store(self, m: TensorMap, src: int, coords: list[int], lane: int, what: str) -> None:
        _ex, ctx = self.ex, self.ex.ctx
        region, off = self._smem(m, src, what, lane)
        fi = self._bytes(m, region, off, src)
        if region.shadow is not None and ctx.check:
            region.shadow.check_fenced(ctx, fi, lane, what, region.name, 0)
            lanes_e = np.full(fi.shape[0], lane, dtype=np.int64)
            region.shadow.read(ctx, fi, lanes_e, region.name, 0)
            region.shadow.begin_async_read(fi, ASYNC_TMA_STORE, ctx.stmt_id(), lane)
        data = region.data.reshape(-1)[fi].reshape(-1, m.view.itemsize)
        elems, inside = _global_elements(m, coords)
        rec = {"map": m, "region": region, "fi": fi, "data": data, "elems": elems}
        rec.update(inside=inside, lane=lane, group=int(self.open[lane]), stmt=ctx.stmt_id())
        rec.update(reading=True, written=False)
        self.stores.append(rec)

    def commit(self, mask: Mask) -> None:
        self.open[mask.idx] += 1

    def wait(self, n: int, mask: Mask, writes: bool) -> None:
        for rec in self.stores:
            lane = rec["lane"]
            if mask.arr[lane] and rec["group"] < self.open[lane] - n:
                self._retire(rec, writes)
        self.stores = [r for r in self.stores if r["reading"] or not r["written"]]

    def _retire(self, rec: dict[str, Any], writes: bool) -> None:
        if rec["reading"]:
            rec["reading"] = False
            sh = rec["region"].shadow
            if sh is not None and sh.async_reads is not None:
                sh.end_async_read(rec["fi"])
        if writes and not rec["written"]:
            rec["written"] = True
            m: TensorMap = rec["map"]
            esize = m.view.itemsize
            dst = m.view.region.data[0]
            keep = rec["inside"]
            gbytes = (m.view.byte_offset + rec["elems"][keep] * esize)[:, None] + np.arange(esize)
            dst[gbytes] = rec["data"][keep]

    # -- the end of the block ----------------------------------------------------------------------
    def finish(self) -> None:
        ctx = self.ex.ctx
        if self.loads and ctx.check:
            rec = self.loads[0]
            raise AsyncCopyHazardError(
                f"the block ends with a TMA load into `{rec['region'].name}` that never landed: "
                f"nothing waited on its mbarrier {rec['bar'].label}{ctx.where()}",
                accesses=[ctx.access("TMA load issued", [rec["lane"]], ctx.stmt_of(rec["stmt"]))],
                buffer=rec["region"].name,
            )
        reading = [r for r in self.stores if r["reading"]]
        if reading and ctx.check:
            rec = reading[0]
            raise AsyncCopyHazardError(
                f"the block ends while a TMA store still reads `{rec['region'].name}`: no "
                f"tma_store_wait_read / tma_store_wait retired it{ctx.where()}",
                accesses=[ctx.access("TMA store issued", [rec["lane"]], ctx.stmt_of(rec["stmt"]))],
                buffer=rec["region"].name,
            )
        for rec in self.stores:
            self._retire(rec, True)
        self.stores = []
        for rec in self.loads:
            self._land(rec)
        self.loads = []


# -- tma.h entries --------------------------------------------------------------------------------


@device_call("tma_descriptor")
def _tma_descriptor(ex: ThreadExecutor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    """The tensor map intrinsic (not a header function): see the module docstring."""
    return make_tensor_map(ex.ev, e)


def _map(ex: ThreadExecutor, e: Any, mask: Mask, what: str, rank: int | None) -> TensorMap:
    m = ex.ev.eval(e, mask)
    if not isinstance(m, TensorMap):
        raise InterpretUnsupportedError(
            f"{what}: `{e}` is not a tensor map (tma_descriptor(address_of(A[0, ...]), box..., "
            "swizzle) or a Var bound to one)"
        )
    if rank is not None and m.rank != rank:
        raise TmaError(
            f"{what} with a rank-{m.rank} {m}{ex.ctx.where()}: the copy's rank is {rank}",
            accesses=[ex.ctx.access(what, None)],
        )
    return m


def _load(ex: ThreadExecutor, e: Call, mask: Mask, rank: int, what: str) -> Any:
    h = hopper(ex, what)
    m = _map(ex, e.args[1], mask, what, rank)
    dst = lane_values(ex, e.args[0], mask).astype(np.int64)
    bars = lane_values(ex, e.args[2], mask).astype(np.int64)
    coords = [lane_values(ex, c, mask).astype(np.int64) for c in e.args[3 : 3 + rank]]
    for k, lane in enumerate(mask.idx.tolist()):
        bar = h.mbarriers.at(int(bars[k]), np.array([lane]), what)
        h.tma.issue_load(m, int(dst[k]), bar, [int(c[k]) for c in coords], lane, what)
    return _ZERO


@device_call("tsir.tma.tma_load_1d")
def _load_1d(ex: ThreadExecutor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    """tma_load_1d(dst, desc, bar, c0): one box per calling thread."""
    return _load(ex, e, mask, 1, "tma_load_1d")


@device_call("tsir.tma.tma_load_2d")
def _load_2d(ex: ThreadExecutor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    """tma_load_2d(dst, desc, bar, c0, c1): c0 is the inner (column) coordinate."""
    return _load(ex, e, mask, 2, "tma_load_2d")


@device_call("tsir.tma.tma_load_3d")
def _load_3d(ex: ThreadExecutor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    return _load(ex, e, mask, 3, "tma_load_3d")


@device_call("tsir.tma.tma_load_2d_hint")
def _load_2d_hint(ex: ThreadExecutor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    """The 2-d load with an L2 eviction hint: the hint changes caching, never results."""
    lane_values(ex, e.args[5], mask)
    return _load(ex, e, mask, 2, "tma_load_2d_hint")


@device_call("tsir.tma.l2_policy_evict_last")
@device_call("tsir.tma.l2_policy_evict_first")
def _l2_policy(ex: ThreadExecutor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    """createpolicy.fractional: an opaque 64-bit cache policy (only ever passed to a hint)."""
    return np.array([0x1000_0000_0000_0000 | len(e.op)], dtype=np.uint64)


@device_call("tsir.tma.tma_prefetch_descriptor")
def _prefetch(ex: ThreadExecutor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    """prefetch.tensormap: a cache warm-up; nothing to do beyond checking the argument."""
    _map(ex, e.args[0], mask, "tma_prefetch_descriptor", None)
    return _ZERO


@device_call("tsir.tma.tma_desc_addr")
def _desc_addr(ex: ThreadExecutor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    raise InterpretUnsupportedError(
        "tma_desc_addr: the generic address of a tensor map only means something to inline PTX; "
        "tsir IR passes the map itself to the tma_* functions"
    )


def _store(ex: ThreadExecutor, e: Call, mask: Mask, nd: int, name: str) -> Any:
    h = hopper(ex, name)
    m = _map(ex, e.args[0], mask, name, nd)
    src = lane_values(ex, e.args[1], mask).astype(np.int64)
    coords = [lane_values(ex, c, mask).astype(np.int64) for c in e.args[2 : 2 + nd]]
    for k, lane in enumerate(mask.idx.tolist()):
        h.tma.issue_store(m, int(src[k]), [int(c[k]) for c in coords], lane, name)
    return _ZERO


@device_call("tsir.tma.tma_store_1d")
def _store_1d(ex: ThreadExecutor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    """tma_store_1d(desc, src, c0): the box from shared memory to the tensor (in bounds)."""
    return _store(ex, e, mask, 1, "tma_store_1d")


@device_call("tsir.tma.tma_store_2d")
def _store_2d(ex: ThreadExecutor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    """tma_store_2d(desc, src, c0, c1): c0 is the inner (column) coordinate."""
    return _store(ex, e, mask, 2, "tma_store_2d")


@device_call("tsir.tma.tma_store_3d")
def _store_3d(ex: ThreadExecutor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    return _store(ex, e, mask, 3, "tma_store_3d")


@device_call("tsir.tma.tma_store_commit")
def _store_commit(ex: ThreadExecutor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    """cp.async.bulk.commit_group: this thread's stores since the last commit form a group."""
    hopper(ex, "tma_store_commit").tma.commit(mask)
    return _ZERO


def _n(e: Call, targs: tuple[str, ...]) -> int:
    if len(targs) != 1 or not targs[0].isdigit():
        raise InterpretUnsupportedError(f"{e.op}: one non-negative integer template argument")
    return int(targs[0])


@device_call("tsir.tma.tma_store_wait_read")
def _store_wait_read(ex: ThreadExecutor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    """cp.async.bulk.wait_group.read N: all but the N newest groups no longer read shared."""
    hopper(ex, "tma_store_wait_read").tma.wait(_n(e, targs), mask, writes=False)
    return _ZERO


@device_call("tsir.tma.tma_store_wait")
def _store_wait(ex: ThreadExecutor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    """cp.async.bulk.wait_group N: all but the N newest groups are complete (global written)."""
    hopper(ex, "tma_store_wait").tma.wait(_n(e, targs), mask, writes=True)
    return _ZERO
