"""The lowerings of `T.reduce_*` that work from any fragment layout, and from shared tiles.

- `lower_fragment_reduce`: a fragment source of any layout (`reduce_plan.plan_line_reduction`):
  each thread folds the registers of each class into a partial result, a butterfly of warp
  shuffles combines the lanes sharing a line, shared memory the warps sharing it; the result goes
  to a fragment laid out as the plan says (straight into its registers), to a fragment of another
  layout (through a shared workspace), or to a shared tile (by the first holder of each line).
- `lower_staged_reduce`: a fragment the plan does not fit (a line whose holders are no butterfly
  group): staged through a shared workspace, then reduced as a shared tile;
- `lower_shared_reduce`: a shared-memory source: G lanes (a power of two <= 32) per line fold a
  strided part of it and combine with shuffles; lane 0 writes the line's result to a shared
  destination, or to a shared workspace that the threads holding a fragment destination read.

`clear=False` combines each result with the destination's value once, after the exchange (never
before a shuffle, which would count it once per lane).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from ..buffer import Buffer, BufferRegion, make_buffer
from ..dtype import int32
from ..errors import UnsupportedError
from ..expr import BufferLoad, Call, IntImm, PrimExpr, Var, const_value
from ..layout import Fragment, require_fragment
from ..layout.analysis import equivalent
from ..layout.numeric import const_shape
from ..stmt import Allocate, BufferStore, Evaluate, For, ForKind, IfThenElse, Stmt, seq
from ..visitor import substitute
from .base import FRAGMENT, LowerArgs
from .copy import lower_fragment_transfer
from .fragment_lowering import iterate_fragment
from .reduce_plan import plan_line_reduction

if TYPE_CHECKING:
    from .reduce import Reduce

__all__ = ["lower_fragment_reduce", "lower_shared_reduce", "lower_staged_reduce", "register_held"]

Combine = Callable[[PrimExpr, PrimExpr], PrimExpr]


def _i(v: int) -> IntImm:
    return IntImm(v, int32)


def _sync() -> Stmt:
    return Evaluate(Call(int32, "sync_threads", ()))


def _shfl(x: PrimExpr, mask: int) -> PrimExpr:
    return Call(x.dtype, "tsir.reduce.shfl_xor", (x, _i(mask)))


def register_held(layout: Fragment, reg: int, tid: PrimExpr, num_threads: int) -> PrimExpr | None:
    """The condition under which thread `tid` holds register `reg` of `layout` (None: every thread
    of the block does)."""
    t = layout.table()
    local = np.zeros(t.size, dtype=np.int64)
    for out, ext in zip(t.outputs[:-1], layout.const_output_shape()):
        local = local * ext + out
    holders = np.unique(t.outputs[-1][local == reg])
    if holders.size == num_threads:
        return None
    if holders.size and np.array_equal(holders, np.arange(holders.size)):
        return tid < holders.size
    inv, guard = layout.inverse_with_guard()
    ext = layout.const_output_shape()
    parts: list[int] = []
    rest = reg
    for e in reversed(ext):
        parts.append(rest % e)
        rest //= e
    mapping = dict(zip(inv.vars, [*(_i(p) for p in reversed(parts)), tid]))
    cond = substitute(guard, mapping)
    if layout.thread_extent < num_threads:
        cond = (tid < layout.thread_extent) & cond
    return cond


def _guarded(cond: PrimExpr | None, s: Stmt) -> Stmt:
    return s if cond is None else IfThenElse(cond, s)


def lower_fragment_reduce(
    op: Reduce,
    args: LowerArgs,
    combine: Combine,
    prepare: Callable[[PrimExpr], PrimExpr],
    identity: PrimExpr,
) -> Stmt:
    """A fragment source of any layout into a fragment or a shared tile (see the module doc)."""
    src, dst = op.src.buffer, op.dst.buffer
    layout = args.layout_map[src]
    assert isinstance(layout, Fragment)
    plan = plan_line_reduction(layout, op.axis, args.num_threads)
    regs = args.buffer_remap[src]
    tid = args.thread_var
    dt = dst.dtype
    k_count = len(plan.classes)
    acc = make_buffer(f"{dst.name}_part", (k_count,), dt, "local")

    def at(k: int) -> BufferLoad:
        return BufferLoad(acc, (_i(k),))

    body: list[Stmt] = []
    for k, regs_k in enumerate(plan.classes):
        held = [register_held(layout, r, tid, args.num_threads) for r in regs_k]
        first = 0
        if held[0] is None:  # every thread holds it: start from it rather than the identity
            body.append(BufferStore(acc, prepare(BufferLoad(regs, (_i(regs_k[0]),))), (_i(k),)))
            first = 1
        else:
            body.append(BufferStore(acc, identity, (_i(k),)))
        for r, cond in zip(regs_k[first:], held[first:]):
            fold = BufferStore(acc, combine(at(k), prepare(BufferLoad(regs, (_i(r),)))), (_i(k),))
            body.append(_guarded(cond, fold))
    shuffles: list[Stmt] = []
    for m in plan.lane_masks:
        shuffles += [
            BufferStore(acc, combine(at(k), _shfl(at(k), m)), (_i(k),)) for k in range(k_count)
        ]
    whole_warps = args.num_threads // 32 * 32
    if shuffles and whole_warps == 0:
        raise UnsupportedError(
            f"T.reduce_{op.kind} of `{src.name}` combines lanes with warp shuffles, which need "
            f"whole warps; the block has {args.num_threads} threads",
            where="LowerTileOp",
        )
    if shuffles and whole_warps < args.num_threads:
        # The last, partial warp holds none of the fragment (tsir spreads its tiles over a power
        # of two of the threads) and may not shuffle with lanes that do not exist.
        body.append(IfThenElse(tid < whole_warps, seq(*shuffles)))
    else:
        body += shuffles
    if plan.warp_bits:
        body += _across_warps(op, args, plan.warp_bits, acc, k_count, combine)
    body.append(_finish(op, args, plan.layout, acc, combine))
    return Allocate(acc, seq(*body))


def _across_warps(
    op: Reduce, args: LowerArgs, bits: tuple[int, ...], acc: Buffer, k_count: int, combine: Combine
) -> list[Stmt]:
    """Combine the partial results of the warps sharing a line through shared memory, in the
    same order in every thread (so every holder gets bit-identical results)."""
    if args.add_workspace is None:
        raise UnsupportedError(
            "a reduction across warps needs a shared workspace", where="LowerTileOp"
        )
    tid = args.thread_var
    # A slot per thread up to the next power of two: a thread past the fragment's holders (in a
    # 96-thread block, say) combines slots of its own power-of-two group, all allocated.
    slots = 1 << (args.num_threads - 1).bit_length()
    ws = args.add_workspace(
        f"{op.dst.buffer.name}_warps", (k_count, slots), acc.dtype, "shared.dyn"
    )
    out: list[Stmt] = [
        BufferStore(ws, BufferLoad(acc, (_i(k),)), (_i(k), tid)) for k in range(k_count)
    ]
    out.append(_sync())
    base: PrimExpr = tid
    for b in bits:
        base = base - (tid // b) % 2 * b
    for k in range(k_count):
        total: PrimExpr | None = None
        for q in range(1 << len(bits)):
            member = base + sum(b for j, b in enumerate(bits) if (q >> j) & 1)
            x = BufferLoad(ws, (_i(k), member))
            total = x if total is None else combine(total, x)
        assert total is not None
        out.append(BufferStore(acc, total, (_i(k),)))
    out.append(_sync())
    return out


def _finish(op: Reduce, args: LowerArgs, result: Fragment, acc: Buffer, combine: Combine) -> Stmt:
    """The partial results (laid out as `result`) into the destination, combined with its old
    values when `clear=False`."""
    dst = op.dst.buffer
    tid = args.thread_var

    def value(old: PrimExpr, new: PrimExpr) -> PrimExpr:
        return new if op.clear else combine(old, new)

    if dst.scope == FRAGMENT and equivalent(args.layout_map[dst], result):
        regs = args.buffer_remap[dst]
        stores = []
        for k in range(result.local_size):
            old = BufferLoad(regs, (_i(k),))
            store = BufferStore(regs, value(old, BufferLoad(acc, (_i(k),))), (_i(k),))
            stores.append(_guarded(register_held(result, k, tid, args.num_threads), store))
        return seq(*stores)
    if dst.scope == FRAGMENT:
        # Another layout: through a shared copy of the results, read by every holder.
        if args.add_workspace is None:
            raise UnsupportedError(
                "a reduction into this layout needs a shared workspace", where="LowerTileOp"
            )
        lines = result.const_input_shape()
        assert lines is not None
        ws = args.add_workspace(f"{dst.name}_out", lines, dst.dtype, "shared.dyn")
        publish = iterate_fragment(
            result,
            tid,
            args.num_threads,
            lambda c, local: BufferStore(ws, BufferLoad(acc, (local,)), (c[0],)),
            only_replica_zero=True,
            name="o",
        )
        regs = args.buffer_remap[dst]
        take = iterate_fragment(
            require_fragment(args.layout_map, dst),
            tid,
            args.num_threads,
            lambda c, local: BufferStore(
                regs, value(BufferLoad(regs, (local,)), BufferLoad(ws, (_flat(c, dst),))), (local,)
            ),
            name="d",
        )
        return seq(publish, _sync(), take, _sync())
    # A shared destination: the first holder of each line writes it.
    return iterate_fragment(
        result,
        tid,
        args.num_threads,
        lambda c, local: BufferStore(
            dst,
            value(BufferLoad(dst, _dst_index(op, c)), BufferLoad(acc, (local,))),
            _dst_index(op, c),
        ),
        only_replica_zero=True,
        name="o",
    )


def _flat(coords: list[PrimExpr], dst: Buffer) -> PrimExpr:
    """A destination element's line number (its row-major offset)."""
    out: PrimExpr = coords[0]
    for c, e in zip(coords[1:], dst.shape[1:]):
        out = out * e + c
    return out


