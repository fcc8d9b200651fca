"""Random element-wise expressions, written twice: as builder code and as numpy.

Each node knows its IR dtype, an interval bound on its value, and whether it is exact (no
rounding anywhere below it). Only exact values feed comparisons and float -> int casts, so a
condition never flips on a rounding difference between the compiler and the model; bounds keep
every value far from overflow in its dtype.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from .choose import Chooser

__all__ = ["Ex", "ExprGen", "const", "MANTISSA"]

MANTISSA = {"float32": 24, "float16": 11, "bfloat16": 8, "int32": 31}
LIMIT = {"float32": 1e6, "float16": 3e4, "bfloat16": 1e6, "int32": float(1 << 20)}


@dataclass(frozen=True)
class Ex:
    t: str
    """builder text"""
    n: str
    """numpy text"""
    dtype: str
    lo: float
    hi: float
    exact: bool
    fb: int = 0
    """fractional bits an exact value may carry (0: an integer)"""
    size: int = 1

    @property
    def mag(self) -> float:
        return max(abs(self.lo), abs(self.hi))

    @property
    def is_int(self) -> bool:
        return self.dtype == "int32"

    @property
    def literal(self) -> bool:
        """Made of literals only (no load, no loop index)."""
        return "[" not in self.t and re.search(r"\b[ij]\b", self.t) is None


def const(value: float, dtype: str) -> Ex:
    """A literal; outside float32/int32 it is spelt with its dtype (`T.float16(0.5)`), since a
    subexpression made only of literals would otherwise be float32."""
    if dtype == "int32":
        v = int(value)
        return Ex(str(v), str(v), dtype, v, v, True)
    fb = 0
    while value * (1 << fb) != int(value * (1 << fb)) and fb < 8:
        fb += 1
    text = repr(float(value)) if dtype == "float32" else f"T.{dtype}({float(value)!r})"
    return Ex(text, repr(float(value)), dtype, value, value, True, fb)


def _exact_ok(dtype: str, mag: float, fb: int) -> bool:
    return mag * (1 << fb) < 2 ** (MANTISSA[dtype] - 1)


def _r(dtype: str, text: str) -> str:
    """numpy text rounding a float result to `dtype` (float32 stays float64: within tolerance)."""
    if dtype in ("float16", "bfloat16"):
        return f'rnd({text}, "{dtype}")'
    return text


class ExprGen:
    """Builds expressions over the `leaves` a loop body may read."""

    def __init__(self, ch: Chooser, leaves: list[Ex], max_size: int = 7) -> None:
        self.ch = ch
        self.leaves = leaves
        self.max_size = max_size

    # -- entry points ------------------------------------------------------------------------

    def value(self, dtype: str, depth: int = 2) -> Ex:
        """An expression of IR dtype `dtype`."""
        e = self._gen(dtype, depth)
        return e

    def exact_value(self, dtype: str, depth: int = 2) -> Ex | None:
        for _ in range(6):
            e = self._gen(dtype, depth, want_exact=True)
            if e.exact:
                return e
        return None

    def condition(self, index_conds: list[tuple[str, str]]) -> tuple[str, str] | None:
        """(builder text, numpy text) of a boolean: data comparisons of exact values or indices."""
        kind = self.ch.choice(["data", "data", "index"], "cond kind") if index_conds else "data"
        if kind == "index":
            return self.ch.choice(index_conds, "index cond")
        dtype = self.ch.choice(["float32", "int32", "float16", "bfloat16"], "cond dtype")
        a = self.exact_value(dtype, 1)
        b = self.exact_value(dtype, 1) if self.ch.boolean(0.5, "cond vs value") else None
        if a is None or a.literal:
            return None
        if b is None:
            b = const(self.ch.choice([0, 1, -1, 2], "cond const"), dtype)
        op = self.ch.choice([">", "<", ">=", "<=", "==", "!="], "cmp")
        return f"{a.t} {op} {b.t}", f"({a.n} {op} {b.n})"

    # -- generation --------------------------------------------------------------------------

    def _leaf(self, dtype: str, want_exact: bool) -> Ex:
        same = [x for x in self.leaves if x.dtype == dtype and (x.exact or not want_exact)]
        other = [x for x in self.leaves if x.dtype != dtype and (x.exact or not want_exact)]
        pick = self.ch.weighted(
            [("same", 6.0), ("other", 2.0 if other else 0.0), ("const", 1.0)], "leaf"
        )
        if pick == "same" and same:
            return self.ch.choice(same, "leaf same")
        if pick == "other" and other:
            return self._cast(self.ch.choice(other, "leaf other"), dtype)
        if dtype == "int32":
            return const(self.ch.choice([1, 2, 3, -2, 5], "int const"), dtype)
        return const(self.ch.choice([0.5, 1.0, 2.0, -1.5, 3.0, 0.25], "float const"), dtype)

    def _gen(self, dtype: str, depth: int, want_exact: bool = False) -> Ex:
        if depth <= 0 or self.ch.boolean(0.3, "stop"):
            return self._leaf(dtype, want_exact)
        ops = ["add", "sub", "mul", "max", "min", "abs", "neg", "cast", "select"]
        if dtype == "int32":
            ops += ["floordiv", "floormod"]
        elif not want_exact:
            ops += ["div", "unary", "unary"]
        else:
            ops += ["floorceil"]
        op = self.ch.choice(ops, "op")
        if op in ("add", "sub", "mul", "max", "min"):
            a = self._gen(dtype, depth - 1, want_exact)
            b = self._gen(dtype, depth - 1, want_exact)
            return self._binary(op, a, b) or a
        if op in ("abs", "neg"):
            a = self._gen(dtype, depth - 1, want_exact)
            if op == "abs":
                lo = 0.0 if a.lo <= 0 <= a.hi else min(abs(a.lo), abs(a.hi))
                return Ex(
                    f"T.abs({a.t})", f"np.abs({a.n})", dtype, lo, a.mag, a.exact, a.fb, a.size + 1
                )
            return Ex(f"(-{a.t})", f"(-{a.n})", dtype, -a.hi, -a.lo, a.exact, a.fb, a.size + 1)
        if op == "cast":
            src = self.ch.choice([d for d in MANTISSA if d != dtype], "cast src")
            a = self._gen(src, depth - 1, want_exact or dtype == "int32")
            return self._cast(a, dtype)
        if op == "select":
            c = self.condition([])
            a = self._gen(dtype, depth - 1, want_exact)
            b = self._gen(dtype, depth - 1, want_exact)
            if c is None:
                return a
            return Ex(
                f"T.if_then_else({c[0]}, {a.t}, {b.t})",
                f"np.where({c[1]}, {a.n}, {b.n})",
                dtype,
                min(a.lo, b.lo),
                max(a.hi, b.hi),
                a.exact and b.exact,
                max(a.fb, b.fb),
                a.size + b.size + 1,
            )
        if op in ("floordiv", "floormod"):
            a = self._gen(dtype, depth - 1, want_exact)
            c = self.ch.choice([2, 3, 4, -3, 7], "divisor")
            if op == "floordiv":
                lo, hi = sorted((math.floor(a.lo / c), math.floor(a.hi / c)))
                return Ex(
                    f"({a.t} // {c})", f"fdiv({a.n}, {c})", dtype, lo, hi, a.exact, 0, a.size + 1
                )
            lo, hi = (0, c - 1) if c > 0 else (c + 1, 0)
            return Ex(f"({a.t} % {c})", f"fmod({a.n}, {c})", dtype, lo, hi, a.exact, 0, a.size + 1)
        if op == "div":
            a = self._gen(dtype, depth - 1)
            b = self._gen(dtype, depth - 1)
            den = Ex(
                f"(T.abs({b.t}) + 1.0)",
                _r(dtype, f"(np.abs({b.n}) + 1.0)"),
                dtype,
                1.0,
                b.mag + 1,
                False,
            )
            return Ex(
                f"({a.t} / {den.t})",
                _r(dtype, f"({a.n} / {den.n})"),
                dtype,
                -a.mag,
                a.mag,
                False,
                0,
                a.size + b.size + 2,
            )
        if op == "floorceil":
            a = self._gen(dtype, depth - 1, want_exact)
            f = self.ch.choice(["floor", "ceil"], "floorceil")
            return Ex(
                f"T.{f}({a.t})",
                f"np.{f}({a.n})",
                dtype,
                math.floor(a.lo),
                math.ceil(a.hi),
                a.exact,
                0,
                a.size + 1,
            )
        return self._unary(self._gen(dtype, depth - 1))

    def _binary(self, op: str, a: Ex, b: Ex) -> Ex | None:
        d = a.dtype
        if a.size + b.size + 1 > self.max_size:
            return None
        sym = {"add": "+", "sub": "-", "mul": "*"}.get(op)
        if op == "add":
            lo, hi = a.lo + b.lo, a.hi + b.hi
        elif op == "sub":
            lo, hi = a.lo - b.hi, a.hi - b.lo
        elif op == "mul":
            ps = [a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi]
            lo, hi = min(ps), max(ps)
        elif op == "max":
            lo, hi = max(a.lo, b.lo), max(a.hi, b.hi)
        else:
            lo, hi = min(a.lo, b.lo), min(a.hi, b.hi)
        if max(abs(lo), abs(hi)) > LIMIT[d]:
            return None
        fb = a.fb + b.fb if op == "mul" else max(a.fb, b.fb)
        exact = a.exact and b.exact and _exact_ok(d, max(abs(lo), abs(hi)), fb)
        size = a.size + b.size + 1
        if sym:
            n = f"({a.n} {sym} {b.n})"
            return Ex(
                f"({a.t} {sym} {b.t})", _r(d, n) if d != "int32" else n, d, lo, hi, exact, fb, size
            )
        fn = "np.maximum" if op == "max" else "np.minimum"
        return Ex(f"T.{op}({a.t}, {b.t})", f"{fn}({a.n}, {b.n})", d, lo, hi, exact, fb, size)

    def _cast(self, a: Ex, dtype: str) -> Ex:
        if a.literal and a.lo == a.hi:
            return const(math.trunc(a.lo) if dtype == "int32" else a.lo, dtype)
        if a.literal and a.dtype == "float32":
            # Python evaluates `0.5 + 1.0` itself: give the cast an IR operand.
            a = Ex(f"T.float32({a.t})", a.n, a.dtype, a.lo, a.hi, a.exact, a.fb, a.size)
        if dtype == "int32":
            if not a.is_int and not (a.exact and a.mag < 2**20):
                return const(self.ch.choice([1, 2, -3], "cast fallback"), dtype)
            lo, hi = math.trunc(a.lo), math.trunc(a.hi)
            return Ex(
                f'T.cast({a.t}, "int32")',
                f'cast({a.n}, "int32")',
                dtype,
                lo,
                hi,
                a.exact,
                0,
                a.size + 1,
            )
        mag = a.mag
        if mag > LIMIT[dtype]:
            return const(1.0, dtype)
        exact = a.exact and _exact_ok(dtype, mag, a.fb)
        return Ex(
            f'T.cast({a.t}, "{dtype}")',
            f'cast({a.n}, "{dtype}")',
            dtype,
            a.lo,
            a.hi,
            exact,
            a.fb,
            a.size + 1,
        )

    def _unary(self, a: Ex) -> Ex:
        d = a.dtype
        f = self.ch.choice(
            ["exp", "exp2", "log", "log2", "sqrt", "rsqrt", "sin", "cos", "tanh"], "unary"
        )
        if f in ("exp", "exp2"):
            if a.hi > 8:
                a = Ex(
                    f"T.min({a.t}, 8.0)",
                    f"np.minimum({a.n}, 8.0)",
                    d,
                    min(a.lo, 8),
                    8,
                    a.exact,
                    a.fb,
                    a.size + 1,
                )
            np_f = "np.exp" if f == "exp" else "np.exp2"
            hi = math.exp(a.hi) if f == "exp" else 2.0**a.hi
            return Ex(f"T.{f}({a.t})", _r(d, f"{np_f}({a.n})"), d, 0.0, hi, False, 0, a.size + 1)
        if f in ("log", "log2", "sqrt"):
            arg_t, arg_n = f"(T.abs({a.t}) + 1.0)", _r(d, f"(np.abs({a.n}) + 1.0)")
            np_f = {"log": "np.log", "log2": "np.log2", "sqrt": "np.sqrt"}[f]
            return Ex(
                f"T.{f}{arg_t}",
                _r(d, f"{np_f}({arg_n})"),
                d,
                0.0,
                math.sqrt(a.mag + 1) + math.log(a.mag + 2),
                False,
                0,
                a.size + 2,
            )
        if f == "rsqrt":
            arg_t, arg_n = f"(T.abs({a.t}) + 1.0)", _r(d, f"(np.abs({a.n}) + 1.0)")
            return Ex(
                f"T.rsqrt{arg_t}",
                _r(d, f"(1.0 / np.sqrt({arg_n}))"),
                d,
                0.0,
                1.0,
                False,
                0,
                a.size + 2,
            )
        if f in ("sin", "cos") and a.mag > 100:
            f = "tanh"
        return Ex(f"T.{f}({a.t})", _r(d, f"np.{f}({a.n})"), d, -1.0, 1.0, False, 0, a.size + 1)
