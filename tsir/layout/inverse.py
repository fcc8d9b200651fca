"""Symbolic inverses of layouts on constant domains: found by digit analysis, checked exhaustively.

The layouts tsir builds (row-major maps, repeats, mma fragments, XOR swizzles, padded rows, loop
partitions) are *digit maps*: split every input coordinate `x` (extent E) into mixed-radix digits
`d_k = (x // p_k) % r_k` (the radices are the prime factors of E, in some order); then every output
is

- **affine** in the digits: `out = base + sum_k c_k * d_k`, or
- **XOR-linear** (all digits involved are bits): the bits of `out` are `base`'s bits XOR a
  GF(2)-linear combination of the digit bits (how `(j // 8 % 8) ^ (i % 8)` swizzles look), or
- XOR-linear in its low bits and affine above them (a swizzled thread map plus `32 * warp`).

The coefficients are read off the map at unit points (one digit 1, the others 0) and the model is
checked at every point of the domain. Inverting is then local: a digit is read back from an affine
output whose other terms cannot disturb it (`((out - base) // c_k) % r_k`, after `% m` strips
higher terms that are not multiples of `c_k * r_k`, e.g. a padded pitch; complemented for negative
coefficients, e.g. `15 - i`), and the remaining bits come from Gaussian elimination over GF(2) on
the XOR outputs. Consecutive digits read from consecutive places of the same output(s) are merged,
so a row-major map inverts to `(y // 64, y % 64)` rather than a sum of bits. When the map is a
function of a row-major offset of the inputs (a reshape, a loop partition of a transposed nest) or
its outputs are, the same is tried with the inputs and/or outputs fused, in each order.

Whatever comes out is evaluated at every point of the image before it is returned: a map outside
this family (e.g. `i * 3 % 7`, or `(6 * i + j % 6) // 4`, which splits a fused index at a point that
is no digit boundary) raises `UnsupportedError`; it never yields a wrong inverse.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Sequence
from functools import reduce

import numpy as np

from ..errors import UnsupportedError
from ..expr import IntImm, PrimExpr, Var
from ..visitor import substitute
from .digits import Digit, NoFit, Solver, order_combos
from .numeric import Table, evaluate_grid

__all__ = ["synthesize_inverse"]

# Bounds on the search: combinations of digit orders per fit (only extents with odd factors have
# several), fused-order attempts, and digit models solved in all (a map outside the family is
# refused in well under a second).
_MAX_ORDER_COMBOS = 64
_MAX_ATTEMPTS = 80
_MAX_SOLVES = 160


def synthesize_inverse(table: Table, out_vars: Sequence[Var], what: str) -> list[PrimExpr]:
    """Expressions for every input coordinate of `table`'s map, over `out_vars` (one per output).

    Requires the map to be injective; raises UnsupportedError when no inverse in the digit family
    reproduces every point.
    """
    if not table.is_injective():
        raise UnsupportedError(f"{what} is not injective, so it has no inverse")
    reasons: list[str] = []
    budget = [_MAX_SOLVES]
    # Maps of a row-major offset split that offset across digits that are not the inputs' own:
    # reshapes (`(i * 96 + j) // 128`), loop partitions of a transposed nest
    # (`((k * 3 + j) * 2 + i) % 4`), reversed tiles re-split (`(3 * (i // 3) + 2 - i % 3) // 2`).
    # So also try the inputs fused into one offset (in each order) and/or the outputs fused into
    # one offset: the first inverse that reproduces every point wins.
    ins = [None, *_orders(table.extents)]
    outs = [None, *_orders([int(o.max()) + 1 if o.size else 1 for o in table.outputs])]
    attempts = sorted(
        itertools.product(ins, outs), key=lambda p: (p[0] is not None) + (p[1] is not None)
    )
    for in_order, out_order in itertools.islice(attempts, _MAX_ATTEMPTS):
        exprs = _attempt(table, out_vars, in_order, out_order, reasons, budget)
        if exprs is not None and _reproduces(table, out_vars, exprs):
            return exprs
    raise UnsupportedError(
        f"cannot invert {what}: it is not an affine/XOR map of the digits of its inputs "
        f"({reasons[0] if reasons else 'no candidate'})"
    )


def _orders(sizes: Sequence[int]) -> list[tuple[int, ...]]:
    """Orders in which to fuse the dimensions of more than one value (at most 24)."""
    dims = [d for d, n in enumerate(sizes) if n > 1]
    return list(itertools.islice(itertools.permutations(dims), 24)) if len(dims) > 1 else []


def _attempt(
    table: Table,
    out_vars: Sequence[Var],
    in_order: tuple[int, ...] | None,
    out_order: tuple[int, ...] | None,
    reasons: list[str],
    budget: list[int],
) -> list[PrimExpr] | None:
    """Fit the inverse with the inputs (and/or outputs) fused row-major in the given order."""
    inputs, extents, outputs, variables = table.inputs, table.extents, table.outputs, out_vars
    fused_out: PrimExpr | None = None
    if out_order is not None:
        box = [int(o.max()) + 1 for o in outputs]
        z_vals = reduce(lambda acc, k: acc * box[k] + outputs[k], out_order, np.int64(0))
        first: PrimExpr = out_vars[out_order[0]]
        fused_out = reduce(lambda acc, k: acc * box[k] + out_vars[k], out_order[1:], first)
        outputs, variables = [np.asarray(z_vals, dtype=np.int64)], [Var("z")]
    if in_order is not None:
        flat_in = reduce(lambda acc, d: acc * extents[d] + inputs[d], in_order, np.int64(0))
        by_offset = np.argsort(flat_in)  # the solver expects its domain in row-major order
        inputs, extents = [np.arange(table.size, dtype=np.int64)], (table.size,)
        outputs = [o[by_offset] for o in outputs]
    exprs = _fit(Table(extents, inputs, outputs), variables, reasons, budget)
    if exprs is None:
        return None
    if in_order is not None:
        split: dict[int, PrimExpr] = {d: IntImm(0) for d in range(len(table.extents))}
        stride = table.size
        for rank, d in enumerate(in_order):
            stride //= table.extents[d]
            x = exprs[0] // stride if stride != 1 else exprs[0]
            split[d] = x % table.extents[d] if rank else x
        exprs = [split[d] for d in range(len(table.extents))]
    if fused_out is not None:
        exprs = [substitute(e, {variables[0]: fused_out}) for e in exprs]
    return exprs


def _fit(
    table: Table, out_vars: Sequence[Var], reasons: list[str], budget: list[int]
) -> list[PrimExpr] | None:
    for order in itertools.islice(order_combos(table.extents), _MAX_ORDER_COMBOS):
        if budget[0] <= 0:
            return None
        budget[0] -= 1
        digits = [
            Digit(d, place, r)
            for d, radices in enumerate(order)
            for place, r in zip(itertools.accumulate((1, *radices), operator.mul), radices)
        ]
        try:
            exprs = Solver(table, digits, out_vars).solve()
        except NoFit as exc:
            reasons.append(str(exc))
            continue
        if _reproduces(table, out_vars, exprs):
            return exprs
        reasons.append("the candidate inverse disagrees with the map at some point")
    return None


def _reproduces(table: Table, out_vars: Sequence[Var], exprs: Sequence[PrimExpr]) -> bool:
    """Whether the inverse gives back every input point from its image."""
    env = dict(zip(out_vars, table.outputs))
    return all(
        np.array_equal(np.broadcast_to(evaluate_grid(e, env), x.shape), x)
        for e, x in zip(exprs, table.inputs)
    )
