"""`buffer[...]` in user code: loads, regions and stores, with the checks users need."""

from __future__ import annotations

from typing import Any

from ..buffer import Buffer, BufferRegion, Range
from ..errors import BuildError, DTypeError
from ..expr import BufferLoad, IntImm, PrimExpr, cast, convert
from ..stmt import BufferStore
from .frame import builder_stack, current_builder

__all__ = ["index_buffer", "store_buffer", "check_buffer_use", "normalize_index"]


def check_buffer_use(buffer: Buffer, element_access: bool) -> None:
    """Reject a buffer used outside the kernel it lives in."""
    stack = builder_stack()
    if not stack:
        return
    b = stack[-1]
    kernel = b.kernel
    owner = b.owner.get(buffer)
    if owner is not None and owner is not kernel:
        where = "outside any kernel" if kernel is None else "in another kernel"
        raise BuildError(
            f"buffer `{buffer.name}` ({buffer.scope}) is used {where}; it belongs to the "
            f"`T.Kernel` that allocated it"
        )
    if element_access and kernel is None and b.frames:
        raise BuildError(
            f"buffer `{buffer.name}` is indexed outside a `T.Kernel`; element accesses run on the "
            f"GPU and must be inside `with T.Kernel(...)`"
        )


def normalize_index(buffer: Buffer, i: Any, dim: int) -> PrimExpr:
    if isinstance(i, float) or (isinstance(i, PrimExpr) and i.dtype.is_float):
        raise DTypeError(
            f"buffer `{buffer.name}`: index {dim} is the float `{i}`; indices must be integers "
            f"(use `//` for integer division, or T.cast(..., 'int32'))"
        )
    if isinstance(i, bool) or not isinstance(i, (int, PrimExpr)):
        raise BuildError(f"buffer `{buffer.name}`: index {dim} is {i!r}, expected an integer expression")
    e = convert(i)
    if not e.dtype.is_int or e.dtype.lanes != 1 and dim != buffer.ndim - 1:
        raise DTypeError(f"buffer `{buffer.name}`: index {dim} `{e}` has dtype {e.dtype}, expected an integer")
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
        raise BuildError(
            f"buffer `{buffer.name}` has {buffer.ndim} dimension{'s' if buffer.ndim != 1 else ''} "
            f"{_shape_str(buffer)}, got {len(key)} ind{'ices' if len(key) != 1 else 'ex'}"
        )
    return key


def _slice_range(buffer: Buffer, s: slice, dim: int) -> Range:
    if s.step not in (None, 1):
        raise BuildError(f"buffer `{buffer.name}`: slices with a step are not supported (dimension {dim})")
    start = normalize_index(buffer, 0 if s.start is None else s.start, dim) if s.start is not None else None
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
    """`hi - lo`, as `e` when `hi` is written `lo + e`: `A[x:x + 64]` has extent 64."""
    from ..expr import Add
    from ..structural import structural_equal

    if isinstance(hi, Add) and hi.dtype == lo.dtype and structural_equal(hi.a, lo):
        return hi.b
    extent = hi - lo
    if not isinstance(extent, IntImm) and not extent.dtype.is_float:
        # `A[i * n:(i + 1) * n]` has extent n: the slice's extent is constant whenever the
        # analyzer can fold it, and copies and fills need constant extents to match tiles.
        from ..arith import Analyzer

        folded = Analyzer().simplify(extent)
        if isinstance(folded, IntImm):
            return folded
    return extent


def index_buffer(buffer: Buffer, key: Any) -> BufferLoad | BufferRegion:
    key = _key_tuple(buffer, key)
    if any(isinstance(k, slice) for k in key):
        check_buffer_use(buffer, element_access=False)
        ranges = []
        for d, k in enumerate(key):
            if isinstance(k, slice):
                ranges.append(_slice_range(buffer, k, d))
            else:
                e = normalize_index(buffer, k, d)
                ranges.append(Range(e, IntImm(1, e.dtype)))
        return BufferRegion(buffer, tuple(ranges))
    check_buffer_use(buffer, element_access=True)
    return BufferLoad(buffer, tuple(normalize_index(buffer, k, d) for d, k in enumerate(key)))


def store_buffer(buffer: Buffer, key: Any, value: Any) -> None:
    b = current_builder(f"storing into `{buffer.name}`")
    if not b.frames:
        raise BuildError(f"store into `{buffer.name}` outside the function body")
    key = _key_tuple(buffer, key)
    if any(isinstance(k, slice) for k in key):
        from . import lang

        lang.fill(index_buffer(buffer, key), value)
        return
    check_buffer_use(buffer, element_access=True)
    indices = tuple(normalize_index(buffer, k, d) for d, k in enumerate(key))
    b.frame.emit(BufferStore(buffer, store_value(buffer, value), indices))


def store_value(buffer: Buffer, value: Any) -> PrimExpr:
    """The value converted for a store: literals take the buffer dtype, other dtypes are cast."""
    if isinstance(value, (BufferRegion, Buffer)):
        raise BuildError(f"cannot store a buffer region into `{buffer.name}`[...]; use T.copy")
    if isinstance(value, float) and not buffer.dtype.is_float:
        raise DTypeError(f"storing the float {value} into {buffer.dtype} buffer `{buffer.name}`; use T.cast")
    v = convert(value, buffer.dtype)
    if v.dtype.element != buffer.dtype:
        v = cast(buffer.dtype.with_lanes(v.dtype.lanes), v)
    return v


def _shape_str(buffer: Buffer) -> str:
    from ..printer import print_expr

    return "(" + ", ".join(print_expr(d) for d in buffer.shape) + ")"
