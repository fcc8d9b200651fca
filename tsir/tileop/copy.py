"""Copy and Fill: element-wise tile operators over rectangular regions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..buffer import BufferRegion
from ..dtype import DataType, int32, int64
from ..expr import BufferLoad, PrimExpr, Var, cast, is_const_int
from ..node import node
from ..stmt import BufferStore, For, ForKind, Stmt
from .base import LowerArgs, TileOperatorNode, register_tile_op
from .partition import partition_loop, pick_vector_width

if TYPE_CHECKING:
    from ..arith import Analyzer

__all__ = ["Copy", "Fill", "PER_THREAD_SCOPES", "ASYNC_COPY_ATTR"]

ASYNC_COPY_ATTR = "async_copy"

# Buffers private to each thread: an op on them runs whole in every thread.
PER_THREAD_SCOPES = ("local", "local.var")


def non_unit_axes(region: BufferRegion) -> list[int]:
    return [d for d, r in enumerate(region.region) if not is_const_int(r.extent, 1)]


def index_dtype(*exprs: PrimExpr) -> DataType:
    return int64 if any(e.dtype == int64 for e in exprs) else int32


def _coords_to_indices(region: BufferRegion, axes: list[int], coords: list[PrimExpr]) -> tuple[PrimExpr, ...]:
    idx = list(region.mins)
    for k, d in enumerate(axes):
        idx[d] = idx[d] + coords[k]
    return tuple(idx)


def lower_elementwise(
    dst: BufferRegion, extents: list[PrimExpr], make_store: Any, args: LowerArgs, elem_bytes: int, name: str
) -> Stmt:
    """Loops over `extents` that run `make_store(coords)`, split across threads unless per-thread."""
    idt = index_dtype(*extents, *dst.mins)
    if not extents:
        return make_store([])
    if dst.buffer.scope in PER_THREAD_SCOPES:
        loop_vars = [Var(f"{name}{k}", idt) for k in range(len(extents))]
        body = make_store(list(loop_vars))
        for v, e in reversed(list(zip(loop_vars, extents))):
            body = For(v, _zero(idt), e, ForKind.UNROLLED, body)
        return body
    vec = pick_vector_width(extents, elem_bytes, args.num_threads)
    return partition_loop(extents, make_store, args.thread_var, args.num_threads, vec, idt, name)


def _zero(dt: DataType) -> PrimExpr:
    from ..expr import IntImm

    return IntImm(0, dt)


@register_tile_op("tl.Copy")
@node
class Copy(TileOperatorNode):
    """Copy `src` to `dst` element-wise (casting if dtypes differ); non-unit extents match in order.

    Loads outside the source buffer read zero and stores outside the destination are skipped
    (LegalizeSafeMemoryAccess adds the guards it cannot prove dead).
    """

    src: BufferRegion
    dst: BufferRegion
    async_copy: bool = False
    """Issue global->shared moves as cp.async (set by InjectSoftwarePipeline); the pipeline
    commits and waits for them."""

    def reads(self) -> tuple[BufferRegion, ...]:
        return (self.src,)

    def writes(self) -> tuple[BufferRegion, ...]:
        return (self.dst,)

    def lower(self, args: LowerArgs, analyzer: Analyzer) -> Stmt:
        s_axes, d_axes = non_unit_axes(self.src), non_unit_axes(self.dst)
        extents = [self.dst.region[d].extent for d in d_axes]

        def make_store(coords: list[PrimExpr]) -> Stmt:
            value: PrimExpr = BufferLoad(self.src.buffer, _coords_to_indices(self.src, s_axes, coords))
            if value.dtype != self.dst.buffer.dtype:
                value = cast(self.dst.buffer.dtype, value)
            return BufferStore(self.dst.buffer, value, _coords_to_indices(self.dst, d_axes, coords))

        elem = max(self.src.buffer.dtype.bytes, self.dst.buffer.dtype.bytes)
        out = lower_elementwise(self.dst, extents, make_store, args, elem, "i")
        if self.async_copy and args.target.has_cp_async:
            from ..stmt import AttrStmt

            out = AttrStmt(ASYNC_COPY_ATTR, 1, out)
        return out


@register_tile_op("tl.Fill")
@node
class Fill(TileOperatorNode):
    """Store `value` (already of the destination dtype) into every element of `dst`."""

    dst: BufferRegion
    value: PrimExpr

    def writes(self) -> tuple[BufferRegion, ...]:
        return (self.dst,)

    def lower(self, args: LowerArgs, analyzer: Analyzer) -> Stmt:
        axes = non_unit_axes(self.dst)
        extents = [self.dst.region[d].extent for d in axes]

        def make_store(coords: list[PrimExpr]) -> Stmt:
            return BufferStore(self.dst.buffer, self.value, _coords_to_indices(self.dst, axes, coords))

        return lower_elementwise(self.dst, extents, make_store, args, self.dst.buffer.dtype.bytes, "i")
