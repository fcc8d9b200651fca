"""Atomics: TileLang's `T.atomic_add`, `T.atomic_max`, `T.atomic_min` (one element, or a region
from a tile) with `memory_order=` and `return_prev=`, and the vector adds `T.atomic_addx2` /
`T.atomic_addx4`.

- One element: `T.atomic_max(C[i, j], x)`; with `return_prev=True` the call returns the value the
  element held before (in a fresh `T.alloc_var`, so the atomic happens once, here, whatever the
  program does with the value). An element outside a global buffer is skipped (and reads 0).
- A region: `T.atomic_add(C[by * 64, 0], C_f)` (resolved like `T.copy`), a tile op; `return_prev`
  has no meaning there and raises.
- `memory_order`: "relaxed" (default), "consume", "acquire", "release", "acq_rel", "seq_cst",
  gpu scope (tsir/atomic.h says how each is built).
- `T.atomic_addx2(dst, src)` / `T.atomic_addx4(dst, src)`: dst[k] += src[k] for the 2 (4)
  consecutive elements from `dst` and `src` (elements, or slices of that length), each element
  atomically: float16/bfloat16 pairs anywhere; float32 pairs and quads in global memory on sm_90
  and later (the Verify pass refuses an older target). `dst` must be aligned to the vector (its
  last index a multiple of 2 or 4); its last dimension a multiple of the vector when constant.
"""

from __future__ import annotations

from typing import Any

from ..buffer import Buffer, BufferRegion
from ..dtype import DataType
from ..errors import BuildError, DTypeError, UnsupportedError, user_location
from ..expr import BufferLoad, Call, IntImm, PrimExpr, cast, const_value, convert
from ..stmt import Evaluate, TileOpStmt
from ..tileop.atomic_add import ATOMIC_DTYPES, AtomicAdd, MemoryOrder, atomic_call
from ..tileop.atomic_max import AtomicMax
from ..tileop.atomic_min import AtomicMin
from .frame import current_builder
from .memory import alloc_var, copy

__all__ = ["atomic_add", "atomic_max", "atomic_min", "atomic_addx2", "atomic_addx4"]

_MEMORY = ("global", "shared", "shared.dyn", "symmetric")
_TILE_OPS = {"add": AtomicAdd, "max": AtomicMax, "min": AtomicMin}


def _order(what: str, memory_order: Any) -> MemoryOrder | None:
    if memory_order is None:
        return None
    try:
        return MemoryOrder(memory_order)
    except ValueError:
        names = ", ".join(repr(m.value) for m in MemoryOrder)
        raise BuildError(
            f"{what}: memory_order must be one of {names}, got {memory_order!r}"
        ) from None


def _single_element(x: Any) -> BufferLoad | None:
    """A buffer or region of one element (TileLang's `atomic_max(counter, v)`) as that element."""
    region = BufferRegion.full(x) if isinstance(x, Buffer) else x
    if isinstance(region, BufferRegion) and all(const_value(e) == 1 for e in region.extents):
        return BufferLoad(region.buffer, tuple(region.mins))
    return None


def _atomic(
    kind: str, dst: Any, value: Any, memory_order: Any, return_prev: bool
) -> PrimExpr | None:
    what = f"T.atomic_{kind}"
    b = current_builder(what)
    if b.kernel is None:
        raise BuildError(f"{what} must be inside a T.Kernel")
    order = _order(what, memory_order)
    if not isinstance(value, (Buffer, BufferRegion)):
        elem = dst if isinstance(dst, BufferLoad) else _single_element(dst)
        if elem is None:
            raise BuildError(
                f"{what}(region, scalar): adding one value to every element of a region is not "
                f"supported; index one element (`{what}(C[i, j], v)`) or give a source tile"
            )
        return _element(what, kind, elem, value, order, return_prev)
    if return_prev:
        raise BuildError(f"{what}(..., return_prev=True) needs one element, not a region")
    # Region form: resolve both sides like T.copy does, then make the op atomic.
    copy(value, dst)
    op = b.frame.items.pop().op
    if op.dst.buffer.scope not in _MEMORY:
        raise BuildError(
            f"{what}: the destination `{op.dst.buffer.name}` must be in global or shared memory"
        )
    _check_dtype(what, op.dst.buffer.dtype, op.dst.buffer.name)
    b.frame.emit(TileOpStmt(_TILE_OPS[kind](op.src, op.dst, order)))
    return None


def _check_dtype(what: str, dt: DataType, name: str) -> None:
    if dt.name not in ATOMIC_DTYPES:
        raise DTypeError(f"{what}: `{name}` is {dt}; atomics update {', '.join(ATOMIC_DTYPES)}")


def _element(
    what: str, kind: str, dst: BufferLoad, value: Any, order: MemoryOrder | None, return_prev: bool
) -> PrimExpr | None:
    b = current_builder(what)
    if dst.buffer.scope not in _MEMORY:
        raise BuildError(
            f"{what}: `{dst.buffer.name}` is {dst.buffer.scope}; atomics need global or shared "
            f"memory"
        )
    _check_dtype(what, dst.buffer.dtype, dst.buffer.name)
    v = value if isinstance(value, PrimExpr) else convert(value, dst.buffer.dtype)
    call = atomic_call(kind, dst, v, order)
    if not return_prev:
        b.frame.emit(Evaluate(call))
        return None
    old = alloc_var(dst.buffer.dtype)
    old[0] = call
    return old[0]


