"""Element-wise transfers with a fragment on one side (or both): T.copy, T.atomic_add and the
scans' staging, over whole fragments or any region of them (`T.copy(acc_o[:valid_h, :], O_s)`).

- fragment <-> memory: each thread visits the registers it holds (vectorized along the last
  dimension where consecutive registers hold consecutive elements) and moves those inside the
  fragment's region, to or from the element of the memory region at the same offset (non-unit
  extents matched in order); a store into memory is done by the first holder of each element;
- fragment -> fragment of the same layout, same region: a register-to-register loop;
- fragment -> fragment otherwise (another layout, another region): through a shared-memory
  workspace: the source's first holders store the region, the block synchronizes, and the
  destination's holders (every replica) load their elements. Reported under TSIR_EXPLAIN.
"""

from __future__ import annotations

from collections.abc import Callable

from ..buffer import BufferRegion
from ..dtype import int32
from ..expr import BufferLoad, Call, IntImm, PrimExpr, Var, cast, const_value
from ..layout import Fragment, equivalent
from ..stmt import BufferStore, Evaluate, For, ForKind, IfThenElse, Stmt, seq
from .base import FRAGMENT, LowerArgs
from .elementwise import non_unit_axes
from .fragment_lowering import iterate_fragment

__all__ = ["fragment_side", "lower_fragment_transfer", "is_whole", "same_region"]


def fragment_side(src: BufferRegion, dst: BufferRegion) -> BufferRegion | None:
    """The fragment operand of a transfer (the source when both are), or None."""
    if src.buffer.scope == FRAGMENT:
        return src
    return dst if dst.buffer.scope == FRAGMENT else None


def is_whole(r: BufferRegion) -> bool:
    """The region covers its whole (constant-shaped) buffer."""
    return all(const_value(x.min) == 0 for x in r.region) and [
        const_value(e) for e in r.extents
    ] == [const_value(d) for d in r.buffer.shape]


def same_region(a: BufferRegion, b: BufferRegion) -> bool:
    """Both regions have the same constant starts and extents."""
    pairs = [(x.min, y.min) for x, y in zip(a.region, b.region)] + list(zip(a.extents, b.extents))
    return len(a.region) == len(b.region) and all(
        const_value(p) is not None and const_value(p) == const_value(q) for p, q in pairs
    )


def _inside(coords: list[PrimExpr], r: BufferRegion) -> PrimExpr | None:
    """`coords` lies in region `r` (None: always, the region is the whole buffer)."""
    if is_whole(r):
        return None
    cond: PrimExpr | None = None
    for c, x, d in zip(coords, r.region, r.buffer.shape):
        lo, n, size = const_value(x.min), const_value(x.extent), const_value(d)
        parts = []
        if lo != 0:
            parts.append(x.min <= c)
        if lo is None or n is None or lo + n != size:
            parts.append(c < x.min + x.extent)
        for p in parts:
            cond = p if cond is None else cond & p
    return cond


def _guarded(cond: PrimExpr | None, body: Stmt) -> Stmt:
    return body if cond is None else IfThenElse(cond, body)


def _offsets(
    frag: BufferRegion, other: BufferRegion, coords: list[PrimExpr]
) -> tuple[PrimExpr, ...]:
    """The element of `other` at the same offset in its region as `coords` in `frag`'s (non-unit
    extents matched in order)."""
    idx = list(other.mins)
    frag_axes = non_unit_axes(frag)
    for d, fa in zip(non_unit_axes(other), frag_axes):
        idx[d] = idx[d] + (coords[fa] - frag.region[fa].min)
    return tuple(idx)


