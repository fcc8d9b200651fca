"""The memory half of `tsir.T`: allocations, copies and fills."""

from __future__ import annotations

import builtins as _py
from typing import Any

from ..buffer import Buffer, BufferRegion, Range, make_buffer, store_value
from ..errors import BuildError
from ..expr import BufferLoad, IntImm, PrimExpr, const_value, convert
from ..printer_expr import print_expr
from ..stmt import TileOpStmt
from ..structural import structural_equal
from ..tileop.copy import Copy
from ..tileop.fill import Fill
from .frame import check_buffer_use, current_builder, infer_name

__all__ = [
    "alloc_shared",
    "alloc_fragment",
    "alloc_local",
    "alloc_var",
    "alloc_buffer",
    "decl_buffer",
    "copy",
    "fill",
    "clear",
]


def _alloc(
    shape: Any,
    dtype: Any,
    scope: str,
    default_name: str,
    strides: Any = (),
    align: int = 16,
    what: str | None = None,
) -> Buffer:
    b = current_builder(what or f"T.alloc_{default_name}")
    k = b.kernel
    if k is None:
        raise BuildError(f"{scope} buffers must be allocated inside a T.Kernel")
    name = b.unique(infer_name(default_name))
    if isinstance(shape, (int, PrimExpr)):
        shape = (shape,)
    for d in shape:
        if const_value(d) is None:
            raise BuildError(f"`{name}`: {scope} buffers need constant shapes, got {shape!r}")
    buf = make_buffer(name, shape, dtype, scope, align)
    if strides:
        buf = buf.replace(strides=tuple(convert(s) for s in strides))
    b.owner[buf] = k
    b.frame.allocate(buf)
    return buf


def decl_buffer(
    shape: Any,
    dtype: Any,
    scope: str,
    data: Buffer,
    byte_offset: int = 0,
    strides: Any = (),
    align: int = 16,
) -> Buffer:
    """A view of `byte_offset` bytes into the pool buffer `data` (the printer's form for planned
    shared memory), for the statements that follow."""
    b = current_builder("T.decl_buffer")
    if b.kernel is None:
        raise BuildError("T.decl_buffer must be inside a T.Kernel")
    if not isinstance(data, Buffer):
        raise BuildError(f"T.decl_buffer: data must be a buffer (the pool), got {data!r}")
    if not isinstance(byte_offset, int) or isinstance(byte_offset, bool) or byte_offset < 0:
        raise BuildError(f"T.decl_buffer: byte_offset must be an int >= 0, got {byte_offset!r}")
    name = b.unique(infer_name("view"))
    buf = make_buffer(name, shape, dtype, scope, align)
    if strides:
        buf = buf.replace(strides=tuple(convert(s) for s in strides))
    b.owner[buf] = b.kernel
    b.frame.items.append(("decl", buf, data, byte_offset))
    return buf


def alloc_buffer(
    shape: Any, dtype: Any, scope: str = "local", strides: Any = (), align: int = 16
) -> Buffer:
    """A buffer in any on-chip scope, with explicit strides or alignment (the printer's form for
    allocations the other T.alloc_* do not spell, such as a planned shared-memory pool)."""
    if scope in ("global", "symmetric"):
        raise BuildError(
            f"T.alloc_buffer: {scope} buffers are parameters (T.param), not allocations"
        )
    if not isinstance(align, int) or isinstance(align, bool) or align < 1:
        raise BuildError(f"T.alloc_buffer: align must be a positive int, got {align!r}")
    return _alloc(shape, dtype, scope, "buf", strides, align, "T.alloc_buffer")


def alloc_shared(shape: Any, dtype: Any, scope: str = "shared.dyn") -> Buffer:
    if scope not in ("shared", "shared.dyn"):
        raise BuildError(f"T.alloc_shared scope must be 'shared' or 'shared.dyn', got {scope!r}")
    return _alloc(shape, dtype, scope, "shared")


def alloc_fragment(shape: Any, dtype: Any) -> Buffer:
    return _alloc(shape, dtype, "local.fragment", "frag")


def alloc_local(shape: Any, dtype: Any) -> Buffer:
    return _alloc(shape, dtype, "local", "local")


def alloc_var(dtype: Any, init: Any = None) -> Buffer:
    """A per-thread scalar variable: read and write it as `v[0]`."""
    buf = _alloc((1,), dtype, "local.var", "var")
    if init is not None:
        buf[0] = init
    return buf


def _region(x: Any, what: str) -> BufferRegion | BufferLoad:
    if isinstance(x, Buffer):
        check_buffer_use(x, element_access=False)
        return BufferRegion.full(x)
    if isinstance(x, (BufferRegion, BufferLoad)):
        return x
    raise BuildError(f"{what} must be a buffer, a slice of one or one element of one, got {x!r}")


