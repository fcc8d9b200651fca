"""The digit model behind `tsir.layout.inverse`: classify each output of a map as affine or
XOR-linear in the mixed-radix digits of its inputs, read every digit back from the outputs, and
build compact expressions for the inputs (see `inverse` for the whole method)."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from functools import reduce
from typing import Any

import numpy as np

from ..expr import IntImm, PrimExpr, Var
from .numeric import Array, Table, evaluate_grid

__all__ = ["Digit", "NoFit", "Solver", "order_combos"]


@dataclass(frozen=True, slots=True)
class Digit:
    dim: int
    place: int
    radix: int


@dataclass(frozen=True, slots=True)
class _Atom:
    """`((y - sub) % mod // scale) % radix` (no `% mod` when mod is 0), complemented
    (`radix - 1 - value`) when flip: a digit read back from source `out` (`y`)."""

    out: int
    sub: int
    scale: int
    radix: int
    mod: int = 0
    flip: bool = False


# A digit's solution: the XOR of some atoms, XOR a constant (bits only; affine reads have const 0).
_Solution = tuple[frozenset[_Atom], int]
# Consecutive digits of one input read together: (atoms, radix, XOR constant, place value).
_Group = tuple[list[_Atom], int, int, int]
# A GF(2) equation: (bit mask of unknown digits, atoms XORed on the right-hand side, constant).
_Row = tuple[int, frozenset[_Atom], int]


def _eliminate(row: _Row, pivot: _Row, n: int) -> _Row:
    """Gaussian elimination step: clear unknown n from `row` with the pivot row."""
    if not (row[0] >> n) & 1:
        return row
    return (row[0] ^ pivot[0], row[1] ^ pivot[1], row[2] ^ pivot[2])


class NoFit(Exception):
    """The map is not in the digit family for this choice of digit orders."""


class Solver:
    def __init__(self, table: Table, digits: list[Digit], out_vars: Sequence[Var]):
        self.t = table
        self.digits = digits
        self.out_vars = out_vars
        strides = [
            int(np.prod(table.extents[d + 1 :], dtype=np.int64)) for d in range(len(table.extents))
        ]
        self.values = [(table.inputs[g.dim] // g.place) % g.radix for g in digits]
        self.unit = [g.place * strides[g.dim] for g in digits]  # flat index of "digit k is 1"

    def _classify(self, out: Array) -> tuple[list[int] | None, list[int] | None]:
        """(affine coefficients, XOR impulses) of one output, each None when that model fails."""
        base = int(out[0])
        coef: list[int] | None = [int(out[u]) - base for u in self.unit]
        pred = base + sum((c * v for c, v in zip(coef, self.values) if c), np.zeros_like(out))
        if not np.array_equal(pred, out):
            coef = None
        # Both can hold: `i // 2 * 2 + 1 - i % 2` (affine, mixed signs) is `i ^ 1`.
        ximp: list[int] | None = [int(out[u]) ^ base for u in self.unit]
        if int(out.min()) < 0 or any(x and g.radix != 2 for x, g in zip(ximp, self.digits)):
            return coef, None
        pred = np.full_like(out, base)
        for x, v in zip(ximp, self.values):
            if x:
                pred ^= v * x
        return coef, (ximp if np.array_equal(pred, out) else None)

    def solve(self) -> list[PrimExpr]:
        # Sources are what digits are read from: the outputs, or the two fields of an output that
        # is XOR-linear in its low bits and affine above them (`(j ^ k) * 2 + k + 4 * rep`).
        self.src_vals: list[Array] = []
        self.src_expr: list[PrimExpr] = []
        affine: dict[int, list[int]] = {}
        xor: dict[int, list[int]] = {}

        def add(
            vals: Array, expr: PrimExpr, coef: list[int] | None, ximp: list[int] | None
        ) -> None:
            n = len(self.src_vals)
            self.src_vals.append(vals)
            self.src_expr.append(expr)
            if coef is not None:
                affine[n] = coef
            if ximp is not None:
                xor[n] = ximp

        for o, out in enumerate(self.t.outputs):
            coef, ximp = self._classify(out)
            if coef is not None or ximp is not None:
                add(out, self.out_vars[o], coef, ximp)
                continue
            for b in range(1, int(out.max()).bit_length() if int(out.min()) >= 0 else 0):
                lo, hi = out & ((1 << b) - 1), out >> b
                (lo_c, lo_x), (hi_c, hi_x) = self._classify(lo), self._classify(hi)
                if (lo_c is not None or lo_x is not None) and (
                    hi_c is not None or hi_x is not None
                ):
                    add(lo, self.out_vars[o] % (1 << b), lo_c, lo_x)
                    add(hi, self.out_vars[o] // (1 << b), hi_c, hi_x)
                    break
            else:
                raise NoFit(f"output {o} is neither affine nor XOR-linear in the input digits")
        solved: dict[int, _Solution] = {}
        for k in range(len(self.digits)):
            for o, coef in affine.items():
                atom = self._read_affine(o, coef, k)
                if atom is None:
                    continue
                solved[k] = (frozenset([atom]), 0)
                break
        self._solve_xor(xor, solved)
        return [self._input_expr(d, solved) for d in range(len(self.t.extents))]

    def _read_affine(self, o: int, coef: list[int], k: int) -> _Atom | None:
        """The atom reading digit k from affine output o, when the other terms cannot disturb it.

        Digits with negative coefficients are read complemented: with `d' = r - 1 - d` every term
        of `y - min(y)` has a positive coefficient (`15 - i` reads `i' = y`, then `i = 15 - i'`).
        """
        if coef[k] == 0:
            return None
        sub = int(self.src_vals[o][0]) + sum(
            c * (g.radix - 1) for c, g in zip(coef, self.digits) if c < 0
        )
        ck, rk = abs(coef[k]), self.digits[k].radix
        span = [
            (abs(c), abs(c) * (self.digits[j].radix - 1))
            for j, c in enumerate(coef)
            if c and j != k
        ]
        if any(c == ck for c, _ in span) or sum(m for c, m in span if c < ck) >= ck:
            return None  # lower digits would carry into this one
        higher = [c for c, _ in span if c > ck]
        flip = coef[k] < 0
        if all(c % (ck * rk) == 0 for c in higher):
            return _Atom(o, sub, ck, rk, 0, flip)
        # Strides that are not multiples (a padded row: i * 72 + j): strip the higher terms with
        # `% m` first, m the smallest higher stride that divides all strides above it and exceeds
        # everything below it.
        for m in sorted(higher):
            below = sum(s for c, s in span if c < m) + ck * (rk - 1)
            if below < m and all(c % m == 0 for c in higher if c >= m):
                return _Atom(o, sub, ck, rk, m, flip)
        return None

    def _solve_xor(self, xor: dict[int, list[int]], solved: dict[int, _Solution]) -> None:
        unknown = [k for k in range(len(self.digits)) if k not in solved]
        if not unknown:
            return
        if any(self.digits[k].radix != 2 for k in unknown):
            raise NoFit("a digit is read by no output")
        col = {k: n for n, k in enumerate(unknown)}
        rows: list[_Row] = []
        for o, ximp in xor.items():
            base = int(self.src_vals[o][0])
            width = max(int(self.src_vals[o].max()), *ximp, base).bit_length()
            for bit in range(width):
                mask, atoms, const = 0, frozenset([_Atom(o, 0, 1 << bit, 2)]), (base >> bit) & 1
                for k, x in enumerate(ximp):
                    if not (x >> bit) & 1:
                        continue
                    if k in col:
                        mask |= 1 << col[k]
                    else:  # a digit already read elsewhere: move it to the right-hand side
                        known, known_const = solved[k]
                        for a in known:  # a complemented bit is the bit XOR 1
                            known_const ^= a.flip
                        atoms = atoms ^ frozenset(_replace(a, flip=False) for a in known)
                        const ^= known_const
                rows.append((mask, atoms, const))
        pivots: list[_Row] = []
        for n in range(len(unknown)):
            pivot = next((r for r in rows if (r[0] >> n) & 1), None)
            if pivot is None:
                raise NoFit("the XOR outputs do not determine every bit")
            rows.remove(pivot)
            rows = [_eliminate(r, pivot, n) for r in rows]
            pivots = [_eliminate(r, pivot, n) for r in pivots] + [pivot]
        for n, k in enumerate(unknown):
            mask, atoms, const = pivots[n]
            assert mask == 1 << n  # reduced row echelon form: one unknown per pivot row
            solved[k] = (atoms, const)

    def _input_expr(self, dim: int, solved: dict[int, _Solution]) -> PrimExpr:
        env = dict(zip(self.out_vars, self.t.outputs))
        x = self.t.inputs[dim]
        groups: list[_Group] = []
        for k, g in enumerate(self.digits):
            if g.dim != dim:
                continue
            atoms, const = solved[k]
            if groups:
                merged = _merge(groups[-1], atoms, const, g.radix)
                # Merging is checked, not derived: the merged read must give the merged digit.
                if merged is not None and np.array_equal(
                    evaluate_grid(self._group_value(merged), env), (x // merged[3]) % merged[1]
                ):
                    groups[-1] = merged
                    continue
            first = [_replace(a, radix=g.radix) for a in atoms]
            groups.append((first, g.radix, const, g.place))
        terms = [
            self._group_value(grp) * grp[3] if grp[3] != 1 else self._group_value(grp)
            for grp in groups
        ]
        if not terms:
            return IntImm(0)
        return reduce(lambda a, b: a + b, terms)

    def _group_value(self, group: _Group) -> PrimExpr:
        atoms, _radix, const, _place = group
        parts = [self._extract(a) for a in sorted(atoms, key=lambda a: (a.out, a.scale))]
        value = reduce(lambda a, b: a ^ b, parts)
        return value ^ const if const else value

    def _extract(self, a: _Atom) -> PrimExpr:
        e: PrimExpr = self.src_expr[a.out]
        image: Array = self.src_vals[a.out]
        if a.sub:
            e, image = e - a.sub, image - a.sub
        if a.mod:
            e, image = e % a.mod, image % a.mod
        if a.scale != 1:
            e, image = e // a.scale, image // a.scale
        if image.size and (int(image.min()) < 0 or int(image.max()) >= a.radix):
            e = e % a.radix
        return (a.radix - 1) - e if a.flip else e


def _merge(group: _Group, atoms: frozenset[_Atom], const: int, radix: int) -> _Group | None:
    """The group extended by the next digit, when that digit continues every atom of the group."""
    g_atoms, g_radix, g_const, place = group
    bitwise = len(atoms) > 1 or const or g_const  # XOR groups only continue over bits
    if len(atoms) != len(g_atoms) or (bitwise and (radix != 2 or g_radix & (g_radix - 1))):
        return None
    by_key = {(a.out, a.sub, a.flip, a.scale): a for a in atoms}
    merged: list[_Atom] = []
    for a in g_atoms:
        b = by_key.get((a.out, a.sub, a.flip, a.scale * g_radix))
        if b is None or b.radix != radix:
            return None
        lo, hi = sorted((a.mod, b.mod))
        if lo and hi % lo:
            return None
        merged.append(_replace(a, radix=g_radix * radix, mod=hi))
    return merged, g_radix * radix, g_const + const * g_radix, place


def _replace(a: _Atom, **changes: Any) -> _Atom:
    return dataclasses.replace(a, **changes)


def order_combos(extents: tuple[int, ...]) -> itertools.product[tuple[tuple[int, ...], ...]]:
    return itertools.product(*(_radix_orders(e) for e in extents))


def _radix_orders(n: int) -> list[tuple[int, ...]]:
    """Distinct orders of the prime factors of n: at most 16, those of fewest runs first."""
    factors: list[int] = []
    m, p = n, 2
    while p * p <= m:
        while m % p == 0:
            factors.append(p)
            m //= p
        p += 1
    factors += [m] if m > 1 else []
    orders: list[tuple[int, ...]] = []
    _arrangements(sorted(factors), (), orders)
    # Tiles split extents into few blocks (`(x // 9) % 32`, `x % 9`): fewest runs first.
    runs = lambda o: sum(a != b for a, b in zip(o, o[1:]))  # noqa: E731
    return sorted(orders, key=lambda o: (runs(o), o))[:16] or [()]


def _arrangements(rest: list[int], prefix: tuple[int, ...], out: list[tuple[int, ...]]) -> None:
    """The distinct orders of a multiset (at most 4096 of them)."""
    if len(out) >= 4096:
        return
    if not rest:
        out.append(prefix)
    for v in sorted(set(rest)):
        i = rest.index(v)
        _arrangements(rest[:i] + rest[i + 1 :], (*prefix, v), out)