def atomic_add(
    dst: Any, value: Any, memory_order: Any = None, return_prev: bool = False, use_tma: bool = False
) -> PrimExpr | None:
    """`dst += value` atomically: one element (`T.atomic_add(C[i, j], x)`, the old value back with
    `return_prev=True`) or a whole region from a buffer of the same non-unit shape
    (`T.atomic_add(C[by * 64, 0], C_f)`)."""
    if use_tma:
        raise UnsupportedError(
            "T.atomic_add(use_tma=True): TMA reductions (cp.reduce.async.bulk) are not supported "
            "by tsir",
            loc=user_location(),
        )
    return _atomic("add", dst, value, memory_order, return_prev)


def atomic_max(
    dst: Any, value: Any, memory_order: Any = None, return_prev: bool = False
) -> PrimExpr | None:
    """`dst = max(dst, value)` atomically (a NaN operand is ignored, as by fmaxf): one element or a
    region, as `T.atomic_add`."""
    return _atomic("max", dst, value, memory_order, return_prev)


def atomic_min(
    dst: Any, value: Any, memory_order: Any = None, return_prev: bool = False
) -> PrimExpr | None:
    """`dst = min(dst, value)` atomically (a NaN operand is ignored, as by fminf): one element or a
    region, as `T.atomic_add`."""
    return _atomic("min", dst, value, memory_order, return_prev)


def _first(x: Any, n: int, what: str, role: str) -> BufferLoad:
    """The first element of `n` consecutive ones: an element, or a slice of length n along the
    last dimension."""
    if isinstance(x, Buffer):
        x = BufferRegion.full(x)
    if isinstance(x, BufferLoad):
        return x
    if isinstance(x, BufferRegion):
        ext = [const_value(e) for e in x.extents]
        if ext[-1] == n and all(e == 1 for e in ext[:-1]):
            return BufferLoad(x.buffer, tuple(x.mins))
        raise BuildError(
            f"{what}: the {role} slice of `{x.buffer.name}` must hold {n} consecutive elements "
            f"of its last dimension"
        )
    raise BuildError(
        f"{what}: the {role} must be an element (or a {n}-element slice) of a buffer, got {x!r}"
    )


def _vector(n: int, dst: Any, value: Any, return_prev: bool) -> None:
    what = f"T.atomic_addx{n}"
    b = current_builder(what)
    if b.kernel is None:
        raise BuildError(f"{what} must be inside a T.Kernel")
    if return_prev:
        raise BuildError(
            f"{what}(..., return_prev=True): the previous values form a vector, which tsir "
            f"expressions cannot hold; use {n} T.atomic_add(..., return_prev=True)"
        )
    d = _first(dst, n, what, "destination")
    s = _first(value, n, what, "source")
    dt = d.buffer.dtype
    if dt.name == "float32":
        op = f"tsir.atomic.atomic_add_x{n}_f32"
        if d.buffer.scope not in ("global", "symmetric"):
            raise BuildError(
                f"{what}: `{d.buffer.name}` is {d.buffer.scope}; float32 vector atomics exist in "
                f"global memory only"
            )
    elif n == 2 and dt.name in ("float16", "bfloat16"):
        op = "tsir.atomic.atomic_add_x2"
        if d.buffer.scope not in _MEMORY:
            raise BuildError(
                f"{what}: `{d.buffer.name}` is {d.buffer.scope}; atomics need global or shared "
                f"memory"
            )
    else:
        allowed = "float16, bfloat16 or float32" if n == 2 else "float32"
        raise DTypeError(f"{what}: `{d.buffer.name}` is {dt}; {what} updates {allowed}")
    last = const_value(d.buffer.shape[-1])
    if last is not None and last % n:
        raise BuildError(
            f"{what}: the last dimension of `{d.buffer.name}` ({last}) is not a multiple of "
            f"{n}, so a vector could straddle its end"
        )
    idx = s.indices[-1]
    values = []
    for k in range(n):
        load = BufferLoad(s.buffer, (*s.indices[:-1], idx + IntImm(k, idx.dtype) if k else idx))
        values.append(load if load.dtype == dt else cast(dt, load))
    address = Call(DataType("handle"), "address_of", (d,))
    b.frame.emit(Evaluate(Call(dt, op, (address, *values))))


def atomic_addx2(dst: Any, value: Any, return_prev: bool = False) -> None:
    """dst[k] += value[k] for the 2 consecutive elements from `dst` and `value` (float16,
    bfloat16; float32 on sm_90+ in global memory), each atomically, as one vector atomic."""
    _vector(2, dst, value, return_prev)


def atomic_addx4(dst: Any, value: Any, return_prev: bool = False) -> None:
    """dst[k] += value[k] for the 4 consecutive float32 elements from `dst` and `value`, each
    atomically, as one vector atomic (sm_90+, global memory)."""
    _vector(4, dst, value, return_prev)
