"""AtomicAdd: `T.atomic_add(dst_region, src, memory_order=None)`, dst[...] += src[...] element-wise
with atomic adds (many blocks may add to one region). It is also the base, `AtomicOp`, of
`T.atomic_max`/`T.atomic_min` (atomic_max.py, atomic_min.py): the same regions and lowerings with
another update. The one-element forms, `T.atomic_add(C[i, j], x)`, are calls (`atomic_call`), not
tile ops.

Lowerings: `fragment` (the source is a fragment: the first thread holding each element updates
it), `elementwise` (memory to memory, one element per lane: atomics are scalar). A memory order
(TileLang's names) applies to every element's update (tsir/atomic.h).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from ..buffer import BufferRegion
from ..dtype import DataType
from ..expr import BufferLoad, Call, PrimExpr, cast
from ..node import node
from ..printer_expr import element_form_fits, element_text
from ..stmt import Evaluate, Stmt
from .base import (
    FRAGMENT,
    LowerArgs,
    OpArgs,
    OpEnum,
    TileOperatorNode,
    coerce_enums,
    register_tile_op,
    requirement,
)
from .copy import fragment_side, lower_fragment_transfer
from .elementwise import coords_to_indices, lower_elementwise, non_unit_axes

if TYPE_CHECKING:
    from ..arith import Analyzer
    from ..printer_expr import ExprPrinter

__all__ = [
    "AtomicOp",
    "AtomicAdd",
    "MemoryOrder",
    "ATOMIC_DTYPES",
    "atomic_call",
    "atomic_add_stmt",
]

# The dtypes CUDA's atomicAdd / atomicMax / atomicMin (or tsir's CAS loops) update.
ATOMIC_DTYPES = ("int32", "uint32", "int64", "uint64", "float16", "bfloat16", "float32", "float64")


class MemoryOrder(OpEnum):
    """TileLang's memory orders for atomics (their position is the id atomic.h takes)."""

    RELAXED = "relaxed"
    CONSUME = "consume"
    ACQUIRE = "acquire"
    RELEASE = "release"
    ACQ_REL = "acq_rel"
    SEQ_CST = "seq_cst"

    @property
    def id(self) -> int:
        return list(MemoryOrder).index(self)


def atomic_call(
    kind: str, dst: BufferLoad, value: PrimExpr, order: MemoryOrder | str | None = None
) -> Call:
    """`atomic<kind>(&dst, value)` (kind: add, max, min) with the value cast to the destination's
    dtype; its value is what `dst` held before. A relaxed add is CUDA's plain atomicAdd."""
    if value.dtype != dst.buffer.dtype:
        value = cast(dst.buffer.dtype, value)
    address = Call(DataType("handle"), "address_of", (dst,))
    mo = MemoryOrder(order) if order is not None else MemoryOrder.RELAXED
    if kind == "add" and mo is MemoryOrder.RELAXED:
        return Call(dst.buffer.dtype, "atomic_add", (address, value))
    return Call(dst.buffer.dtype, f"tsir.atomic.atomic_{kind}<{mo.id}>", (address, value))


def atomic_add_stmt(dst: BufferLoad, value: PrimExpr) -> Stmt:
    """`atomicAdd(&dst, value)` with the value cast to the destination's dtype."""
    return Evaluate(atomic_call("add", dst, value))


@node
class AtomicOp(TileOperatorNode):
    """dst[...] = update(dst[...], src[...]) element-wise, atomically; non-unit extents match in
    order. Subclasses name the update (`kind`)."""

    src: BufferRegion
    dst: BufferRegion
    memory_order: MemoryOrder | None = None
    kind: ClassVar[str] = "add"

    def __post_init__(self) -> None:
        coerce_enums(self, memory_order=MemoryOrder)

    def reads(self) -> tuple[BufferRegion, ...]:
        return (self.src, self.dst)

    def writes(self) -> tuple[BufferRegion, ...]:
        return (self.dst,)

    def title(self) -> str:
        return f"T.atomic_{self.kind}"

    def print_form(self, p: ExprPrinter) -> str:
        # The builder resolves the destination as T.copy does: a region, or its first element
        # with the source's extents; the source is always a buffer or a region.
        fits = element_form_fits(self.dst, self.src)
        dst = element_text(p, self.dst) if fits else p.region(self.dst)
        order = f", memory_order={p.value(self.memory_order.value)}" if self.memory_order else ""
        return f"T.atomic_{self.kind}({dst}, {p.region(self.src)}{order})"

    def element_stmt(self, dst: BufferLoad, value: PrimExpr) -> Stmt:
        return Evaluate(atomic_call(self.kind, dst, value, self.memory_order))


@register_tile_op("tl.AtomicAdd")
@node
class AtomicAdd(AtomicOp):
    """dst[...] += src[...] element-wise with atomic adds."""

    kind: ClassVar[str] = "add"


@requirement("a side is a fragment")
def _has_fragment(op: AtomicOp, args: OpArgs) -> str | None:
    if fragment_side(op.src, op.dst) is None:
        return f"`{op.src.buffer.name}` and `{op.dst.buffer.name}` are in memory"
    return None


@requirement("the destination is in memory")
def _into_memory(op: AtomicOp, args: OpArgs) -> str | None:
    if op.dst.buffer.scope == FRAGMENT:
        return f"`{op.dst.buffer.name}` is a fragment; fragments are per-thread, update directly"
    return None


@requirement("no side is a fragment")
def _in_memory(op: AtomicOp, args: OpArgs) -> str | None:
    frag = fragment_side(op.src, op.dst)
    return None if frag is None else f"`{frag.buffer.name}` is a fragment"


@AtomicOp.register_lowering("fragment", _has_fragment, _into_memory)
def _lower_fragment(op: AtomicOp, args: LowerArgs, analyzer: Analyzer) -> Stmt:
    return lower_fragment_transfer(
        op.src, op.dst, args, op.element_stmt, op.title(), vectorize=False
    )


@AtomicOp.register_lowering("elementwise", _in_memory)
def _lower_elementwise(op: AtomicOp, args: LowerArgs, analyzer: Analyzer) -> Stmt:
    s_axes, d_axes = non_unit_axes(op.src), non_unit_axes(op.dst)
    extents = [op.dst.region[d].extent for d in d_axes]

    def make(coords: list[PrimExpr]) -> Stmt:
        value = BufferLoad(op.src.buffer, coords_to_indices(op.src, s_axes, coords))
        dst = BufferLoad(op.dst.buffer, coords_to_indices(op.dst, d_axes, coords))
        return op.element_stmt(dst, value)

    # One element per lane: atomics are scalar, so no vector lanes are needed.
    return lower_elementwise(op.dst, extents, make, args, 16, "i")
