"""`Fragment`: how a register tile is spread over the threads of a block.

A fragment maps each logical element `x` (and each replica `rep` of it, when `replicate_size > 1`)
to a thread, `forward_thread(x, rep)`, and to a register slot inside that thread,
`forward_index(x)` (the same slot in every replica). Each thread therefore owns `local_size`
registers, and a buffer with a fragment layout lowers to a per-thread `local` array of shape
`output_shape()`.

    F = Fragment.from_fn((16, 8), lambda i, j: i % 8 * 4 + j // 2, lambda i, j: i // 8 * 2 + j % 2)
    F.thread_extent, F.local_size      # 32, 4: the mma m16n8 accumulator tile of one warp
    inv = F.inverse()                  # (local, thread) -> (i, j, rep)
    i, j, rep = inv.forward((r, tx))   # the element held in register r of thread tx

`thread_range`, when bound, places the fragment on threads `[min, min + extent)` of the block:
`forward_thread` stays relative to `min` (warp-specialized code binds consumers to a sub-range).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..buffer import Range
from ..errors import UnsupportedError
from ..expr import IntImm, PrimExpr, Var
from ..node import binder, node
from ..visitor import collect, substitute
from .layout import Layout, _as_exprs, placeholders, simplify_over, substitute_fold
from .numeric import const_shape

__all__ = ["Fragment", "fragment_of", "require_fragment"]


@node
class Fragment(Layout):
    """A Layout whose physical index is a register slot, plus the owning thread."""

    rep: Var = binder()
    """The replica placeholder, in [0, replicate_size); only `forward_thread` may use it."""
    forward_thread: PrimExpr
    """The owning thread (relative to `thread_range.min`), over `vars` and `rep`."""
    replicate_size: int = 1
    """How many threads hold a copy of each element."""
    thread_range: Range | None = None
    """The threads of the block the fragment lives on, when bound (`bind_thread_range`)."""

    def __post_init__(self) -> None:
        Layout.__post_init__(self)
        object.__setattr__(self, "forward_thread", _as_exprs(self.forward_thread)[0])
        if any(v is self.rep for e in self.forward_index for v in collect(e, Var)):
            raise UnsupportedError(
                "a fragment's register index may not depend on the replica: every copy of an "
                "element sits in the same register slot of its thread"
            )
        if self.replicate_size < 1:
            raise UnsupportedError(f"replicate_size must be >= 1, got {self.replicate_size}")

    # -- construction ------------------------------------------------------------------------------
    @staticmethod
    def from_fn(  # pyright: ignore[reportIncompatibleMethodOverride]  (fragments need two maps)
        shape: Sequence[Any],
        thread_fn: Callable[..., Any],
        index_fn: Callable[..., Any],
        replicate: int = 1,
        *,
        names: Sequence[str] | None = None,
    ) -> Fragment:
        """`thread_fn(*idx)` (or `thread_fn(*idx, rep)` when it takes one more argument) gives the
        owning thread and `index_fn(*idx)` the register slot(s)."""
        vs = placeholders(len(shape), names)
        rep = Var("rep")
        takes_rep = len(inspect.signature(thread_fn).parameters) == len(vs) + 1
        thread = thread_fn(*vs, rep) if takes_rep else thread_fn(*vs)
        return Fragment(_as_exprs(shape), vs, _as_exprs(index_fn(*vs)), rep, thread, replicate)

    def print_form(self, p: Any) -> str:
        """`tsir.layout.Fragment.from_fn(shape, lambda i, rep: thread, lambda i: (index,), R)`:
        the printer's form (a fragment bound to a thread range prints field by field)."""
        if self.thread_range is not None:
            return p.fields_form(self)
        names = [p.namer.define(v, v.name) for v in self.vars]
        rep = p.namer.define(self.rep, self.rep.name)
        thread = f"lambda {', '.join([*names, rep])}: {p(self.forward_thread)}"
        index = f"lambda {', '.join(names)}: ({', '.join(p(e) for e in self.forward_index)},)"
        shape = p.value(self.input_shape)
        return f"tsir.layout.Fragment.from_fn({shape}, {thread}, {index}, {self.replicate_size})"

    @staticmethod
    def partitioned(shape: Sequence[Any], threads: int, vector: int = 1) -> Fragment:
        """A loop nest over `shape` dealt to threads in runs of `vector` consecutive elements
        (row-major offset f): `thread = f // vector % threads`,
        `register = f // (vector * threads) * vector + f % vector`. When `threads * vector` does
        not divide the element count the last round is partial and the map is no digit map of the
        logical indices, so `inverse` refuses it: lower such a loop over the padded offset
        `f = register // vector * vector * threads + thread * vector + register % vector`,
        guarded by `f < count`."""
        vs = placeholders(len(shape))
        flat: PrimExpr = IntImm(0)
        for v, e in zip(vs, _as_exprs(tuple(shape))):
            flat = flat * e + v
        thread = flat // vector % threads
        local = flat // (vector * threads) * vector + flat % vector
        frag = Fragment(_as_exprs(tuple(shape)), vs, (local,), Var("rep"), thread)
        *index, thread = simplify_over((local, thread), (*vs, frag.rep), (*frag.input_shape, 1))
        return frag.replace(forward_index=tuple(index), forward_thread=thread)

    @staticmethod
    def fully_replicated(shape: Sequence[Any], threads: int) -> Fragment:
        """Every thread holds every element: thread = rep, register = row-major offset."""
        vs = placeholders(len(shape))
        offset: PrimExpr = IntImm(0)
        for v, e in zip(vs, _as_exprs(tuple(shape))):
            offset = offset * e + v
        rep = Var("rep")
        return Fragment(_as_exprs(tuple(shape)), vs, (offset,), rep, rep, threads)

    # -- what the fragment occupies ----------------------------------------------------------------
    def _domain(self) -> tuple[tuple[Var, ...], tuple[int, ...], tuple[PrimExpr, ...]]:
        shape = self.const_input_shape()
        if shape is None:
            raise UnsupportedError(f"a fragment needs a constant shape, got {self.input_shape}")
        return self._forward_vars(), (*shape, self.replicate_size), self._forward_exprs()

    def _forward_vars(self) -> tuple[Var, ...]:
        return (*self.vars, self.rep)

    def _forward_exprs(self) -> tuple[PrimExpr, ...]:
        return (*self.forward_index, self.forward_thread)

    def _inverse_names(self) -> list[str]:
        n = len(self.forward_index)
        return [*(["local"] if n == 1 else [f"local{k}" for k in range(n)]), "thread"]

    @property
    def thread_extent(self) -> int:
        """max(forward_thread) + 1 over all elements and replicas."""
        return self.table().output_extents()[-1]

    @property
    def local_size(self) -> int:
        """Registers per thread: the product of `output_shape()`."""
        size = 1
        for e in self.const_output_shape():
            size *= e
        return size

    def thread_of(self, indices: Sequence[Any], rep: Any = 0) -> PrimExpr:
        """The thread (relative to `thread_range.min`) owning replica `rep` of element `indices`."""
        mapping: dict[Var, Any] = dict(zip(self.vars, _as_exprs(tuple(indices))))
        mapping[self.rep] = _as_exprs(rep)[0]
        return substitute_fold(self.forward_thread, mapping)

    def is_injective(self) -> bool:
        """No two (element, replica) pairs share a (register, thread) slot."""
        return self.table().is_injective()

    # -- inversion ---------------------------------------------------------------------------------
    def inverse(self) -> Layout:
        """(local..., thread) -> (logical..., rep): what register `local` of `thread` holds.

        The thread is relative to `thread_range.min`. Raises when some (register, thread) slot in
        the box `output_shape() x thread_extent` holds nothing; use `inverse_with_guard` there.
        """
        return Layout.inverse(self)

    # -- algebra -----------------------------------------------------------------------------------
    def repeat(  # pyright: ignore[reportIncompatibleMethodOverride]  (fragments tile all dims)
        self, repeats: Sequence[int], repeat_on_thread: bool = False, lower_dim_first: bool = True
    ) -> Fragment:
        """Tile the fragment `repeats[d]` times along each dimension d.

        The tile number `t` (row-major over the tile grid, or dimension 0 fastest when
        `lower_dim_first`) goes to new threads, `thread + t * thread_extent`, when
        `repeat_on_thread`, else to new registers, `t * local_size + local` (one register index).
        """
        if len(repeats) != self.ndim:
            raise UnsupportedError(f"repeat needs {self.ndim} factors, got {len(repeats)}")
        shape = self.const_input_shape()
        assert shape is not None
        vs = placeholders(self.ndim)
        inner = dict(zip(self.vars, [v % e for v, e in zip(vs, shape)]))
        tile: PrimExpr = IntImm(0)
        dims = range(self.ndim) if not lower_dim_first else reversed(range(self.ndim))
        for d in dims:
            tile = tile * repeats[d] + vs[d] // shape[d]
        new_shape = tuple(IntImm(e * r) for e, r in zip(shape, repeats))
        thread = substitute(self.forward_thread, inner)
        local = substitute(self._local_offset(), inner)
        if repeat_on_thread:
            thread = thread + tile * self.thread_extent
        else:
            local = tile * self.local_size + local
        rep_shape = (*new_shape, IntImm(self.replicate_size))
        local, thread = simplify_over((local, thread), (*vs, self.rep), rep_shape)
        return Fragment(
            new_shape, vs, (local,), self.rep, thread, self.replicate_size, self.thread_range
        )

    def _over(
        self, shape: tuple[PrimExpr, ...], vs: tuple[Var, ...], old: dict[Var, Any]
    ) -> Layout:
        domain, extents = (*vs, self.rep), (*shape, IntImm(self.replicate_size))
        exprs = [substitute(e, old) for e in (*self.forward_index, self.forward_thread)]
        *index, thread = simplify_over(exprs, domain, extents)
        return self.replace(
            input_shape=shape, vars=vs, forward_index=tuple(index), forward_thread=thread
        )

    def expand(self, leading_shape: Sequence[Any]) -> Fragment:
        raise UnsupportedError(
            "a fragment cannot gain pass-through dimensions (registers are per thread); tile it "
            "with repeat() instead"
        )

    def _local_offset(self) -> PrimExpr:
        offset: PrimExpr = IntImm(0)
        for e, extent in zip(self.forward_index, self.const_output_shape()):
            offset = offset * extent + e
        return offset

    def replicate(self, n: int) -> Fragment:
        """n times more copies, each new copy on new threads:
        `thread'(x, r) = thread(x, r % R) + (r // R) * thread_extent` (R = old replicate_size)."""
        old = self.replicate_size
        rep = Var("rep")
        thread = (
            substitute(self.forward_thread, {self.rep: rep % old})
            + (rep // old) * self.thread_extent
        )
        shape = (*self.input_shape, IntImm(old * n))
        (thread,) = simplify_over((thread,), (*self.vars, rep), shape)
        return Fragment(
            self.input_shape, self.vars, self.forward_index, rep, thread, old * n, self.thread_range
        )

    def condense_rep_var(self) -> Fragment:
        """Without replication, the replica placeholder is 0: drop it from the thread expression."""
        if self.replicate_size != 1:
            return self
        thread = substitute_fold(self.forward_thread, {self.rep: IntImm(0)})
        return self.replace(forward_thread=thread)

    def bind_thread_range(self, thread_range: Range) -> Fragment:
        """The same fragment placed on threads `[thread_range.min, + extent)` of the block."""
        extent = const_shape((thread_range.extent,))
        if extent is not None and extent[0] < self.thread_extent:
            raise UnsupportedError(
                f"the fragment spans {self.thread_extent} threads, more than the range of "
                f"{extent[0]}"
            )
        return self.replace(thread_range=thread_range)


def fragment_of(layouts: Mapping[Any, Layout], buf: Any) -> Fragment | None:
    """`buf`'s layout in `layouts` where it is a Fragment (a local.fragment buffer's always is
    once inferred), else None: layout maps hold both kinds, a fragment's readers need the threads."""
    layout = layouts.get(buf)
    return layout if isinstance(layout, Fragment) else None


def require_fragment(layouts: Mapping[Any, Layout], buf: Any) -> Fragment:
    """`buf`'s Fragment in `layouts`: for lowerings that run after LayoutInference gave one."""
    layout = layouts.get(buf)
    if not isinstance(layout, Fragment):
        name = getattr(buf, "name", buf)
        raise UnsupportedError(f"`{name}` has no fragment layout here (found {layout!r})")
    return layout