def _dst_index(op: Reduce, coords: list[PrimExpr]) -> tuple[PrimExpr, ...]:
    """The destination element (as indexed in its buffer) of line `coords[0]`."""
    mins = op.dst.mins
    if len(mins) == 1:
        return (mins[0] + coords[0],)
    raise UnsupportedError(
        f"T.reduce into the {len(mins)}-D shared `{op.dst.buffer.name}`", where="LowerTileOp"
    )


# -- shared-memory sources ------------------------------------------------------------------------


def lower_staged_reduce(
    op: Reduce,
    args: LowerArgs,
    combine: Combine,
    prepare: Callable[[PrimExpr], PrimExpr],
    identity: PrimExpr,
) -> Stmt:
    """A fragment source whose layout the butterfly plan does not fit: its holders write it to a
    shared workspace, which is then reduced as a shared source."""
    if args.add_workspace is None:
        raise UnsupportedError("staging a reduction needs a shared workspace", where="LowerTileOp")
    src = op.src.buffer
    shape = tuple(int(const_value(d)) for d in src.shape)  # pyright: ignore[reportArgumentType]  # a constant here: checked by const_value above
    ws = args.add_workspace(f"{src.name}_stage", shape, src.dtype, "shared.dyn")
    whole = BufferRegion.full(ws)
    stage = lower_fragment_transfer(
        op.src, whole, args, lambda d, v: BufferStore(d.buffer, v, d.indices), op.title()
    )
    return seq(
        stage, _sync(), lower_shared_reduce(op, args, combine, prepare, identity, source=whole)
    )


