"""Reference semantics of the distributed device-header functions (distributed.h, ldst.h, sync.h),
NVSHMEM's device calls and the warp votes: entries of the one device-call table (device_calls.py).

Every function takes the executing lanes' values; remote addresses carry the target rank per lane
(`tsir::remote_ptr`). They run at the thread level and, for the calls a tile program makes itself
(`T.get_rank()`, `T.atom_add`, `T.nvshmem.*`, fences), at the tile level too. Ranks execute with
sequential consistency (see world.py): fences and memory orders change nothing here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..expr import Call
from .device_calls import device_call
from .errors import (
    DeadlockError,
    DivergentWarpError,
    InterpretUnsupportedError,
    OutOfBoundsError,
)
from .lanes import Mask
from .memory import Pointer, View
from .report import describe_stmt, fmt_idx

if TYPE_CHECKING:
    from .executor import Executor

__all__ = ["RELATIONS", "resolve", "remote_view"]

_ZERO = np.zeros(1, dtype=np.int32)
RELATIONS: dict[str, Callable[[Any, Any], Any]] = {
    "EQ": np.equal,
    "NE": np.not_equal,
    "GE": np.greater_equal,
    "LE": np.less_equal,
    "GT": np.greater,
    "LT": np.less,
}
_SYMBOL = {"EQ": "==", "NE": "!=", "GE": ">=", "LE": "<=", "GT": ">", "LT": "<"}


def _world(ex: Executor) -> tuple[Any, int, int]:
    rt = ex.ctx.runtime
    if rt is None:
        return None, 0, 1
    return rt.world, rt.rank, rt.world.ranks


def _ptr(ex: Executor, e: Any, mask: Mask, what: str) -> Pointer:
    p = ex.ev.eval(e, mask)
    if not isinstance(p, Pointer):
        raise InterpretUnsupportedError(f"{what} expects an address, got `{e}`")
    return p


def remote_view(ex: Executor, view: View, pe: int) -> View:
    """`view`'s buffer in rank `pe`'s memory (the same parameter: symmetric memory)."""
    world, me, n = _world(ex)
    if not 0 <= pe < n:
        raise OutOfBoundsError(
            f"rank {pe} is not a rank of this run ({n} ranks){ex.ctx.where()}",
            accesses=[ex.ctx.access("remote access", None)],
            buffer=view.name,
        )
    if pe == me:
        return view
    key = getattr(view.region, "key", None)
    if world is None or key is None:
        raise InterpretUnsupportedError(
            f"a remote address of `{view.name}`, which is not a parameter of the function (only "
            f"symmetric parameters exist on every rank)"
        )
    region = world.regions[pe][key]
    return View(view.buffer, region, view.byte_offset, view.shape, view.strides, view.table)


def resolve(ex: Executor, ptr: Pointer, mask: Mask) -> list[tuple[Pointer, Mask]]:
    """The pointer split by target rank: (a pointer into that rank's memory, its lanes)."""
    if ptr.rank is None:
        return [(ptr, mask)]
    pes = np.broadcast_to(ptr.rank, (mask.n,))
    out = []
    for pe in np.unique(pes[mask.idx]).tolist():
        sub = mask & (pes == pe)
        out.append((Pointer(remote_view(ex, ptr.view, int(pe)), ptr.elem, ptr.index), sub))
    return out


def _load(ex: Executor, ptr: Pointer, mask: Mask) -> np.ndarray:
    out = np.zeros(mask.n, dtype=ptr.view.npdt)
    for p, m in resolve(ex, ptr, mask):
        out[m.idx] = ex.mem.read_elems(p, 1, m, "load")[:, 0]
    return out


def _store(ex: Executor, ptr: Pointer, value: np.ndarray, mask: Mask) -> None:
    v = np.broadcast_to(value, (mask.n,)).astype(ptr.view.npdt)
    for p, m in resolve(ex, ptr, mask):
        ex.mem.write_elems(p, v[m.idx][:, None], m, "store")


def _atomic_add(ex: Executor, ptr: Pointer, value: np.ndarray, mask: Mask) -> np.ndarray:
    out = np.zeros(mask.n, dtype=ptr.view.npdt)
    for p, m in resolve(ex, ptr, mask):
        out = np.where(m.arr, ex.mem.atomic_add(p, value, m), out)
    return out


def _where(ex: Executor, ptr: Pointer, lane: int) -> str:
    pe = (
        ""
        if ptr.rank is None
        else f" on rank {int(np.broadcast_to(ptr.rank, (ex.ctx.lanes.n,))[lane])}"
    )
    idx = [int(np.broadcast_to(i, (ex.ctx.lanes.n,))[lane]) for i in ptr.index]
    return f"`{ptr.view.name}`{idx}{pe}"


# -- distributed.h -------------------------------------------------------------------------------


@device_call("tsir.distributed.rank")
def _rank(ex: Executor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    return np.array([_world(ex)[1]], dtype=np.int32)


@device_call("tsir.distributed.num_ranks")
def _num_ranks(ex: Executor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    return np.array([_world(ex)[2]], dtype=np.int32)


@device_call("tsir.distributed.remote_ptr")
def _remote_ptr(ex: Executor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    """remote_ptr(p, pe): the same offset into rank pe's symmetric memory."""
    p = _ptr(ex, e.args[0], mask, "remote_ptr")
    pe = ex.ev.eval(e.args[1], mask).astype(np.int64)
    if p.view.buffer.scope != "symmetric":
        raise InterpretUnsupportedError(
            f"remote_ptr of `{p.view.name}` ({p.view.scope}): only symmetric buffers have peers"
        )
    return Pointer(p.view, p.elem, p.index, rank=pe)


def _ownership(dmod: int, smod: int, n: int, size: int) -> np.ndarray:
    """Which thread (0..size-1) of a group copies each byte in copy_group (distributed.h): the
    widest word both addresses allow, the head bytes before dst's first aligned word and the tail
    after the last one bytewise; word or byte k goes to thread k % size."""
    x = (dmod ^ smod) & 15
    word = 16 if x == 0 else 8 if x % 8 == 0 else 4 if x % 4 == 0 else 2 if x % 2 == 0 else 1
    j = np.arange(n, dtype=np.int64)
    if word == 1:
        return j % size
    head = min((word - (dmod & (word - 1))) & (word - 1), n)
    words = (n - head) // word
    body_end = head + words * word
    return np.where(j < head, j, np.where(j < body_end, (j - head) // word, j - body_end)) % size


def _span_check(ex: Executor, view: View, start: int, nbytes: int, what: str, lane: int) -> None:
    lo, hi = view.byte_offset, view.byte_offset + view.span * view.itemsize
    if start < lo or start + nbytes > hi:
        raise OutOfBoundsError(
            f"{what} of bytes [{start - lo}, {start - lo + nbytes}) of `{view.name}`, which has "
            f"{hi - lo}{ex.ctx.where()}",
            accesses=[ex.ctx.access(what, [lane])],
            buffer=view.name,
        )


def copy_bytes(
    ex: Executor,
    dst: Pointer,
    src: Pointer,
    nbytes: int,
    lane: int,
    owner_lanes: Any = None,
    sel: np.ndarray | None = None,
    what: str = "copy",
) -> None:
    """Copy bytes between two single-lane addresses (sel: which of the bytes; all by default)."""
    dv, sv = dst.view, src.view
    db = dv.byte_offset + int(np.broadcast_to(dst.elem, (ex.ctx.lanes.n,))[lane]) * dv.itemsize
    sb = sv.byte_offset + int(np.broadcast_to(src.elem, (ex.ctx.lanes.n,))[lane]) * sv.itemsize
    _span_check(ex, dv, db, nbytes, f"{what} destination", lane)
    _span_check(ex, sv, sb, nbytes, f"{what} source", lane)
    dg = int(dv.region.groups_of(np.array([lane]))[0])
    sg = int(sv.region.groups_of(np.array([lane]))[0])
    j = np.arange(nbytes) if sel is None else np.flatnonzero(sel)
    data = sv.region.data[sg, sb + j].copy()
    for v, g, b, write in ((sv, sg, sb, False), (dv, dg, db, True)):
        sh = v.region.shadow
        if sh is not None and ex.ctx.check and j.size:
            lanes = np.full(j.size, lane) if owner_lanes is None else owner_lanes
            fi = g * v.region.row + b + j
            (sh.write if write else sh.read)(ex.ctx, fi, lanes, v.name, v.byte_offset)
    dv.region.data[dg, db + j] = data


@device_call("tsir.distributed.copy_group")
def _copy_group(ex: Executor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    """copy_group(dst, src, nbytes, idx, size): thread idx of a group of size copies its share."""
    dst = _ptr(ex, e.args[0], mask, "copy_group")
    src = _ptr(ex, e.args[1], mask, "copy_group")
    vals = [np.broadcast_to(ex.ev.eval(a, mask).astype(np.int64), (mask.n,)) for a in e.args[2:]]
    nbytes, idx, size = vals
    lanes = mask.idx
    dpe = np.broadcast_to(dst.rank, (mask.n,)) if dst.rank is not None else np.full(mask.n, -1)
    spe = np.broadcast_to(src.rank, (mask.n,)) if src.rank is not None else np.full(mask.n, -1)
    de = np.broadcast_to(dst.elem, (mask.n,))
    se = np.broadcast_to(src.elem, (mask.n,))
    key = np.stack([dpe, spe, de, se, nbytes, size, ex.ctx.lanes.block_of_lane], axis=1)[lanes]
    groups, inv = np.unique(key, axis=0, return_inverse=True)
    for k, g in enumerate(groups):
        members = lanes[inv.reshape(-1) == k]
        lead = int(members[0])
        n = max(int(g[4]), 0)
        if n == 0:
            continue
        dptr = Pointer(
            remote_view(ex, dst.view, int(g[0])) if g[0] >= 0 else dst.view, dst.elem, dst.index
        )
        sptr = Pointer(
            remote_view(ex, src.view, int(g[1])) if g[1] >= 0 else src.view, src.elem, src.index
        )
        dmod = (dptr.view.byte_offset + int(g[2]) * dptr.view.itemsize) & 15
        smod = (sptr.view.byte_offset + int(g[3]) * sptr.view.itemsize) & 15
        owner = _ownership(dmod, smod, n, int(g[5]))
        ids = idx[members]
        lane_of = np.full(int(g[5]), -1)
        lane_of[ids[(ids >= 0) & (ids < g[5])]] = members[(ids >= 0) & (ids < g[5])]
        sel = lane_of[owner] >= 0
        copy_bytes(
            ex, dptr, sptr, n, lead, owner_lanes=lane_of[owner][sel], sel=sel, what="copy_group"
        )
    return _ZERO


@device_call("tsir.distributed.barrier_blocks")
def _barrier_blocks(ex: Executor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    """barrier_blocks<FENCE>(bar[, timeout]): every block of every rank arrives, then all leave
    (the arrival-count / epoch protocol of distributed.h, on `bar`'s real values)."""
    bar = _ptr(ex, e.args[0], mask, "barrier_blocks")
    timeout = int(ex.ev.eval(e.args[1], mask)[0]) if len(e.args) > 1 else 0
    ex.block_barrier(mask, "barrier_blocks")
    lm = ex.ctx.lanes
    arrivers = [int(x) for x in mask.idx if lm.thread_of_lane[x] == 0]
    _, me, n = _world(ex)
    blocks = int(np.prod(ex.ctx.grid_dims)) if ex.ctx.grid_dims else 1
    barrier_protocol(ex, bar, arrivers, me, n, blocks, timeout)
    ex.block_barrier(mask, "barrier_blocks")
    return _ZERO


def _u32(view: View, elem: int) -> tuple[np.ndarray, int]:
    b = view.byte_offset + elem * 4
    return view.region.data[0], b


def _get(view: View, elem: int) -> int:
    row, b = _u32(view, elem)
    return int(row[b : b + 4].view(np.uint32)[0])


def _add(view: View, elem: int, delta: int) -> int:
    row, b = _u32(view, elem)
    old = int(row[b : b + 4].view(np.uint32)[0])
    row[b : b + 4] = np.array([(old + delta) & 0xFFFFFFFF], dtype=np.uint32).view(np.uint8)
    return old


def barrier_protocol(
    ex: Executor, bar: Pointer, arrivers: list[int], me: int, n: int, blocks: int, timeout: int
) -> None:
    """distributed.h's barrier_blocks for the blocks whose thread 0 is in `arrivers`."""
    base = int(np.broadcast_to(bar.elem, (ex.ctx.lanes.n,))[arrivers[0]]) if arrivers else 0
    view = bar.view
    if base < 0 or base + n > view.span:
        raise OutOfBoundsError(
            f"barrier_blocks: `{view.name}` needs {n} int32 slots from element {base}",
            accesses=[ex.ctx.access("barrier", arrivers[:1])],
            buffer=view.name,
        )
    if blocks >= 1 << 20:
        raise InterpretUnsupportedError("barrier_blocks supports up to 2^20 - 1 blocks per grid")
    own = base + me
    olds = [_add(view, own, 1) for _ in arrivers]
    note = f" (timeout {timeout} cycles)" if timeout > 0 else " (no timeout)"
    stmt = ex.ctx.stmt
    # The blocks arrive together (lockstep); the one completing the epoch goes first, since the
    # others wait for it.
    order = sorted(zip(arrivers, olds), key=lambda lo: (lo[1] & 0xFFFFF) != blocks - 1)
    for lane, old in order:
        epoch = old >> 20
        who = ex.ctx.lanes.who(lane)
        if (old & 0xFFFFF) == blocks - 1:
            for j in range(n):
                if j != me:
                    _add(remote_view(ex, view, j), base + me, 1)

            def peers_done(epoch: int = epoch) -> bool:
                return all(
                    ((_get(view, base + j) - (epoch + 1)) & 0xFFF) < 0x800
                    for j in range(n)
                    if j != me
                )

            def waiting(epoch: int = epoch, who: Any = who) -> str:
                late = [
                    j
                    for j in range(n)
                    if j != me and ((_get(view, base + j) - (epoch + 1)) & 0xFFF) >= 0x800
                ]
                return (
                    f"rank {me} block {fmt_idx(who[0])}: barrier_blocks{note} waits for rank(s) "
                    f"{late} "
                    f"to complete epoch {epoch + 1}\n      {_line(stmt)}"
                )

            _wait(ex, peers_done, waiting)
            _add(view, own, (1 << 20) - blocks)
        else:

            def released(epoch: int = epoch) -> bool:
                return (_get(view, own) >> 20) != epoch

            def waiting_local(epoch: int = epoch, who: Any = who) -> str:
                cnt = _get(view, own) & 0xFFFFF
                return (
                    f"rank {me} block {fmt_idx(who[0])}: barrier_blocks{note} waits for the other "
                    f"blocks of rank {me} ({cnt + 1 if cnt < blocks else cnt} of {blocks} "
                    "arrived)\n"
                    f"      {_line(stmt)}"
                )

            _wait(ex, released, waiting_local)


def _line(stmt: Any) -> str:
    return describe_stmt(stmt)


def _wait(ex: Executor, check: Callable[[], bool], describe: Callable[[], str]) -> None:
    rt = ex.ctx.runtime
    if rt is None:
        if not check():
            raise DeadlockError(
                "a wait that nothing can ever satisfy (one rank, no other task):\n  " + describe()
            )
        return
    rt.world.wait_until(check, describe)


# -- sync.h and ldst.h -----------------------------------------------------------------------------


@device_call("tsir.sync.fence_cta")
@device_call("tsir.sync.fence_gpu")
@device_call("tsir.sync.fence_sys")
def _fence(ex: Executor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    """fence.acq_rel.{cta,gpu,sys}: nothing to do under sequential consistency."""
    return _ZERO


@device_call("tsir.sync.wait")
def _wait_call(ex: Executor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    """wait<REL[, SCOPE, SPACE]>(flag, want[, timeout, rank, peer]): every calling thread spins
    until `*flag REL want`."""
    rel = targs[0].replace("tsir::", "")
    fn = RELATIONS.get(rel)
    if fn is None:
        raise InterpretUnsupportedError(f"tsir.sync.wait with relation {targs[0]!r}")
    flag = _ptr(ex, e.args[0], mask, "wait")
    want = ex.ev.eval(e.args[1], mask)
    timeout = int(ex.ev.eval(e.args[2], mask)[0]) if len(e.args) > 2 else 0
    _flag_wait(ex, flag, want, fn, mask, _SYMBOL[rel], timeout)
    return _ZERO


def _flag_wait(
    ex: Executor,
    flag: Pointer,
    want: np.ndarray,
    fn: Callable[[Any, Any], Any],
    mask: Mask,
    rel: str,
    timeout: int,
) -> None:
    w = np.broadcast_to(want, (mask.n,)).astype(flag.view.npdt)
    stmt = ex.ctx.stmt
    me = _world(ex)[1]

    def unmet() -> np.ndarray:
        v = _load(ex, flag, mask)
        return mask.idx[~fn(v[mask.idx], w[mask.idx])]

    def check() -> bool:
        return unmet().size == 0

    def describe() -> str:
        bad = unmet()
        lane = int(bad[0]) if bad.size else int(mask.idx[0])
        v = _load(ex, flag, mask)[lane]
        b, t = ex.ctx.lanes.who(lane)
        note = (
            f"its timeout of {timeout} cycles would trap"
            if timeout > 0
            else "it has no timeout: it would hang"
        )
        more = f" (and {bad.size - 1} more threads)" if bad.size > 1 else ""
        return (
            f"rank {me} block {fmt_idx(b)} thread {fmt_idx(t)}{more}: waits for "
            f"{_where(ex, flag, lane)} {rel} {w[lane].item()}, which holds {v.item()}; {note}\n"
            f"      {_line(stmt)}"
        )

    _wait(ex, check, describe)


def _ldst_targs(targs: tuple[str, ...]) -> list[str]:
    return [t.replace("tsir::", "") for t in targs]


@device_call("tsir.ldst.st")
def _st(ex: Executor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    """st<SEM, ...>(p, v): one store at p's type."""
    p = _ptr(ex, e.args[0], mask, "st")
    v = ex.ev.eval(e.args[1], mask)
    _store(ex, p, v, mask)
    return _ZERO


@device_call("tsir.ldst.ld")
def _ld(ex: Executor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    """ld<SEM, ...>(p): one load."""
    return _load(ex, _ptr(ex, e.args[0], mask, "ld"), mask)


@device_call("tsir.ldst.atom_add")
def _atom_add(ex: Executor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    """atom_add<SEM, SCOPE>(p, v) -> old: atomic in lane order."""
    p = _ptr(ex, e.args[0], mask, "atom_add")
    v = ex.ev.eval(e.args[1], mask)
    return _atomic_add(ex, p, v, mask)


# -- warp votes ------------------------------------------------------------------------------------


def _vote(ex: Executor, e: Call, mask: Mask, any_: bool) -> np.ndarray:
    m = np.broadcast_to(ex.ev.eval(e.args[0], mask).astype(np.int64) & 0xFFFFFFFF, (mask.n,))
    pred = np.broadcast_to(ex.ev.eval(e.args[1], mask).astype(bool), (mask.n,))
    lm = ex.ctx.lanes
    lane_in_warp = lm.thread_of_lane % 32
    out = np.zeros(mask.n, dtype=bool)
    for w in np.unique(lm.warp_of_lane[mask.idx]).tolist():
        lanes = np.flatnonzero(lm.warp_of_lane == w)
        bits = int(m[lanes[mask.arr[lanes]][0]])
        members = lanes[((bits >> lane_in_warp[lanes]) & 1) == 1]
        if not mask.arr[members].all():
            raise DivergentWarpError(
                f"{e.op[len('extern:') :]} with mask {bits:#x} names lanes that do not execute "
                f"it{ex.ctx.where()}",
                accesses=[
                    ex.ctx.access("executed", lanes[mask.arr[lanes]]),
                    ex.ctx.access("not executed", members[~mask.arr[members]]),
                ],
            )
        r = pred[members].any() if any_ else pred[members].all()
        out[lanes[mask.arr[lanes]]] = r
    return out


@device_call("extern:__any_sync")
def _any_sync(ex: Executor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    """__any_sync(mask, pred): true in every named lane when pred is true in any of them."""
    return _vote(ex, e, mask, True)


@device_call("extern:__all_sync")
def _all_sync(ex: Executor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    """__all_sync(mask, pred): true in every named lane when pred is true in all of them."""
    return _vote(ex, e, mask, False)