def lower_fragment_transfer(
    src: BufferRegion,
    dst: BufferRegion,
    args: LowerArgs,
    store_to_memory: Callable[[BufferLoad, PrimExpr], Stmt],
    what: str,
    vectorize: bool = True,
) -> Stmt:
    """Element-wise from `src` to `dst`, one side (or both) a fragment (see the module docstring).
    A store into memory goes through `store_to_memory(dst element, value)` (a plain store, an
    atomic add); `vectorize=False` keeps one element per register step (atomics are scalar)."""
    frag = fragment_side(src, dst)
    assert frag is not None
    other = dst if frag is src else src
    if other.buffer.scope == FRAGMENT:
        return _between_fragments(src, dst, args, what)
    layout = args.layout_map[frag.buffer]
    assert isinstance(layout, Fragment)
    local_buf = args.buffer_remap[frag.buffer]

    def make(coords: list[PrimExpr], local: PrimExpr) -> Stmt:
        idx = _offsets(frag, other, coords)
        if frag is src:
            body = store_to_memory(BufferLoad(dst.buffer, idx), BufferLoad(local_buf, (local,)))
        else:
            v: PrimExpr = BufferLoad(src.buffer, idx)
            if v.dtype != local_buf.dtype:
                v = cast(local_buf.dtype, v)
            body = BufferStore(local_buf, v, (local,))
        return _guarded(_inside(coords, frag), body)

    lanes = 16 // max(src.buffer.dtype.bytes, dst.buffer.dtype.bytes) if vectorize else 1
    return iterate_fragment(
        layout,
        args.thread_var,
        args.num_threads,
        make,
        max_lanes=lanes,
        only_replica_zero=frag is src,
        name="i",
    )


def _between_fragments(src: BufferRegion, dst: BufferRegion, args: LowerArgs, what: str) -> Stmt:
    s_layout, d_layout = args.layout_map[src.buffer], args.layout_map[dst.buffer]
    s_local, d_local = args.buffer_remap[src.buffer], args.buffer_remap[dst.buffer]
    assert isinstance(s_layout, Fragment) and isinstance(d_layout, Fragment)
    if equivalent(s_layout, d_layout) and same_region(src, dst):
        if is_whole(src):
            l = Var("l")
            value: PrimExpr = BufferLoad(s_local, (l,))
            if value.dtype != d_local.dtype:
                value = cast(d_local.dtype, value)
            return For(
                l,
                IntImm(0),
                IntImm(s_layout.local_size),
                ForKind.UNROLLED,
                BufferStore(d_local, value, (l,)),
            )

        def in_place(coords: list[PrimExpr], local: PrimExpr) -> Stmt:
            v: PrimExpr = BufferLoad(s_local, (local,))
            if v.dtype != d_local.dtype:
                v = cast(d_local.dtype, v)
            return _guarded(_inside(coords, src), BufferStore(d_local, v, (local,)))

        return iterate_fragment(s_layout, args.thread_var, args.num_threads, in_place, name="i")
    return _through_shared(src, dst, args, what)


def _through_shared(src: BufferRegion, dst: BufferRegion, args: LowerArgs, what: str) -> Stmt:
    """Another layout or region: the source's elements through a shared workspace."""
    assert args.add_workspace is not None, "LowerArgs.add_workspace is set by LowerTileOp"
    extents = [const_value(src.region[d].extent) for d in non_unit_axes(src)]
    shape = tuple(e for e in extents if e is not None) or (1,)
    stage = args.add_workspace(
        f"{src.buffer.name}_to_{dst.buffer.name}", shape, src.buffer.dtype, "shared.dyn"
    )
    whole = BufferRegion.full(stage)
    if args.explain is not None:
        args.explain(
            f"{what} from `{src.buffer.name}` to `{dst.buffer.name}`: the fragments have different "
            f"layouts or regions, so the elements go through shared memory ({stage.dtype.bytes * _size(shape)} "
            f"bytes) with a barrier"
        )

    def put(e: BufferLoad, value: PrimExpr) -> Stmt:
        return BufferStore(e.buffer, value, e.indices)

    out = lower_fragment_transfer(src, whole, args, put, what)
    sync = Evaluate(Call(int32, "sync_threads", ()))
    back = lower_fragment_transfer(whole, dst, args, put, what)
    return seq(out, sync, back)


def _size(shape: tuple[int, ...]) -> int:
    n = 1
    for e in shape:
        n *= e
    return n