def lower_shared_reduce(
    op: Reduce,
    args: LowerArgs,
    combine: Combine,
    prepare: Callable[[PrimExpr], PrimExpr],
    identity: PrimExpr,
    source: BufferRegion | None = None,
) -> Stmt:
    """A shared source (`op.src`, or `source` standing for it): G lanes per line (see the
    module doc)."""
    region = source if source is not None else op.src
    src, dst = region.buffer, op.dst.buffer
    shape = const_shape(src.shape)
    if shape is None:
        raise UnsupportedError(
            f"T.reduce of `{src.name}` needs a constant shape", where="LowerTileOp"
        )
    axis = op.axis if len(shape) == 2 else 0
    n = shape[axis]
    lines = 1 if len(shape) == 1 else shape[1 - axis]
    threads = args.num_threads
    group = 1
    if threads % 32 == 0:
        while group * 2 <= min(32, n) and lines * group * 2 <= threads:
            group *= 2
    trips = -(-(lines * group) // threads)
    tid = args.thread_var
    it, step = Var("it", int32), Var("r", int32)
    flat = it * threads + tid if trips > 1 else tid
    line = flat // group if group > 1 else flat
    lane = flat % group if group > 1 else _i(0)
    j = step * group + lane if group > 1 else step
    dt = dst.dtype
    acc_buf = make_buffer(f"{dst.name}_acc", (1,), dt, "local")
    acc = BufferLoad(acc_buf, (_i(0),))
    coords = [j] if len(shape) == 1 else ([line, j] if axis == 1 else [j, line])
    x = prepare(BufferLoad(src, tuple(m + c for m, c in zip(region.mins, coords))))
    fold: Stmt = BufferStore(acc_buf, combine(acc, x), (_i(0),))
    conds = []
    if n % group:
        conds.append(j < n)
    if lines * group < trips * threads:
        conds.append(line < lines)
    if conds:
        cond = conds[0] if len(conds) == 1 else conds[0] & conds[1]
        fold = IfThenElse(cond, fold)
    body: list[Stmt] = [
        BufferStore(acc_buf, identity, (_i(0),)),
        For(step, _i(0), _i(-(-n // group)), ForKind.SERIAL, fold),
    ]
    m = group // 2
    while m >= 1:
        body.append(BufferStore(acc_buf, combine(acc, _shfl(acc, m)), (_i(0),)))
        m //= 2

    def value(old: PrimExpr) -> PrimExpr:
        return acc if op.clear else combine(old, acc)

    to_fragment = dst.scope == FRAGMENT
    target: Buffer | None = None
    if to_fragment:
        if args.add_workspace is None:
            raise UnsupportedError(
                "a reduction into a fragment needs a shared workspace", where="LowerTileOp"
            )
        target = args.add_workspace(f"{dst.name}_lines", (lines,), dt, "shared.dyn")
        write: Stmt = BufferStore(target, acc, (line,))
    else:
        index = (op.dst.mins[0] + line,) if len(op.dst.mins) == 1 else None
        if index is None:
            raise UnsupportedError(
                f"T.reduce into the {len(op.dst.mins)}-D shared `{dst.name}`", where="LowerTileOp"
            )
        write = BufferStore(dst, value(BufferLoad(dst, index)), index)
    keep = (lane == 0) if group > 1 else None
    if lines * group < trips * threads:
        keep = (line < lines) if keep is None else keep & (line < lines)
    body.append(_guarded(keep, write))
    loop: Stmt = seq(*body)
    if trips > 1:
        loop = For(it, _i(0), _i(trips), ForKind.SERIAL, loop)
    out = Allocate(acc_buf, loop)
    if target is None:
        return out
    regs = args.buffer_remap[dst]
    take = iterate_fragment(
        require_fragment(args.layout_map, dst),
        tid,
        threads,
        lambda c, local: BufferStore(
            regs,
            BufferLoad(target, (_flat(c, dst),))
            if op.clear
            else combine(BufferLoad(regs, (local,)), BufferLoad(target, (_flat(c, dst),))),
            (local,),
        ),
        name="d",
    )
    return seq(out, _sync(), take, _sync())
