"""TileScale's distributed tile operators at the tile level, by their documented semantics
(tsir/tileop/distributed.py, DESIGN): a block- or warp-scoped copy happens once per block / warp
(its threads pass the same arguments), `T.st`/`T.ld`/`T.wait_*` in every calling thread, and
`T.barrier_blocks` once per block, with the same protocol on the barrier's values as the thread
level (dist_calls.barrier_protocol), so both levels leave the same numbers in `bar`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..dtype import int32
from ..expr import BufferLoad, IntImm
from ..stmt import BufferStore
from ..tileop.distributed import BarrierBlocksOp, GetOp, LdOp, PutOp, StOp, WaitOp
from .dist_calls import (
    _SYMBOL,
    RELATIONS,
    _flag_wait,
    _load,
    _store,
    _world,
    barrier_protocol,
    copy_bytes,
    remote_view,
)
from .errors import InterpretUnsupportedError
from .lanes import Mask
from .memory import Pointer
from .values import cast_array

if TYPE_CHECKING:
    from .tile import TileExecutor

__all__ = ["DIST_TILE_OPS"]


def _pointer(ex: TileExecutor, load: BufferLoad, pe: Any, mask: Mask) -> Pointer:
    p = ex.ev.pointer(load, mask)
    if pe is not None:
        p.rank = ex.ev.eval(pe, mask).astype(np.int64)
    return p


def _lane_value(ex: TileExecutor, v: np.ndarray, lanes: np.ndarray, what: str) -> int:
    b = np.broadcast_to(v, (ex.ctx.lanes.n,))[lanes]
    if (b != b[0]).any():
        raise InterpretUnsupportedError(
            f"{what}: the threads of one group pass different arguments"
        )
    return int(b[0])


def _remote_copy(ex: TileExecutor, op: Any, mask: Mask, put: bool) -> None:
    """put/get_{warp,block}: `size` elements, cut to what both buffers hold from their start
    elements (as the lowering clamps it) and to zero when negative."""
    what = f"T.{'put' if put else 'get'}_{op.scope}"
    src = _pointer(ex, op.src, None if put else op.pe, mask)
    dst = _pointer(ex, op.dst, op.pe if put else None, mask)
    size = ex.ev.eval(op.size, mask)
    lm = ex.ctx.lanes
    key = lm.warp_of_lane if op.scope == "warp" else lm.block_of_lane
    if op.scope == "warp":
        ex.full_warps(mask, what)
    for k in np.unique(key[mask.idx]).tolist():
        lanes = mask.idx[key[mask.idx] == k]
        lead = int(lanes[0])
        n = _lane_value(ex, size, lanes, what)
        ends = []
        for p in (src, dst):
            e = _lane_value(ex, np.broadcast_to(p.elem, (lm.n,)), lanes, what)
            ends.append(p.view.span - e)
        n = max(0, min(n, *ends))
        d, s = dst, src
        for p, attr in ((dst, "d"), (src, "s")):
            if p.rank is not None:
                pe = _lane_value(ex, p.rank, lanes, what)
                q = Pointer(remote_view(ex, p.view, pe), p.elem, p.index)
                d, s = (q, s) if attr == "d" else (d, q)
        if n:
            copy_bytes(ex, d, s, n * src.view.itemsize, lead, what=what)


def _put(ex: TileExecutor, op: PutOp, mask: Mask) -> None:
    _remote_copy(ex, op, mask, True)


def _get(ex: TileExecutor, op: GetOp, mask: Mask) -> None:
    _remote_copy(ex, op, mask, False)


def _st(ex: TileExecutor, op: StOp, mask: Mask) -> None:
    _store(ex, _pointer(ex, op.dst, op.pe, mask), ex.ev.eval(op.value, mask), mask)


def _ld(ex: TileExecutor, op: LdOp, mask: Mask) -> None:
    src = _pointer(ex, op.src, op.pe, mask)
    v = cast_array(_load(ex, src, mask), op.src.buffer.dtype, op.value.buffer.dtype)
    view = ex.ev.view(op.value.buffer)
    idx = [ex.ev.index(i, mask) for i in op.value.indices]
    ex.store(BufferStore(op.value.buffer, IntImm(0, int32), op.value.indices), view, idx, v, mask)


def _wait(ex: TileExecutor, op: WaitOp, mask: Mask) -> None:
    flag = _pointer(ex, op.flag, op.pe, mask)
    _flag_wait(
        ex,
        flag,
        ex.ev.eval(op.value, mask),
        RELATIONS[op.relation.upper()],
        mask,
        _SYMBOL[op.relation.upper()],
        op.timeout_cycles,
    )


def _barrier(ex: TileExecutor, op: BarrierBlocksOp, mask: Mask) -> None:
    bar = _pointer(ex, op.barrier, None, mask)
    _, me, n = _world(ex)
    blocks = int(np.prod(ex.ctx.grid_dims)) if ex.ctx.grid_dims else 1
    lead = int(mask.idx[0])
    barrier_protocol(ex, bar, [lead], me, n, blocks, op.timeout_cycles)


DIST_TILE_OPS: dict[type, Callable[..., None]] = {
    PutOp: _put,
    GetOp: _get,
    StOp: _st,
    LdOp: _ld,
    WaitOp: _wait,
    BarrierBlocksOp: _barrier,
}
