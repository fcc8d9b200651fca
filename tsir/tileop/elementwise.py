"""Element-wise lowering shared by the ops that visit each element of a region once (copy, fill,
atomic add, T.Parallel on memory): loops over the region's non-unit axes, spread over the
block's threads with vector lanes innermost (`partition_loop`), or run whole in each thread when
the destination is private to it."""

from __future__ import annotations

from collections.abc import Callable

from ..buffer import BufferRegion
from ..dtype import DataType, int32, int64
from ..expr import IntImm, PrimExpr, Var, is_const_int
from ..stmt import For, ForKind, IfThenElse, Stmt
from .base import LowerArgs
from .partition import partition_loop, pick_vector_width

__all__ = [
    "PER_THREAD_SCOPES",
    "non_unit_axes",
    "index_dtype",
    "coords_to_indices",
    "lower_elementwise",
]

# Buffers private to each thread: an op on them runs whole in every thread.
PER_THREAD_SCOPES = ("local", "local.var")


def non_unit_axes(region: BufferRegion) -> list[int]:
    return [d for d, r in enumerate(region.region) if not is_const_int(r.extent, 1)]


def index_dtype(*exprs: PrimExpr) -> DataType:
    return int64 if any(e.dtype == int64 for e in exprs) else int32


def coords_to_indices(
    region: BufferRegion, axes: list[int], coords: list[PrimExpr]
) -> tuple[PrimExpr, ...]:
    """The indices of the element at `coords` along the region's `axes` (its mins elsewhere)."""
    idx = list(region.mins)
    for k, d in enumerate(axes):
        idx[d] = idx[d] + coords[k]
    return tuple(idx)


def lower_elementwise(
    dst: BufferRegion,
    extents: list[PrimExpr],
    make_store: Callable[[list[PrimExpr]], Stmt],
    args: LowerArgs,
    elem_bytes: int,
    name: str,
) -> Stmt:
    """Loops over `extents` that run `make_store(coords)`, split across threads unless per-thread."""
    idt = index_dtype(*extents, *dst.mins)
    if not extents and dst.buffer.scope not in PER_THREAD_SCOPES:
        # One element of memory: one thread writes it (every thread writing it is a race, and an
        # atomic would apply once per thread).
        return IfThenElse(args.thread_var == 0, make_store([]))
    if not extents:
        return make_store([])
    if dst.buffer.scope in PER_THREAD_SCOPES:
        loop_vars = [Var(f"{name}{k}", idt) for k in range(len(extents))]
        body = make_store(list(loop_vars))
        for v, e in reversed(list(zip(loop_vars, extents))):
            body = For(v, IntImm(0, idt), e, ForKind.UNROLLED, body)
        return body
    vec = pick_vector_width(extents, elem_bytes, args.num_threads)
    return partition_loop(extents, make_store, args.thread_var, args.num_threads, vec, idt, name)
