"""Buffers: typed, shaped memory in one scope, and regions of them.

Indexing builds IR: `A[i, j]` is a BufferLoad, `A[i, 0:64]` a BufferRegion (checked here: index
count, integer indices, constant indices in range, no steps). Storing (`A[i, j] = v`) is a
statement, so it needs a builder: `tsir.builder` registers an `IndexHook` on `index_hooks()`
while a `with T.prim_func(...)` block runs, which also checks each access against the builder's
state (a buffer used outside its kernel) and folds slice extents with the arithmetic analyzer.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Protocol

from .dtype import DataType, int32
from .dtype import dtype as as_dtype
from .errors import BuildError, DTypeError
from .expr import Add, BufferLoad, IntImm, PrimExpr, cast, convert
from .node import Node, node

__all__ = [
    "Buffer",
    "BufferRegion",
    "Range",
    "SCOPES",
    "IndexHook",
    "index_hooks",
    "normalize_index",
    "index_buffer",
    "store_value",
    "make_buffer",
    "BufferData",
]

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
        hooks = index_hooks()
        out = index_buffer(self, key)
        return hooks[-1].indexed(self, out) if hooks else out

    def __setitem__(self, key: Any, value: Any) -> None:
        hooks = index_hooks()
        if not hooks:
            raise BuildError(
                f"storing into `{self.name}`[...] outside `with T.prim_func(...)`: a store is a "
                f"statement; build a tsir.BufferStore instead"
            )
        hooks[-1].store(self, key, value)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def data(self) -> BufferData:
        """The buffer's storage, as TileLang's `buf.data`: `T.Tensor(shape, dtype, buf.data)` makes
        a view of it (`T.view`)."""
        return BufferData(self)

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


@dataclass(frozen=True, slots=True)
class BufferData:
    """`buf.data`: the storage of `buffer`, which a view (`T.view`, `T.Tensor(shape, dtype,
    buf.data)`) reinterprets. Not an IR node: it only names the buffer a view is made from."""

    buffer: Buffer

    def __repr__(self) -> str:
        return f"{self.buffer.name}.data"


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
            raise BuildError(
                f"buffer `{name}`: a dimension must be an int or a T.dynamic symbol, got {d!r}"
            )
        e = convert(d)
        if not e.dtype.is_int:
            raise BuildError(
                f"buffer `{name}`: dimension `{d}` has dtype {e.dtype}, expected an integer"
            )
        if isinstance(e, IntImm) and e.value < 0:
            raise BuildError(f"buffer `{name}`: negative dimension {e.value}")
        dims.append(e)
    if scope not in SCOPES:
        raise BuildError(
            f"buffer `{name}`: unknown scope {scope!r}; expected one of {', '.join(SCOPES)}"
        )
    return Buffer(name, tuple(dims), as_dtype(dt), scope, (), align)


# -- indexing -------------------------------------------------------------------------------------


class IndexHook(Protocol):
    """What an active builder adds to indexing (see the module docstring)."""

    def indexed(
        self, buffer: Buffer, access: BufferLoad | BufferRegion
    ) -> BufferLoad | BufferRegion:
        """Check (and possibly refine) an access just built by `buffer[...]`."""
        ...

    def store(self, buffer: Buffer, key: Any, value: Any) -> None:
        """Emit `buffer[key] = value` into the function being built."""
        ...


_hooks = threading.local()


def index_hooks() -> list[IndexHook]:
    """The hooks of the builders active in this thread (innermost last)."""
    stack = getattr(_hooks, "stack", None)
    if stack is None:
        stack = _hooks.stack = []
    return stack


def normalize_index(buffer: Buffer, i: Any, dim: int) -> PrimExpr:
    if isinstance(i, float) or (isinstance(i, PrimExpr) and i.dtype.is_float):
        raise DTypeError(
            f"buffer `{buffer.name}`: index {dim} is the float `{i}`; indices must be integers "
            f"(use `//` for integer division, or T.cast(..., 'int32'))"
        )
    if isinstance(i, bool) or not isinstance(i, (int, PrimExpr)):
        raise BuildError(
            f"buffer `{buffer.name}`: index {dim} is {i!r}, expected an integer expression"
        )
    e = convert(i)
    if not e.dtype.is_int or e.dtype.lanes != 1 and dim != buffer.ndim - 1:
        raise DTypeError(
            f"buffer `{buffer.name}`: index {dim} `{e}` has dtype {e.dtype}, expected an integer"
        )
    extent = buffer.shape[dim]
    if isinstance(e, IntImm) and isinstance(extent, IntImm) and not 0 <= e.value < extent.value:
        raise BuildError(
            f"buffer `{buffer.name}`: index {e.value} is out of range for dimension {dim} "
            f"of extent {extent.value}"
        )
    return e


def _key_tuple(buffer: Buffer, key: Any) -> tuple[Any, ...]:
    key = key if isinstance(key, tuple) else (key,)
    if any(k is Ellipsis for k in key):
        raise BuildError(f"buffer `{buffer.name}`: `...` is not supported in indices")
    if len(key) != buffer.ndim:
        shape = "(" + ", ".join(str(d) for d in buffer.shape) + ")"
        raise BuildError(
            f"buffer `{buffer.name}` has {buffer.ndim} dimension{'s' if buffer.ndim != 1 else ''} "
            f"{shape}, got {len(key)} ind{'ices' if len(key) != 1 else 'ex'}"
        )
    return key


def _slice_range(buffer: Buffer, s: slice, dim: int) -> Range:
    if s.step not in (None, 1):
        raise BuildError(
            f"buffer `{buffer.name}`: slices with a step are not supported (dimension {dim})"
        )
    start = (
        normalize_index(buffer, 0 if s.start is None else s.start, dim)
        if s.start is not None
        else None
    )
    lo = start if start is not None else IntImm(0, buffer.shape[dim].dtype)
    if s.stop is None:
        hi = buffer.shape[dim]
    else:
        hi = convert(s.stop)
        if not hi.dtype.is_int:
            raise DTypeError(f"buffer `{buffer.name}`: slice bound `{s.stop}` is not an integer")
    extent = _slice_extent(lo, hi)
    if isinstance(extent, IntImm) and extent.value <= 0:
        raise BuildError(f"buffer `{buffer.name}`: empty slice {lo}:{hi} in dimension {dim}")
    return Range(lo, extent)


def _slice_extent(lo: PrimExpr, hi: PrimExpr) -> PrimExpr:
    """`hi - lo`, as `e` when `hi` is written `lo + e` (`A[x:x + 64]` has extent 64). A builder's
    hook also recognizes `lo` written twice (`A[i * n:i * n + n]`) and folds with the analyzer."""
    if isinstance(hi, Add) and hi.dtype == lo.dtype and hi.a is lo:
        return hi.b
    return hi - lo


def index_buffer(buffer: Buffer, key: Any) -> BufferLoad | BufferRegion:
    """`buffer[key]`: a load of one element, or the region of a slice (see the module docstring)."""
    key = _key_tuple(buffer, key)
    if any(isinstance(k, slice) for k in key):
        ranges = []
        for d, k in enumerate(key):
            if isinstance(k, slice):
                ranges.append(_slice_range(buffer, k, d))
            else:
                e = normalize_index(buffer, k, d)
                ranges.append(Range(e, IntImm(1, e.dtype)))
        return BufferRegion(buffer, tuple(ranges))
    return BufferLoad(buffer, tuple(normalize_index(buffer, k, d) for d, k in enumerate(key)))


def store_value(buffer: Buffer, value: Any) -> PrimExpr:
    """The value converted for a store: literals take the buffer dtype, other dtypes are cast."""
    if isinstance(value, (BufferRegion, Buffer)):
        raise BuildError(f"cannot store a buffer region into `{buffer.name}`[...]; use T.copy")
    if isinstance(value, float) and not buffer.dtype.is_float:
        raise DTypeError(
            f"storing the float {value} into {buffer.dtype} buffer `{buffer.name}`; use T.cast"
        )
    v = convert(value, buffer.dtype)
    if v.dtype.element != buffer.dtype:
        v = cast(buffer.dtype.with_lanes(v.dtype.lanes), v)
    return v
