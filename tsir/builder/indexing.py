"""`buffer[...]` in user code, while a function is being built: the builder's `IndexHook`.

The IR core builds the load or region (`tsir.buffer.index_buffer`); here it is checked against
the builder's state (a buffer used outside the kernel that allocated it) and a slice's extent is
folded (`A[i * n:(i + 1) * n]` has extent n: copies and fills need constant extents to match
tiles), and `buffer[...] = value` becomes a store, or a fill for a slice.
"""

from __future__ import annotations

from typing import Any

from ..arith import Analyzer
from ..buffer import Buffer, BufferRegion, Range, index_buffer, store_value
from ..errors import BuildError
from ..expr import Add, BufferLoad, IntImm, PrimExpr, Sub
from ..stmt import BufferStore
from ..structural import structural_equal
from .frame import check_buffer_use, current_builder
from .memory import fill

__all__ = ["BUILDER_ACCESS", "BuilderAccess", "fold_extent"]


def fold_extent(extent: PrimExpr) -> PrimExpr:
    """A slice's `hi - lo`, folded: `e` when `hi` is written `lo + e`, else the analyzer's constant
    when it finds one, else as it is."""
    if isinstance(extent, Sub) and isinstance(extent.a, Add):
        hi, lo = extent.a, extent.b
        if hi.dtype == lo.dtype and structural_equal(hi.a, lo):
            return hi.b
    if not isinstance(extent, IntImm) and not extent.dtype.is_float:
        folded = Analyzer().simplify(extent)
        if isinstance(folded, IntImm):
            return folded
    return extent


class BuilderAccess:
    """The builder's `IndexHook` (tsir.buffer): pushed while `with T.prim_func(...)` runs."""

    def indexed(
        self, buffer: Buffer, access: BufferLoad | BufferRegion
    ) -> BufferLoad | BufferRegion:
        if isinstance(access, BufferLoad):
            check_buffer_use(buffer, element_access=True)
            return access
        check_buffer_use(buffer, element_access=False)
        ranges = []
        for dim, r in enumerate(access.region):
            extent = fold_extent(r.extent)
            if isinstance(extent, IntImm) and extent.value <= 0:
                hi = r.min + r.extent
                raise BuildError(
                    f"buffer `{buffer.name}`: empty slice {r.min}:{hi} in dimension {dim}"
                )
            ranges.append(r if extent is r.extent else Range(r.min, extent))
        return access.replace(region=tuple(ranges))

    def store(self, buffer: Buffer, key: Any, value: Any) -> None:
        b = current_builder(f"storing into `{buffer.name}`")
        if not b.frames:
            raise BuildError(f"store into `{buffer.name}` outside the function body")
        target = self.indexed(buffer, index_buffer(buffer, key))
        if isinstance(target, BufferRegion):
            fill(target, value)
            return
        b.frame.emit(BufferStore(buffer, store_value(buffer, value), target.indices))


BUILDER_ACCESS = BuilderAccess()
