"""Parallel inclusive scans (`T.cumsum`, `T.cummax`) of fragments and shared tiles.

- `plan_register_scan(F, axis, reverse, threads)`: a fragment whose lines are dealt in rounds, as
  tsir's row-group tiles (and the rows of a full_row gemm accumulator) are: in round c, P holder
  threads (ranks g, at thread `base + g * stride`) each hold V consecutive positions,
  `position = (c * P + g) * V + v`, in registers that depend only on (line slot, c, v). The scan
  of one round is then a local scan of V registers, a scan of the P per-thread totals (warp
  shuffles inside a warp; shared memory across the warps of a line), and a carry from the rounds
  before. Nothing leaves the registers but the per-warp totals.
- `lower_line_scan`: a shared tile (or a fragment staged into one): G lanes (G <= 32) scan a line
  together, G positions at a time (a shuffle scan per chunk, the carry from the chunk's last lane).

Both keep the running value in the destination's dtype. The one-thread-per-row scan of scan.py
stays as the fallback their requirements select (threads that are not whole warps).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..buffer import BufferRegion, make_buffer
from ..dtype import DataType, int32
from ..errors import UnsupportedError
from ..expr import BufferLoad, Call, IntImm, PrimExpr, Select, Var, cast, const_value
from ..layout import Fragment
from ..stmt import Allocate, BufferStore, Evaluate, For, ForKind, IfThenElse, Stmt, seq
from .base import LowerArgs
from .copy import lower_fragment_transfer
from .reduce_lowering import register_held
from .reduce_plan import register_classes

__all__ = [
    "RegisterScan",
    "plan_register_scan",
    "lower_register_scan",
    "lower_line_scan",
    "lower_staged_scan",
]

Combine = Callable[[PrimExpr, PrimExpr], PrimExpr]


def _i(v: int) -> IntImm:
    return IntImm(v, int32)


def _sync() -> Stmt:
    return Evaluate(Call(int32, "sync_threads", ()))


@dataclass(frozen=True)
class RegisterScan:
    """See the module docstring."""

    regs: tuple[tuple[tuple[int, ...], ...], ...]
    """regs[k][c][v]: the register of line slot k, round c, position v (in scan order)."""
    holders: int
    """P: threads sharing a line."""
    stride: int
    """Thread distance between consecutive ranks (negative: ranks run down the threads)."""
    per_warp: int
    """Q: consecutive ranks inside one warp (P when a line stays in one warp)."""


@lru_cache(maxsize=128)
def plan_register_scan(src: Fragment, axis: int, reverse: bool, num_threads: int) -> RegisterScan:
    """The round structure of `src`'s lines along `axis` (1-D: 0), or UnsupportedError."""
    shape = src.const_input_shape()
    if (
        shape is None
        or len(shape) not in (1, 2)
        or src.replicate_size != 1
        or src.thread_range is not None
    ):
        raise UnsupportedError("the fragment is not a constant 1-D/2-D layout without replicas")
    t = src.table()
    local = np.zeros(t.size, dtype=np.int64)
    for out, ext in zip(t.outputs[:-1], src.const_output_shape()):
        local = local * ext + out
    thread = t.outputs[-1]
    line = np.zeros(t.size, dtype=np.int64) if len(shape) == 1 else t.inputs[1 - axis]
    pos = t.inputs[axis] if len(shape) == 2 else t.inputs[0]
    n = shape[axis] if len(shape) == 2 else shape[0]
    lines = 1 if len(shape) == 1 else shape[1 - axis]
    if reverse:
        pos = n - 1 - pos
    threads = max(int(thread.max()) + 1, num_threads)
    occ = np.full((threads, src.local_size), -1, dtype=np.int64)
    occ[thread, local] = line
    classes, slot = register_classes(occ, lines)
    # Holders of each line in scan order (of their first position), and V: the run of
    # consecutive positions a holder keeps.
    order = np.lexsort((pos, line))
    first: dict[tuple[int, int], int] = {}
    for e in order:
        first.setdefault((int(line[e]), int(thread[e])), int(pos[e]))
    ranks: dict[tuple[int, int], int] = {}
    holders: dict[int, list[int]] = {}
    for (o, th), _p0 in sorted(first.items(), key=lambda kv: (kv[0][0], kv[1])):
        holders.setdefault(o, []).append(th)
        ranks[(o, th)] = len(holders[o]) - 1
    counts = {len(h) for h in holders.values()}
    if len(counts) != 1:
        raise UnsupportedError("the lines of the fragment have different numbers of holders")
    p_count = counts.pop()
    e0 = order[0]
    own = np.sort(pos[(line == line[e0]) & (thread == thread[e0])])
    v_count = 1
    while v_count < own.size and own[v_count] == own[0] + v_count:
        v_count += 1
    if n % (p_count * v_count):
        raise UnsupportedError("the lines do not split into whole rounds")
    rounds = n // (p_count * v_count)
    g = np.array([ranks[(int(o), int(th))] for o, th in zip(line, thread)])
    if not np.array_equal((pos // v_count) % p_count, g):
        raise UnsupportedError("the holders do not take turns in rounds of consecutive positions")
    c, v = pos // (p_count * v_count), pos % v_count
    regs = np.full((len(classes), rounds, v_count), -1, dtype=np.int64)
    k_of_line = slot[line]
    prev = regs[k_of_line, c, v]
    if ((prev >= 0) & (prev != local)).any():
        raise UnsupportedError(
            "a (round, position) sits in different registers in different threads"
        )
    regs[k_of_line, c, v] = local
    if (regs < 0).any():
        raise UnsupportedError("some (round, position) of a line is held by no register")
    stride = 0
    if p_count > 1:
        hs = np.array([holders[o] for o in sorted(holders)])
        stride = int(hs[0, 1] - hs[0, 0])
        if not (hs - hs[:, :1] == np.arange(p_count) * stride).all():
            raise UnsupportedError("a line's holders are not evenly spaced threads")
        mag = abs(stride)
        if mag & (mag - 1) or (p_count & (p_count - 1)):
            raise UnsupportedError("a line's holders are not a power-of-two group of threads")
        rank = (hs // mag) % p_count
        want = np.arange(p_count) if stride > 0 else p_count - 1 - np.arange(p_count)
        if not (rank == want).all():
            raise UnsupportedError("a holder's rank is not a digit of its thread index")
    per_warp = p_count if p_count * abs(stride or 1) <= 32 else max(1, 32 // abs(stride))
    if p_count % per_warp:
        raise UnsupportedError("a line's holders do not split into whole warps")
    return RegisterScan(
        tuple(tuple(tuple(int(x) for x in row) for row in rk) for rk in regs),
        p_count,
        stride,
        per_warp,
    )


def lower_register_scan(
    src: BufferRegion,
    dst: BufferRegion,
    axis: int,
    reverse: bool,
    combine: Combine,
    identity: PrimExpr,
    args: LowerArgs,
) -> Stmt:
    """The round-by-round register scan of `plan_register_scan` (src and dst in one layout)."""
    layout = args.layout_map[src.buffer]
    assert isinstance(layout, Fragment)
    plan = plan_register_scan(layout, axis, reverse, args.num_threads)
    s_regs, d_regs = args.buffer_remap[src.buffer], args.buffer_remap[dst.buffer]
    dt = dst.buffer.dtype
    tid = args.thread_var
    p, q, stride = plan.holders, plan.per_warp, plan.stride
    mag = abs(stride) or 1
    rank: PrimExpr = (tid // mag) % p if p > 1 else _i(0)
    if stride < 0:
        rank = (p - 1) - rank
    seg = rank % q if q < p else rank  # rank inside this warp's segment
    k_count = len(plan.regs)
    carry = make_buffer(f"{dst.buffer.name}_carry", (k_count,), dt, "local")
    tmp = make_buffer(f"{dst.buffer.name}_scan", (len(plan.regs[0][0]) + 4,), dt, "local")
    vcount = len(plan.regs[0][0])

    def ld(b: object, k: int) -> BufferLoad:
        return BufferLoad(b, (_i(k),))  # pyright: ignore[reportArgumentType]  # narrowed by a check above that the checker cannot follow

    def st(b: object, k: int, x: PrimExpr) -> Stmt:
        return BufferStore(b, x, (_i(k),))  # pyright: ignore[reportArgumentType]  # narrowed by a check above that the checker cannot follow

    ws = None
    warps_per_line = p // q
    if warps_per_line > 1:
        if args.add_workspace is None:
            raise UnsupportedError(
                "a scan across warps needs a shared workspace", where="LowerTileOp"
            )
        ws = args.add_workspace(
            f"{dst.buffer.name}_scan", (k_count, args.num_threads), dt, "shared.dyn"
        )
    base = tid - rank * stride if p > 1 else tid
    out: list[Stmt] = [st(carry, k, identity) for k in range(k_count)]
    for c in range(len(plan.regs[0])):
        for k in range(k_count):
            held = register_held(layout, plan.regs[k][c][0], tid, args.num_threads)
            for v in range(vcount):  # the thread's local inclusive scan
                x = _cast(BufferLoad(s_regs, (_i(plan.regs[k][c][v]),)), dt)
                if held is not None:
                    x = Select(held, x, identity)
                out.append(st(tmp, v, combine(ld(tmp, v - 1), x) if v else x))
            out.append(st(tmp, vcount, ld(tmp, vcount - 1)))  # its scan over the warp's ranks
            d = 1
            # Every shuffle is a statement of its own, run by every thread: never under a `?:`
            # or the `held` guard (a lane that skips it leaves the warp's shuffle incomplete).
            up = vcount + 3
            while d < q:
                out.append(st(tmp, up, _shift(ld(tmp, vcount), d * mag, stride)))
                out.append(
                    st(
                        tmp,
                        vcount,
                        Select(seg >= d, combine(ld(tmp, up), ld(tmp, vcount)), ld(tmp, vcount)),
                    )
                )
                d *= 2
            if q > 1:  # exclusive: the ranks before this one
                out.append(st(tmp, up, _shift(ld(tmp, vcount), mag, stride)))
                out.append(st(tmp, vcount + 2, Select(seg > 0, ld(tmp, up), identity)))
            else:
                out.append(st(tmp, vcount + 2, identity))
            if ws is None:
                last_lane = (base + (p - 1) * stride) % 32
                round_total = _broadcast(ld(tmp, vcount), last_lane) if q > 1 else ld(tmp, vcount)
                out.append(st(tmp, vcount + 1, round_total))
            else:
                # The last rank of each warp segment publishes the segment's total.
                out.append(IfThenElse(seg == q - 1, BufferStore(ws, ld(tmp, vcount), (_i(k), tid))))
                out.append(_sync())
                mine = rank // q
                earlier: PrimExpr = identity
                whole: PrimExpr = identity
                for w in range(warps_per_line):
                    x = BufferLoad(ws, (_i(k), base + ((w + 1) * q - 1) * stride))
                    earlier = (
                        Select(mine > w, combine(earlier, x), earlier)
                        if w
                        else Select(mine > 0, x, identity)
                    )
                    whole = combine(whole, x) if w else x
                out.append(st(tmp, vcount + 2, combine(earlier, ld(tmp, vcount + 2))))
                out.append(st(tmp, vcount + 1, whole))
                out.append(_sync())
            lead = combine(ld(carry, k), ld(tmp, vcount + 2))
            stores = [
                BufferStore(d_regs, combine(lead, ld(tmp, v)), (_i(plan.regs[k][c][v]),))
                for v in range(vcount)
            ]
            body = seq(*stores)
            out.append(IfThenElse(held, body) if held is not None else body)
            out.append(st(carry, k, combine(ld(carry, k), ld(tmp, vcount + 1))))
    return Allocate(carry, Allocate(tmp, seq(*out)))


def _cast(x: PrimExpr, dt: DataType) -> PrimExpr:
    return x if x.dtype == dt else cast(dt, x)


def _shift(x: PrimExpr, delta: int, stride: int) -> PrimExpr:
    """The value of the rank `delta` threads before this one in scan order."""
    op = "tsir.warp.shfl_up" if stride >= 0 else "tsir.warp.shfl_down"
    return Call(x.dtype, op, (x, _i(delta), _i(32)))


def _broadcast(x: PrimExpr, lane: PrimExpr) -> PrimExpr:
    return Call(x.dtype, "tsir.warp.shfl_idx", (x, lane, _i(32)))


# -- shared tiles ----------------------------------------------------------------------------------


def lower_line_scan(
    src: BufferRegion,
    dst: BufferRegion,
    axis: int,
    reverse: bool,
    combine: Combine,
    identity: PrimExpr,
    args: LowerArgs,
) -> Stmt:
    """G lanes per line of shared tiles (src and dst may be one region), G positions a step."""
    shape = [int(const_value(e)) for e in src.extents]  # pyright: ignore[reportArgumentType]  # a constant here: checked by const_value above
    n = shape[axis]
    lines = 1
    for k, e in enumerate(shape):
        if k != axis:
            lines *= e
    group = 1
    while group < min(32, n):
        group *= 2
    per_block = args.num_threads // group
    trips = -(-lines // per_block)
    tid = args.thread_var
    it, c = Var("it", int32), Var("c", int32)
    line = it * per_block + tid // group if trips > 1 else tid // group
    lane = tid % group
    dt = dst.buffer.dtype
    carry = make_buffer(f"{dst.buffer.name}_carry", (1,), dt, "local")
    val = make_buffer(f"{dst.buffer.name}_val", (2,), dt, "local")
    at = BufferLoad(carry, (_i(0),))
    y = BufferLoad(val, (_i(0),))
    step = c * group + lane
    p = (n - 1 - step) if reverse else step
    other = [k for k in range(len(shape)) if k != axis]

    def index(r: BufferRegion) -> tuple[PrimExpr, ...]:
        idx: list[PrimExpr] = [_i(0)] * len(shape)
        rem = line
        for k in reversed(other):
            idx[k] = rem % shape[k] if len(other) > 1 else rem
            rem = rem // shape[k]
        idx[axis] = p
        return tuple(m + x for m, x in zip(r.mins, idx))

    valid: PrimExpr | None = None
    if n % group:
        valid = step < n
    if lines % per_block:
        valid = (line < lines) if valid is None else valid & (line < lines)
    x = _cast(BufferLoad(src.buffer, index(src)), dt)
    body: list[Stmt] = [
        BufferStore(val, Select(valid, x, identity) if valid is not None else x, (_i(0),))
    ]
    d = 1
    while d < group:  # the shuffle first, in every lane; then the lanes that have a predecessor
        body.append(
            BufferStore(val, Call(dt, "tsir.warp.shfl_up", (y, _i(d), _i(group))), (_i(1),))
        )
        body.append(
            BufferStore(val, Select(lane >= d, combine(BufferLoad(val, (_i(1),)), y), y), (_i(0),))
        )
        d *= 2
    body.append(BufferStore(val, combine(at, y), (_i(0),)))
    write = BufferStore(dst.buffer, y, index(dst))
    body.append(IfThenElse(valid, write) if valid is not None else write)
    body.append(
        BufferStore(carry, Call(dt, "tsir.warp.shfl_idx", (y, _i(group - 1), _i(group))), (_i(0),))
    )
    chunks = For(c, _i(0), _i(-(-n // group)), ForKind.SERIAL, seq(*body))
    one_line = seq(BufferStore(carry, identity, (_i(0),)), chunks)
    loop: Stmt = For(it, _i(0), _i(trips), ForKind.SERIAL, one_line) if trips > 1 else one_line
    return Allocate(carry, Allocate(val, loop))


def lower_staged_scan(
    src: BufferRegion,
    dst: BufferRegion,
    axis: int,
    reverse: bool,
    combine: Combine,
    identity: PrimExpr,
    args: LowerArgs,
    what: str,
) -> Stmt:
    """Fragment operands through a shared workspace, scanned there by `lower_line_scan` (shared
    operands directly)."""
    if "local.fragment" not in (src.buffer.scope, dst.buffer.scope):
        return lower_line_scan(src, dst, axis, reverse, combine, identity, args)
    if args.add_workspace is None:
        raise UnsupportedError(
            f"{what} of a fragment needs a shared workspace", where="LowerTileOp"
        )
    frag = src if src.buffer.scope == "local.fragment" else dst
    shape = tuple(int(const_value(e)) for e in src.extents)  # pyright: ignore[reportArgumentType]  # a constant here: checked by const_value above
    ws = args.add_workspace(f"{frag.buffer.name}_lines", shape, dst.buffer.dtype, "shared.dyn")
    whole = BufferRegion.full(ws)

    def store(d: BufferLoad, v: PrimExpr) -> Stmt:
        return BufferStore(d.buffer, _cast(v, d.buffer.dtype), d.indices)

    parts: list[Stmt] = []
    scan_in, scan_out = src, dst
    if src.buffer.scope == "local.fragment":
        parts += [lower_fragment_transfer(src, whole, args, store, what), _sync()]
        scan_in = whole
    if dst.buffer.scope == "local.fragment":
        scan_out = whole
    parts.append(lower_line_scan(scan_in, scan_out, axis, reverse, combine, identity, args))
    if dst.buffer.scope == "local.fragment":
        parts += [_sync(), lower_fragment_transfer(whole, dst, args, store, what)]
    return seq(*parts)
