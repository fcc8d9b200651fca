"""Buffers: typed, shaped memory in one scope, and regions of them."""

from __future__ import annotations

from typing import Any

from .dtype import DataType, dtype as as_dtype, int32
from .errors import BuildError
from .expr import BufferLoad, IntImm, PrimExpr, convert
from .node import Node, node

__all__ = ["Buffer", "BufferRegion", "Range", "SCOPES"]

SCOPES = ("global", "shared", "shared.dyn", "local", "local.fragment", "local.var", "symmetric")


@node
class Range(Node):
    """The half-open integer interval [min, min + extent)."""

    min: PrimExpr
    extent: PrimExpr

    @staticmethod
    def from_extent(extent: Any) -> Range:
        e = convert(extent)
        return Range(IntImm(0, e.dtype), e)


@node
class Buffer(Node):
    """A multi-dimensional array in one memory scope.

    `shape` entries are constants or Vars (a Var shape entry is a dynamic dimension bound at call time).
    `strides` is empty for a compact row-major buffer. `align` is the guaranteed byte alignment of the
    first element (used to prove vector accesses legal).
    """

    name: str
    shape: tuple[PrimExpr, ...]
    dtype: DataType
    scope: str = "global"
    strides: tuple[PrimExpr, ...] = ()
    align: int = 16

    # -- indexing builds loads, regions and (inside a builder) stores -----------------------------
    def __getitem__(self, key: Any) -> Any:
        from .builder.indexing import index_buffer

        return index_buffer(self, key)

    def __setitem__(self, key: Any, value: Any) -> None:
        from .builder.indexing import store_buffer

        store_buffer(self, key, value)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def vload(self, indices: tuple[Any, ...]) -> BufferLoad:
        return BufferLoad(self, tuple(convert(i) for i in indices))

    def row_major_strides(self) -> tuple[PrimExpr, ...]:
        if self.strides:
            return self.strides
        out: list[PrimExpr] = []
        acc: PrimExpr = IntImm(1, self.shape[-1].dtype if self.shape else int32)
        for dim in reversed(self.shape):
            out.append(acc)
            acc = acc * dim if not isinstance(acc, IntImm) or acc.value != 1 else dim
        return tuple(reversed(out))

    def __iter__(self) -> Any:
        raise BuildError(f"buffer `{self.name}` is not iterable; index it, e.g. {self.name}[i, j]")

    def __bool__(self) -> bool:
        return True


@node
class BufferRegion(Node):
    """A rectangular region of a buffer: one Range per dimension."""

    buffer: Buffer
    region: tuple[Range, ...]

    @staticmethod
    def full(buffer: Buffer) -> BufferRegion:
        return BufferRegion(buffer, tuple(Range.from_extent(d) for d in buffer.shape))

    @property
    def extents(self) -> tuple[PrimExpr, ...]:
        return tuple(r.extent for r in self.region)

    @property
    def mins(self) -> tuple[PrimExpr, ...]:
        return tuple(r.min for r in self.region)

    @property
    def dtype(self) -> DataType:
        return self.buffer.dtype


def make_buffer(name: str, shape: Any, dt: Any, scope: str = "global", align: int = 16) -> Buffer:
    if isinstance(shape, (int, PrimExpr)):
        shape = (shape,)
    dims: list[PrimExpr] = []
    for d in shape:
        if isinstance(d, bool) or not isinstance(d, (int, PrimExpr)):
            raise BuildError(f"buffer `{name}`: a dimension must be an int or a T.dynamic symbol, got {d!r}")
        e = convert(d)
        if not e.dtype.is_int:
            raise BuildError(f"buffer `{name}`: dimension `{d}` has dtype {e.dtype}, expected an integer")
        if isinstance(e, IntImm) and e.value < 0:
            raise BuildError(f"buffer `{name}`: negative dimension {e.value}")
        dims.append(e)
    if scope not in SCOPES:
        raise BuildError(f"buffer `{name}`: unknown scope {scope!r}; expected one of {', '.join(SCOPES)}")
    return Buffer(name, tuple(dims), as_dtype(dt), scope, (), align)


