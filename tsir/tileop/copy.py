"""Copy: `T.copy(src, dst)`, element-wise between global, shared, local and fragment memory.

Lowerings, tried in order:
- `fragment`: a side is a fragment. Each thread moves the elements it holds, through its
  registers (a fragment to a fragment of the same layout is a register-to-register loop);
- `elementwise`: memory to memory, spread over the block's threads with vector lanes innermost;
  a pipelined global->shared copy (`async_copy`) is marked for InjectAsyncCopy (cp.async).

A hardware path registers before them (copy_tma.py): `tma`, a bulk tensor copy completing on the
copy's `mbarrier`, which an mbarrier pipeline sets (`bulk_load`); that pipeline reports why a copy
it could not take stays on cp.async.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..buffer import Buffer, BufferRegion
from ..expr import BufferLoad, PrimExpr, cast, const_value
from ..node import node
from ..printer_expr import element_form_fits, element_text, is_full_region, is_unit_region
from ..stmt import AttrStmt, BufferStore, Stmt
from .base import (
    FRAGMENT,
    AsyncLoad,
    BulkLoad,
    InferLevel,
    LayoutFact,
    LayoutInferArgs,
    LowerArgs,
    OpArgs,
    TileOperatorNode,
    register_tile_op,
    requirement,
)
from .elementwise import coords_to_indices, lower_elementwise, non_unit_axes
from .fragment_copy import fragment_side, is_whole, lower_fragment_transfer

if TYPE_CHECKING:
    from ..arith import Analyzer
    from ..printer_expr import ExprPrinter

__all__ = [
    "Copy",
    "ASYNC_COPY_ATTR",
    "copy_operands",
    "fragment_side",
    "lower_fragment_transfer",
]

# Marks the thread-level code of a pipelined copy: InjectAsyncCopy turns its 16-byte moves into
# cp.async, ThreadSync leaves its accesses to the pipeline's barriers.
ASYNC_COPY_ATTR = "async_copy"

_GLOBAL = ("global", "symmetric")
_SHARED = ("shared", "shared.dyn")


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
    mbarrier: PrimExpr | None = None
    """A bulk (TMA) load completing on this mbarrier (a shared `uint64` element), set by an
    mbarrier pipeline, which announces its bytes and waits (copy_tma.py)."""

    def reads(self) -> tuple[BufferRegion, ...]:
        return (self.src,)

    def writes(self) -> tuple[BufferRegion, ...]:
        return (self.dst,)

    def title(self) -> str:
        return "T.copy"

    def infer_layout(self, args: LayoutInferArgs, level: InferLevel) -> dict[Buffer, LayoutFact]:
        """COMMON: a whole fragment copied to a whole fragment of its shape (a cast, say) takes
        its layout, either way: the copy is then a register-to-register loop. FREE: the layouts
        of the first lowering that applies and has an opinion (a TMA store's shared tile, in the
        swizzle it reads), else none (the fragment's next user chooses)."""
        if level is InferLevel.FREE:
            for v in type(self).lowerings:
                if v.failed(self, args) is None:
                    return v.layouts(self, args) if v.layouts is not None else {}
            return {}
        if level is not InferLevel.COMMON:
            return TileOperatorNode.infer_layout(self, args, level)
        s, d = self.src.buffer, self.dst.buffer
        if not (
            s.scope == FRAGMENT
            and d.scope == FRAGMENT
            and is_whole(self.src)
            and is_whole(self.dst)
        ):
            return {}
        if [const_value(x) for x in s.shape] != [const_value(x) for x in d.shape]:
            return {}
        for have, want in ((s, d), (d, s)):
            if have in args.layout_map and want not in args.layout_map:
                return {want: LayoutFact(args.layout_map[have], args.plans.get(have))}
        return {}

    def async_load(self) -> AsyncLoad | None:
        if self.src.buffer.scope in _GLOBAL and self.dst.buffer.scope in _SHARED:
            return AsyncLoad(self.dst.buffer, self.src.buffer, self.replace(async_copy=True))
        return None

    def bulk_load(self, args: OpArgs, mbarrier: PrimExpr) -> BulkLoad | str:
        """This copy as a TMA load completing on `mbarrier`, when its "tma" lowering accepts it."""
        tma = next((v for v in type(self).lowerings if v.name == "tma"), None)
        if tma is None:
            return "no TMA lowering is registered"
        cand = self.replace(async_copy=True, mbarrier=mbarrier)
        why = tma.refusal(cand, args)
        if why is not None:
            return why
        n = self.dst.buffer.dtype.bytes
        for e in self.dst.extents:
            n *= const_value(e)  # pyright: ignore[reportOperatorIssue]  # the lowering checked: constant
        return BulkLoad(cand, n)

    def print_form(self, p: ExprPrinter) -> str:
        if self.async_copy:  # the builder has no asynchronous T.copy
            text = TileOperatorNode.print_form(self, p)
            return text.replace(", mbarrier=None)", ")") if self.mbarrier is None else text
        s, d = copy_operands(p, self.src, self.dst)
        return f"T.copy({s}, {d})"


def copy_operands(p: ExprPrinter, src: BufferRegion, dst: BufferRegion) -> tuple[str, str]:
    """The operand texts of `T.copy(src, dst)` (and of T.atomic_add, which resolves its operands
    the same way): a region, or its first element where the other side's extents rebuild it."""
    if is_full_region(src) and is_full_region(dst):
        return p.region(src), p.region(dst)
    if is_unit_region(src) and is_unit_region(dst):
        return element_text(p, src), element_text(p, dst)
    if is_full_region(src) and element_form_fits(dst, src):
        return p.region(src), element_text(p, dst)
    if is_full_region(dst) and element_form_fits(src, dst):
        return element_text(p, src), p.region(dst)
    if element_form_fits(dst, src):
        return p.region(src), element_text(p, dst)
    if element_form_fits(src, dst):
        return element_text(p, src), p.region(dst)
    return p.region(src), p.region(dst)


# -- lowerings -------------------------------------------------------------------------------------


@requirement("a side is a fragment")
def _has_fragment(op: Copy, args: OpArgs) -> str | None:
    if fragment_side(op.src, op.dst) is None:
        return f"`{op.src.buffer.name}` and `{op.dst.buffer.name}` are in memory"
    return None


@requirement("no side is a fragment")
def _in_memory(op: Copy, args: OpArgs) -> str | None:
    frag = fragment_side(op.src, op.dst)
    return None if frag is None else f"`{frag.buffer.name}` is a fragment"


@Copy.register_lowering("fragment", _has_fragment)
def _lower_fragment(op: Copy, args: LowerArgs, analyzer: Analyzer) -> Stmt:
    def store(dst: BufferLoad, value: PrimExpr) -> Stmt:
        if value.dtype != dst.buffer.dtype:
            value = cast(dst.buffer.dtype, value)
        return BufferStore(dst.buffer, value, dst.indices)

    return lower_fragment_transfer(op.src, op.dst, args, store, "T.copy")


@Copy.register_lowering("elementwise", _in_memory)
def _lower_elementwise(op: Copy, args: LowerArgs, analyzer: Analyzer) -> Stmt:
    s_axes, d_axes = non_unit_axes(op.src), non_unit_axes(op.dst)
    extents = [op.dst.region[d].extent for d in d_axes]

    def make_store(coords: list[PrimExpr]) -> Stmt:
        value: PrimExpr = BufferLoad(op.src.buffer, coords_to_indices(op.src, s_axes, coords))
        if value.dtype != op.dst.buffer.dtype:
            value = cast(op.dst.buffer.dtype, value)
        return BufferStore(op.dst.buffer, value, coords_to_indices(op.dst, d_axes, coords))

    elem = max(op.src.buffer.dtype.bytes, op.dst.buffer.dtype.bytes)
    out = lower_elementwise(op.dst, extents, make_store, args, elem, "i")
    if op.async_copy and args.target.has_cp_async:
        out = AttrStmt(ASYNC_COPY_ATTR, 1, out)
    return out
