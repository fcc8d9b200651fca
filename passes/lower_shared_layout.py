"""LowerSharedLayout: accesses to shared tiles with a layout (swizzles, padding) go through it.

Requires: vectorized accesses (VectorizeLoop proved contiguity and alignment on logical indices).
Guarantees: every shared buffer listed in a kernel's `shared_layout_map` becomes a 1-D buffer of
its layout's size, each access indexed by the layout's linearized forward map. A vector access
`B[i, j0 .. j0+V)` stays one vector access: the layouts only permute 16-byte chunks (or pad rows),
and the vector lies inside one chunk. A swizzled tile that the async proxy reads or writes (a
wgmma operand, a TMA destination: calls whose declared effects are asynchronous) is aligned to its
swizzle atom (1024 bytes for 128-byte swizzles): that hardware swizzles absolute addresses.
"""

from __future__ import annotations

from typing import Any

from tsir.buffer import Buffer, make_buffer
from tsir.expr import BufferLoad, Call, PrimExpr, Ramp
from tsir.function import PrimFunc
from tsir.intrin import Access, device_function
from tsir.layout.swizzle import SwizzleMode
from tsir.layout.wgmma_layouts import swizzle_mode
from tsir.stmt import Allocate, AttrStmt, BufferStore, KernelLaunch, Stmt
from tsir.visitor import collect

from .infra import PassContext, register_pass
from .lower_tile_op import SHARED_LAYOUT_ATTR
from .scope import ScopedMutator

__all__ = ["LowerSharedLayout"]


def async_proxy_buffers(body: Stmt) -> set[Buffer]:
    """Shared buffers whose address reaches a call argument the async proxy reads or writes."""
    out: set[Buffer] = set()
    for c in collect(body, Call):
        fn = device_function(c.op)
        if fn is None:
            continue
        mbarrier = Access.MBARRIER in fn.effects
        for mode, arg in zip(fn.effects, c.args):
            if mode in (Access.ASYNC_READ, Access.ASYNC_READ_WRITE) or (
                mode is Access.ASYNC_WRITE and mbarrier
            ):
                out |= {
                    a.args[0].buffer
                    for a in collect(arg, Call)
                    if a.op == "address_of" and isinstance(a.args[0], BufferLoad)
                }
    return out


class _Apply(ScopedMutator):
    def __init__(self, layouts: dict[Buffer, Any], async_proxy: set[Buffer]):
        super().__init__()
        self.layouts = layouts
        self.physical: dict[Buffer, Buffer] = {}
        for b, lay in layouts.items():
            size = 1
            for e in lay.const_output_shape():
                size *= e
            align = max(b.align, 128)
            if b in async_proxy:
                mode = swizzle_mode(lay, b.dtype)
                if mode is not None and mode is not SwizzleMode.NONE:
                    align = max(align, mode.alignment)
            self.physical[b] = make_buffer(b.name, (size,), b.dtype, b.scope, align=align)

    def index(self, b: Buffer, indices: tuple[PrimExpr, ...]) -> tuple[PrimExpr, ...]:
        last = indices[-1]
        lanes = last.lanes if isinstance(last, Ramp) else 0
        logical = (*indices[:-1], last.base if isinstance(last, Ramp) else last)
        flat = self.analyzer.simplify(self.layouts[b].linear_forward(logical))
        return (Ramp(flat, last.stride, lanes),) if lanes else (flat,)  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`

    def visit_AttrStmt(self, s: AttrStmt) -> Stmt:
        body = self.visit(s.body)
        if s.key == "pipeline_buffers":
            return AttrStmt(s.key, tuple(self.physical.get(b, b) for b in s.value), body)
        return s.replace(body=body) if body is not s.body else s

    def visit_Allocate(self, s: Allocate) -> Stmt:
        phys = self.physical.get(s.buffer)
        body = self.visit(s.body)
        return Allocate(phys, body) if phys is not None else s.replace(body=body)

    def visit_BufferLoad(self, e: BufferLoad) -> PrimExpr:
        e = self.generic_visit(e)
        if e.buffer not in self.layouts:
            return e
        return BufferLoad(self.physical[e.buffer], self.index(e.buffer, e.indices))

    def visit_BufferStore(self, s: BufferStore) -> Stmt:
        s = self.generic_visit(s)
        if s.buffer not in self.layouts:
            return s
        return BufferStore(self.physical[s.buffer], s.value, self.index(s.buffer, s.indices))


class _Kernels(ScopedMutator):
    def visit_KernelLaunch(self, k: KernelLaunch) -> Stmt:
        body = k.body
        if not (isinstance(body, AttrStmt) and body.key == SHARED_LAYOUT_ATTR):
            return k
        apply = _Apply(dict(body.value), async_proxy_buffers(body.body))
        for v, n in zip(k.block_vars, k.grid):
            apply.analyzer.bind(v, 0, n)
        for v, n in zip(k.thread_vars, k.threads):
            apply.analyzer.bind(v, 0, n)
        return k.replace(body=apply.visit(body.body))


@register_pass("LowerSharedLayout")
def LowerSharedLayout(func: PrimFunc, ctx: PassContext) -> PrimFunc:
    """Index shared tiles through their (swizzled or padded) layouts."""
    return _Kernels().visit(func)
