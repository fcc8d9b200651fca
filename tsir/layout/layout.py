"""`Layout`: a map from a logical index (the buffer's shape) to a physical one.

    L = Layout.from_fn((64, 64), lambda i, j: (i, (j // 8 ^ i % 8) * 8 + j % 8))
    L.output_shape()        # (64, 64): the physical buffer's shape
    L.forward((r, c))       # the physical indices of element [r, c]
    L.inverse()             # the physical -> logical map, as a Layout

A layout is an IR node: `vars` are placeholders (a binder field, so `structural_equal` compares two
layouts up to their renaming) and `forward_index` holds one expression over them per physical
dimension. Shapes are usually constant, and then every question about the map (its image, whether it
is injective, its inverse) is answered exactly by enumerating the domain (`tsir.layout.numeric`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..arith import Analyzer
from ..dtype import bool_
from ..errors import UnsupportedError
from ..expr import BinaryOp, Call, CmpOp, IntImm, PrimExpr, Var, binary, convert
from ..node import Node, binder, node
from ..structural import structural_equal
from ..visitor import Mutator, substitute
from .inverse import synthesize_inverse
from .numeric import Table, const_shape, evaluate_grid, grid

__all__ = ["Layout", "placeholders", "simplify_over", "substitute_fold"]

_NAMES = "ijklmnopqrstuvwxyzabcdefgh"


def placeholders(n: int, names: Sequence[str] | None = None) -> tuple[Var, ...]:
    """Fresh index variables `i, j, k, ...` (or the given names)."""
    if names is None:
        names = [_NAMES[d] if d < len(_NAMES) else f"x{d}" for d in range(n)]
    return tuple(Var(str(name)) for name in names)


def _as_exprs(values: Any) -> tuple[PrimExpr, ...]:
    if isinstance(values, (PrimExpr, int)):
        values = (values,)
    return tuple(convert(v) for v in values)


def simplify_over(
    exprs: Sequence[PrimExpr], variables: Sequence[Var], extents: Sequence[PrimExpr | int]
) -> tuple[PrimExpr, ...]:
    """Each expression simplified knowing `0 <= variables[d] < extents[d]`."""
    ana = Analyzer(use_z3=False)
    for v, e in zip(variables, extents):
        ana.bind(v, 0, e)
    return tuple(ana.simplify(e) for e in exprs)


_FOLD_CALLS = {
    "bitwise_xor": lambda a, b: a ^ b,
    "bitwise_and": lambda a, b: a & b,
    "bitwise_or": lambda a, b: a | b,
}


class _SubstituteFold(Mutator):
    """Substitution that rebuilds arithmetic through the folding constructors, so that
    `forward((3, 5))` is a constant and `forward((i, 0))` has no `0 // 8` left in it."""

    def __init__(self, mapping: dict[Var, PrimExpr]):
        super().__init__()
        self.mapping = mapping

    def visit_Var(self, n: Var) -> PrimExpr:
        return self.mapping.get(n, n)

    def visit_BinaryOp(self, n: BinaryOp) -> PrimExpr:
        a, b = self.visit(n.a), self.visit(n.b)
        return n if (a is n.a and b is n.b) else binary(type(n), a, b)

    def visit_CmpOp(self, n: CmpOp) -> PrimExpr:
        a, b = self.visit(n.a), self.visit(n.b)
        return n if (a is n.a and b is n.b) else binary(type(n), a, b)

    def visit_Call(self, n: Call) -> PrimExpr:
        args = tuple(self.visit(x) for x in n.args)
        fold = _FOLD_CALLS.get(n.op)
        if fold is not None and all(isinstance(x, IntImm) for x in args):
            return IntImm(fold(*(x.value for x in args)), n.dtype)
        return n if all(x is y for x, y in zip(args, n.args)) else n.replace(args=args)


def substitute_fold(expr: PrimExpr, mapping: dict[Var, PrimExpr]) -> PrimExpr:
    """`substitute`, folding the constant arithmetic it creates."""
    return _SubstituteFold(mapping).visit(expr)


@node
class Layout(Node):
    """A map from logical indices (`input_shape`) to physical indices (`forward_index`)."""

    input_shape: tuple[PrimExpr, ...]
    """The logical shape (the buffer's shape)."""
    vars: tuple[Var, ...] = binder()
    """One placeholder per logical dimension."""
    forward_index: tuple[PrimExpr, ...]
    """The physical indices, as expressions over `vars`."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_shape", _as_exprs(self.input_shape))
        object.__setattr__(self, "forward_index", _as_exprs(self.forward_index))
        if len(self.vars) != len(self.input_shape):
            raise UnsupportedError(
                f"a layout over a {len(self.input_shape)}-d shape needs {len(self.input_shape)} "
                f"placeholder vars, got {len(self.vars)}"
            )

    # -- construction ------------------------------------------------------------------------------
    @staticmethod
    def from_fn(
        shape: Sequence[Any], fn: Callable[..., Any], *, names: Sequence[str] | None = None
    ) -> Layout:
        """`fn(*index_vars)` returns the physical index (an expression or a tuple of them)."""
        vs = placeholders(len(shape), names)
        return Layout(_as_exprs(shape), vs, _as_exprs(fn(*vs)))

    def print_form(self, p: Any) -> str:
        """`tsir.layout.Layout.from_fn(shape, lambda i, j: (index,))`: the printer's form."""
        names = ", ".join(p.namer.define(v, v.name) for v in self.vars)
        index = ", ".join(p(e) for e in self.forward_index)
        return (
            f"tsir.layout.Layout.from_fn({p.value(self.input_shape)}, lambda {names}: ({index},))"
        )

    @staticmethod
    def row_major(shape: Sequence[Any]) -> Layout:
        """The identity layout (physical index = logical index)."""
        vs = placeholders(len(shape))
        return Layout(_as_exprs(shape), vs, vs)

    # -- shape -------------------------------------------------------------------------------------
    @property
    def ndim(self) -> int:
        return len(self.input_shape)

    def const_input_shape(self) -> tuple[int, ...] | None:
        return const_shape(self.input_shape)

    def _domain(self) -> tuple[tuple[Var, ...], tuple[int, ...], tuple[PrimExpr, ...]]:
        """(variables, constant extents, expressions) of the full map that `table` enumerates."""
        shape = self.const_input_shape()
        if shape is None:
            raise UnsupportedError(
                f"the layout over the symbolic shape {self.input_shape} cannot be enumerated"
            )
        return self.vars, shape, self.forward_index

    def table(self) -> Table:
        """The map at every point of the (constant) domain; cached per layout object when small."""
        variables, extents, _ = self._domain()
        if int(np.prod(extents, dtype=np.int64)) <= _CACHED_POINTS:
            return _table(self)
        return Table.build(variables, extents, self._domain()[2], type(self).__name__.lower())

    def output_shape(self, analyzer: Analyzer | None = None) -> tuple[PrimExpr, ...]:
        """The physical shape: max + 1 of each physical index over the logical domain.

        Exact (by enumeration) for constant shapes; from `analyzer.const_int_bound` otherwise.
        """
        n = len(self.forward_index)
        if self.const_input_shape() is not None:
            return tuple(IntImm(e) for e in self.table().output_extents()[:n])
        ana = analyzer or Analyzer()
        out: list[PrimExpr] = []
        for v, e in zip(self.vars, self.input_shape):
            ana.bind(v, 0, e, override=True)
        extent_of = {v: e for v, e in zip(self.vars, self.input_shape)}
        for k, e in enumerate(self.forward_index):
            if isinstance(e, Var) and e in extent_of:  # a pass-through dimension keeps its extent
                out.append(extent_of[e])
                continue
            b = ana.const_int_bound(e)
            if b.min_value < 0 or b.max_value >= 1 << 30:
                raise UnsupportedError(f"cannot bound physical index {k} `{e}` of the layout")
            out.append(IntImm(b.max_value + 1))
        return tuple(out)

    def const_output_shape(self) -> tuple[int, ...]:
        return tuple(int(e) for e in self.output_shape())

    # -- mapping -----------------------------------------------------------------------------------
    def forward(self, indices: Sequence[Any]) -> tuple[PrimExpr, ...]:
        """The physical indices of logical element `indices`.

        Extra *leading* indices (a buffer with more dimensions than the layout, e.g. pipeline stages
        in front of a 2-d swizzled tile) pass through unchanged as leading physical indices.
        """
        idx = _as_exprs(tuple(indices))
        extra = len(idx) - self.ndim
        if extra < 0:
            raise UnsupportedError(f"the layout takes {self.ndim} indices, got {len(idx)}")
        mapping = dict(zip(self.vars, idx[extra:]))
        return idx[:extra] + tuple(substitute_fold(e, mapping) for e in self.forward_index)

    def linear_forward(self, indices: Sequence[Any]) -> PrimExpr:
        """The physical offset of `indices`: the physical indices linearized row-major."""
        phys = self.forward(indices)
        if len(phys) != len(self.forward_index):
            raise UnsupportedError("linear_forward takes exactly one index per layout dimension")
        offset: PrimExpr = IntImm(0)
        for p, extent in zip(phys, self.output_shape()):
            offset = offset * extent + p
        return offset

    def is_equal(self, other: Layout) -> bool:
        """Structural equality up to renaming of the placeholders."""
        return structural_equal(self, other)

    def is_injective(self) -> bool:
        return self.table().is_injective()

    def is_bijective(self) -> bool:
        """Injective and onto the box `output_shape()` (every physical slot used exactly once)."""
        t = self.table()
        return t.is_injective() and t.size == int(np.prod(t.output_extents(), dtype=np.int64))

    # -- inversion ---------------------------------------------------------------------------------
    def inverse(self) -> Layout:
        """The layout from physical indices back to logical ones; needs a bijective layout.

        See `tsir.layout.inverse` for the family of maps this inverts (affine maps of index digits,
        repeats, fragments, XOR swizzles); the result is checked at every point.
        """
        inv, guard = self.inverse_with_guard()
        if not (isinstance(guard, IntImm) and guard.value):
            raise UnsupportedError(
                f"the {type(self).__name__.lower()} does not fill its physical box "
                f"{self.table().output_extents()}; use inverse_with_guard() and test the guard "
                f"`{guard}`"
            )
        return inv

    def inverse_with_guard(self) -> tuple[Layout, PrimExpr]:
        """(inverse, guard): the guard, over the inverse's placeholders, holds exactly at physical
        points that some logical element maps to (`True` for bijective layouts)."""
        t = self.table()
        names = self._inverse_names()
        ys = placeholders(len(names), names)
        xs = _inverse_exprs(self, t, ys)
        in_ext = t.extents
        out_ext = t.output_extents()
        inv = Layout(tuple(IntImm(e) for e in out_ext), ys, tuple(xs))
        return inv, _guard(t, ys, out_ext, xs, in_ext, self._forward_exprs(), self._forward_vars())

    def _inverse_names(self) -> list[str]:
        return [f"p{k}" for k in range(len(self.forward_index))]

    def _forward_exprs(self) -> tuple[PrimExpr, ...]:
        return self.forward_index

    def _forward_vars(self) -> tuple[Var, ...]:
        return self.vars

    # -- algebra -----------------------------------------------------------------------------------
    def repeat(self, dim: int, factor: int) -> Layout:
        """Tile the layout `factor` times along `dim`; the tile number becomes a new leading
        physical index: `new(x) = (x[dim] // E, *old(x with x[dim] % E))`, E = old extent."""
        extent = self.input_shape[dim]
        vs = placeholders(self.ndim)
        inner = [v % extent if d == dim else v for d, v in enumerate(vs)]
        body = tuple(substitute(e, dict(zip(self.vars, inner))) for e in self.forward_index)
        shape = tuple(e * factor if d == dim else e for d, e in enumerate(self.input_shape))
        exprs = simplify_over((vs[dim] // extent, *body), vs, shape)
        return Layout(shape, vs, exprs)

    def expand(self, leading_shape: Sequence[Any]) -> Layout:
        """Prepend pass-through dimensions (lift a 2-d tile layout to an N-d buffer)."""
        lead = _as_exprs(tuple(leading_shape))
        vs = placeholders(len(lead) + self.ndim)
        body = tuple(
            substitute(e, dict(zip(self.vars, vs[len(lead) :]))) for e in self.forward_index
        )
        return Layout(lead + self.input_shape, vs, vs[: len(lead)] + body)

    def reshape(self, shape: Sequence[Any]) -> Layout:
        """The same physical placement seen through another logical shape with as many elements:
        new index -> row-major offset -> old index -> old layout."""
        new_shape = _as_exprs(tuple(shape))
        old, new = self.const_input_shape(), const_shape(new_shape)
        if old is None or new is None or int(np.prod(old)) != int(np.prod(new)):
            raise UnsupportedError(f"cannot reshape a layout over {old} to {new}")
        vs = placeholders(len(new_shape))
        flat: PrimExpr = IntImm(0)
        for v, e in zip(vs, new):
            flat = flat * e + v
        old_idx: list[PrimExpr] = []
        for e in reversed(old):
            old_idx.append(flat % e)
            flat = flat // e
        return self._over(new_shape, vs, dict(zip(self.vars, reversed(old_idx))))

    def _over(
        self, shape: tuple[PrimExpr, ...], vs: tuple[Var, ...], old: dict[Var, Any]
    ) -> Layout:
        """The same map over a new domain, given the old placeholders in terms of the new ones."""
        exprs = simplify_over([substitute(e, old) for e in self.forward_index], vs, shape)
        return Layout(shape, vs, exprs)


def _inverse_exprs(layout: Layout, t: Table, ys: tuple[Var, ...]) -> list[PrimExpr]:
    what = f"the {type(layout).__name__.lower()}"
    try:
        return synthesize_inverse(t, ys, what)
    except UnsupportedError as exc:
        error = exc
    # A ragged split (`i % 32` of 48 rows) is a digit map of the domain with that dimension padded
    # to a power of two; that inverse serves the real domain, whose bounds the guard checks.
    variables, _, exprs = layout._domain()
    ragged = [d for d, e in enumerate(t.extents) if e & (e - 1)]
    for dims in [[d] for d in ragged] + ([ragged] if len(ragged) > 1 else []):
        padded = tuple(
            1 << (e - 1).bit_length() if d in dims else e for d, e in enumerate(t.extents)
        )
        try:
            big = Table.build(variables, padded, exprs, what)
            return synthesize_inverse(big, ys, what)
        except UnsupportedError:
            continue
    raise error


# Tables of up to this many points are kept (for the last 128 layouts asked): 4 MB at most each.
_CACHED_POINTS = 1 << 16


@functools.lru_cache(maxsize=128)
def _table(layout: Layout) -> Table:
    variables, extents, exprs = layout._domain()
    return Table.build(variables, extents, exprs, type(layout).__name__.lower())


def _guard(
    t: Table,
    ys: Sequence[Var],
    out_ext: Sequence[int],
    xs: Sequence[PrimExpr],
    in_ext: Sequence[int],
    fwd: Sequence[PrimExpr],
    fwd_vars: Sequence[Var],
) -> PrimExpr:
    """The conjuncts `0 <= x_d < E_d` and `forward(x) == y` that fail somewhere in the physical box
    (the others are dropped: checked at every point)."""
    if t.size == int(np.prod(out_ext, dtype=np.int64)):
        return IntImm(1, bool_)
    points = grid(out_ext, "the physical box")
    env = dict(zip(ys, points))
    conds: list[PrimExpr] = []
    for x, e in zip(xs, in_ext):
        conds += [x >= 0, x < e]
    back = dict(zip(fwd_vars, xs))
    conds += [substitute(f, back) == y for f, y in zip(fwd, ys)]
    kept = [c for c in conds if not np.all(evaluate_grid(c, env) != 0)]
    out: PrimExpr = IntImm(1, bool_)
    for c in kept:
        out = c if isinstance(out, IntImm) else out & c
    return simplify_over((out,), ys, [IntImm(e) for e in out_ext])[0]
