"""Views of buffers and scratch global memory: `T.view`, `T.reshape`, `T.Tensor(shape, dtype,
buf.data)` and `T.alloc_global`.

A view is a new buffer over the storage of an existing global or shared buffer (a `DeclBuffer` at
byte offset 0 of its base, scoping the statements that follow it in its block): another shape, and
possibly another dtype of the same size in bits. It aliases its base: passes that reason about
shared memory (ThreadSync, layout inference) see through it.

`T.alloc_global(shape, dtype)` is global memory the runtime allocates for each launch of the
function and passes to its kernels as a hidden argument: one buffer per launch, shared by every
block (and by the later kernels of the function), uninitialised.
"""

from __future__ import annotations

from typing import Any

from ..arith import Analyzer
from ..buffer import Buffer, BufferData, make_buffer
from ..dtype import DataType, int64
from ..dtype import dtype as as_dtype
from ..errors import BuildError
from ..expr import IntImm, PrimExpr, cast, const_value
from .frame import check_buffer_use, current_builder, infer_name

__all__ = ["alloc_global", "reshape", "view", "view_data"]

VIEW_SCOPES = ("global", "symmetric", "shared", "shared.dyn")


def view(src: Any, shape: Any = None, dtype: Any = None) -> Buffer:
    """A view of `src`'s storage with another shape and/or dtype (the same size in bits)."""
    base = _base(src, "T.view")
    return _make_view(base, base.shape if shape is None else shape, dtype, "T.view", exact=True)


def reshape(src: Any, shape: Any) -> Buffer:
    """A view of `src`'s storage with another shape (the same number of elements)."""
    base = _base(src, "T.reshape")
    return _make_view(base, shape, None, "T.reshape", exact=True)


def view_data(
    data: Any, shape: Any, dtype: Any, what: str = "T.Tensor(shape, dtype, buf.data)"
) -> Buffer:
    """`T.Tensor(shape, dtype, buf.data)`: a view of `buf`'s storage (no larger than it)."""
    if not isinstance(data, BufferData):
        raise BuildError(f"{what}: the data argument must be `buf.data` of a buffer, got {data!r}")
    base = _base(data.buffer, what)
    return _make_view(base, shape, dtype, what, exact=False)


def _base(src: Any, what: str) -> Buffer:
    if isinstance(src, BufferData):
        src = src.buffer
    if not isinstance(src, Buffer):
        raise BuildError(f"{what} takes a buffer, got {src!r}")
    return src


def _shape(shape: Any, what: str) -> tuple[Any, ...]:
    if isinstance(shape, (int, PrimExpr)):
        return (shape,)
    if isinstance(shape, (tuple, list)):
        return tuple(shape)
    raise BuildError(f"{what}: the shape must be a tuple or list of dimensions, got {shape!r}")


def _bits(shape: tuple[PrimExpr, ...], dt: DataType) -> PrimExpr:
    total: PrimExpr = IntImm(dt.bits * dt.lanes, int64)
    for d in shape:
        total = total * (d if d.dtype.bits == 64 else cast(int64, d))
    return total


def _make_view(base: Buffer, shape: Any, dtype: Any, what: str, exact: bool) -> Buffer:
    b = current_builder(what)
    if b.kernel is None:
        raise BuildError(
            f"{what}: views are made inside a `T.Kernel` (they scope the kernel's statements that "
            f"follow them)"
        )
    check_buffer_use(base, element_access=False)
    if base.scope not in VIEW_SCOPES:
        why = (
            "a fragment is spread over the threads' registers and has no storage to view; copy it "
            "to shared memory first"
            if base.scope == "local.fragment"
            else "views of per-thread buffers are not supported"
        )
        raise BuildError(f"{what}: `{base.name}` is a {base.scope} buffer: {why}")
    if base.strides:
        raise BuildError(
            f"{what}: `{base.name}` has explicit strides; only compact buffers can be viewed"
        )
    dt = base.dtype if dtype is None else as_dtype(str(dtype))
    name = b.unique(infer_name("view"))
    v = make_buffer(name, _shape(shape, what), dt, base.scope, base.align)
    if base.scope in ("shared", "shared.dyn") and any(const_value(d) is None for d in v.shape):
        raise BuildError(
            f"{what}: a view of shared `{base.name}` needs a constant shape, got {shape!r}"
        )
    _check_size(base, v, what, exact)
    b.owner[v] = b.kernel
    b.frame.items.append(("decl", v, base, 0))
    return v


def _check_size(base: Buffer, v: Buffer, what: str, exact: bool) -> None:
    have, want = _bits(base.shape, base.dtype), _bits(v.shape, v.dtype)
    ana = Analyzer()
    ok = ana.can_prove(want == have) if exact else ana.can_prove(want <= have)
    if ok:
        return
    relation = "the same size as" if exact else "no larger than"
    dims = lambda x: "(" + ", ".join(str(d) for d in x.shape) + ")"
    raise BuildError(
        f"{what}: the view {dims(v)} {v.dtype} of `{base.name}` {dims(base)} {base.dtype} must be "
        f"{relation} it in bits ({ana.simplify(want)} vs {ana.simplify(have)}), and tsir cannot "
        f"prove that it is"
    )


def alloc_global(shape: Any, dtype: Any, scope: str = "global") -> Buffer:
    """Scratch global memory the runtime allocates for each launch (uninitialised), shared by all
    blocks of the kernel and by the function's later kernels. Written inside a `T.Kernel` (as
    TileLang programs do) it still belongs to the function, around that kernel."""
    if scope != "global":
        raise BuildError(f"T.alloc_global: scope must be 'global', got {scope!r}")
    b = current_builder("T.alloc_global")
    if not b.frames:
        raise BuildError("T.alloc_global must be used inside `with T.prim_func(...)`")
    name = b.unique(infer_name("workspace"))
    buf = make_buffer(name, _shape(shape, "T.alloc_global"), dtype, "global")
    # The allocation belongs to the function, around the kernel: the frame that holds the kernel
    # (or, written outside any kernel, as the printer does, the current frame).
    k = b.kernel
    index = (
        next((i for i, f in enumerate(b.frames) if f.kernel is k), len(b.frames))
        if k is not None
        else len(b.frames)
    )
    b.frames[index - 1].allocate(buf)
    return buf
