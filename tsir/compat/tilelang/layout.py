"""`tilelang.layout`: the layouts TileLang programs annotate tiles with, as tsir layouts.

- `make_swizzled_layout(buffer)`: the bank-conflict-free swizzle of an mma operand tile;
- `Fragment(shape, forward_fn=None, forward_thread_fn=None, replicate=1, forward_index_fn=None)`:
  TileLang's user-defined fragment (also `T.Fragment`), a `tsir.layout.Fragment`. `forward_fn`
  returns (thread, index); otherwise `forward_thread_fn` gives the thread and `forward_index_fn`
  the register index. Both take the replica as a last argument when `replicate > 1`. Without an
  index function the registers are numbered by the digits of the indices that do not choose the
  thread (a thread holding one element keeps it in register 0);
- `Layout(shape, forward_fn)`: a user-defined layout of a shared tile (also `T.Layout`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...buffer import Buffer
from ...errors import BuildError, user_location
from ...expr import IntImm, PrimExpr, Var, convert
from ...layout import Fragment as _Fragment
from ...layout import Layout as _Layout
from ...layout.swizzle import make_swizzled_layout as _make
from ...tileop.replicated_layouts import register_digits

__all__ = ["make_swizzled_layout", "Fragment", "Layout"]


def make_swizzled_layout(buffer: Any, k_major: bool = True, allow_pad: bool = True) -> Any:
    """The bank-conflict-free swizzle tsir gives an mma operand tile of `buffer`'s shape."""
    if not isinstance(buffer, Buffer):
        raise BuildError(f"make_swizzled_layout takes a shared buffer, got {buffer!r}")
    return _make(tuple(buffer.shape), buffer.dtype, k_major, allow_pad=allow_pad)


def _shape(shape: Any, what: str) -> tuple[PrimExpr, ...]:
    dims = tuple(shape) if isinstance(shape, (list, tuple)) else (shape,)
    out = []
    for d in dims:
        e = convert(d)
        if not isinstance(e, IntImm):
            raise BuildError(
                f"{what}: the shape must be constant, got {shape!r}", loc=user_location()
            )
        out.append(e)
    return tuple(out)


def Fragment(  # noqa: N802  (TileLang's class name)
    shape: Any,
    forward_fn: Callable[..., Any] | None = None,
    forward_thread_fn: Callable[..., Any] | None = None,
    replicate: int = 1,
    forward_index_fn: Callable[..., Any] | None = None,
) -> _Fragment:
    """TileLang's `T.Fragment` as a `tsir.layout.Fragment` (see the module docstring)."""
    what = "T.Fragment"
    dims = _shape(shape, what)
    if not isinstance(replicate, int) or isinstance(replicate, bool) or replicate < 1:
        raise BuildError(
            f"{what}: replicate must be an int >= 1, got {replicate!r}", loc=user_location()
        )
    if (forward_fn is None) == (forward_thread_fn is None):
        raise BuildError(
            f"{what}: give forward_fn, or forward_thread_fn (and forward_index_fn)",
            loc=user_location(),
        )
    if forward_fn is not None and forward_index_fn is not None:
        raise BuildError(
            f"{what}: forward_fn gives the index already; drop forward_index_fn",
            loc=user_location(),
        )
    vs = tuple(Var(f"i{k}") for k in range(len(dims)))
    rep = Var("rep")
    extra = (rep,) if replicate > 1 else ()
    try:
        if forward_fn is not None:
            thread, index = forward_fn(*vs, *extra)
        else:
            assert forward_thread_fn is not None
            thread = forward_thread_fn(*vs, *extra)
            index = forward_index_fn(*vs) if forward_index_fn is not None else None
    except TypeError as e:
        raise BuildError(
            f"{what}: calling the layout function failed: {e}", loc=user_location()
        ) from None
    if index is None:
        index = register_digits(dims, vs, convert(thread), rep, replicate)
        if index is None:
            raise BuildError(
                f"{what}: cannot number the registers from the thread map alone (two elements of a "
                f"thread share no free index digit); give forward_index_fn",
                loc=user_location(),
            )
    index = tuple(convert(x) for x in (index if isinstance(index, (tuple, list)) else (index,)))
    frag = _Fragment(dims, vs, index, rep, convert(thread), replicate)
    if not frag.is_injective():
        raise BuildError(
            f"{what}: two elements (or replicas) share a register of one thread: {frag}",
            loc=user_location(),
        )
    return frag


def Layout(shape: Any, forward_fn: Callable[..., Any]) -> _Layout:  # noqa: N802
    """TileLang's `T.Layout(shape, forward_fn)`: `forward_fn(*indices)` gives the physical index."""
    return _Layout.from_fn(_shape(shape, "T.Layout"), forward_fn)