def _squeezed(extents: tuple[PrimExpr, ...]) -> list[PrimExpr]:
    return [e for e in extents if const_value(e) != 1]


def _same_extent(a: PrimExpr, b: PrimExpr) -> bool:
    if a is b:
        return True
    ca, cb = const_value(a), const_value(b)
    if ca is not None and cb is not None:
        return ca == cb
    return structural_equal(a, b)


def _element_region(load: BufferLoad, extents: tuple[PrimExpr, ...], what: str) -> BufferRegion:
    """`A[i, j]` used as a copy operand: the region starting there with the other side's extents."""
    n = load.buffer.ndim
    ext = list(_squeezed(extents))
    if len(ext) > n:
        raise BuildError(
            f"{what}: `{load.buffer.name}` has {n} dimensions but the other side of the copy has "
            f"{len(ext)} non-unit extents"
        )
    full = [IntImm(1, e.dtype) for e in load.indices[: n - len(ext)]] + ext
    return BufferRegion(load.buffer, tuple(Range(i, e) for i, e in zip(load.indices, full)))


def copy(src: Any, dst: Any) -> None:
    """Copy a region to another (global, shared, local); dtypes are cast. See DESIGN's semantics."""
    b = current_builder("T.copy")
    s_region, d_region = copy_regions(src, dst, "T.copy")
    if b.kernel is None:
        raise BuildError(
            "T.copy must be inside a T.Kernel (use T.cp_engine_copy for host-side copies)"
        )
    b.frame.emit(TileOpStmt(Copy(s_region, d_region)))


def copy_regions(src: Any, dst: Any, what: str) -> tuple[BufferRegion, BufferRegion]:
    """The two regions of a copy-like op (`what`): a buffer, a slice, or one element meaning the
    region starting there with the other side's extents; non-unit extents must match in order."""
    s, d = _region(src, f"{what} source"), _region(dst, f"{what} destination")
    if isinstance(d, BufferRegion):
        d_region = d
        s_region = (
            _element_region(s, d.extents, f"{what} source") if isinstance(s, BufferLoad) else s
        )
    elif isinstance(s, BufferRegion):
        s_region = s
        d_region = _element_region(d, s.extents, f"{what} destination")
    else:  # two elements
        d_region = BufferRegion(d.buffer, tuple(Range(i, IntImm(1, i.dtype)) for i in d.indices))
        s_region = BufferRegion(s.buffer, tuple(Range(i, IntImm(1, i.dtype)) for i in s.indices))
    se, de = _squeezed(s_region.extents), _squeezed(d_region.extents)
    if len(se) != len(de) or not _py.all(_same_extent(x, y) for x, y in zip(se, de)):
        fmt = lambda r: "(" + ", ".join(print_expr(e) for e in r.extents) + ")"  # noqa: E731
        raise BuildError(
            f"{what} shape mismatch: source `{s_region.buffer.name}` region {fmt(s_region)} vs "
            f"destination `{d_region.buffer.name}` region {fmt(d_region)} (non-unit extents must "
            f"match in order)"
        )
    _check_region_bounds(s_region, f"{what} source")
    _check_region_bounds(d_region, f"{what} destination")
    return s_region, d_region


def _check_region_bounds(r: BufferRegion, what: str) -> None:
    """Regions of on-chip buffers must fit (they have no bounds guards); global ones are guarded."""
    if r.buffer.scope in ("global", "symmetric"):
        return
    for dim, (rng, ext) in enumerate(zip(r.region, r.buffer.shape)):
        lo, n, size = const_value(rng.min), const_value(rng.extent), const_value(ext)
        if lo is not None and n is not None and size is not None and (lo < 0 or lo + n > size):
            raise BuildError(
                f"{what}: region [{lo}, {lo + n}) exceeds dimension {dim} of `{r.buffer.name}` "
                f"(extent {size})"
            )


def fill(dst: Any, value: Any) -> None:
    b = current_builder("T.fill")
    d = _region(dst, "T.fill destination")
    if isinstance(d, BufferLoad):
        d = BufferRegion(d.buffer, tuple(Range(i, IntImm(1, i.dtype)) for i in d.indices))
    if b.kernel is None:
        raise BuildError("T.fill must be inside a T.Kernel")
    _check_region_bounds(d, "T.fill destination")
    b.frame.emit(TileOpStmt(Fill(d, store_value(d.buffer, value))))


def clear(dst: Any) -> None:
    fill(dst, 0)
