"""Hypothesis strategies for random integer expressions over bound variables, and a sampler.

Variables come with ranges; some are narrow dtypes (int8, uint8, int16) or span their whole dtype so
that wrapping actually happens and the overflow reasoning of the simplifier gets exercised.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from hypothesis import strategies as st

from tsir.arith import Analyzer, evaluate
from tsir.arith.const_fold import NoFold
from tsir.dtype import DataType
from tsir.errors import ArithError
from tsir.expr import (
    EQ,
    GE,
    GT,
    LE,
    LT,
    NE,
    Add,
    And,
    Cast,
    FloorDiv,
    FloorMod,
    IntImm,
    Max,
    Min,
    Mul,
    Not,
    Or,
    PrimExpr,
    Select,
    Sub,
    Var,
)

BOOL = DataType("bool")


@dataclass
class Env:
    """Variables of one dtype with their ranges [lo, lo + extent)."""

    dtype: DataType
    vars: list[tuple[Var, int, int]]

    def analyzer(self, **kw: object) -> Analyzer:
        ana = Analyzer(**kw)  # type: ignore[arg-type]
        for v, lo, ext in self.vars:
            ana.bind(v, lo, ext)
        return ana

    def sample(self, rng: random.Random) -> dict[Var, int]:
        out = {}
        for v, lo, ext in self.vars:
            r = rng.random()
            if r < 0.15:
                out[v] = lo
            elif r < 0.3:
                out[v] = lo + ext - 1
            else:
                out[v] = rng.randrange(lo, lo + ext)
        return out


DTYPES = ["int32", "int32", "int32", "int64", "int8", "uint8", "int16", "uint32"]


@st.composite
def envs(draw: st.DrawFn) -> Env:
    dt = DataType(draw(st.sampled_from(DTYPES)))
    dlo, dhi = int(dt.min_value()), int(dt.max_value())
    n = draw(st.integers(1, 4))
    vs = []
    for i in range(n):
        kind = draw(st.sampled_from(["tile", "tile", "small", "signed", "full"]))
        if kind == "tile":
            lo, ext = 0, draw(st.sampled_from([1, 2, 4, 8, 16, 32, 64, 128, 256]))
        elif kind == "small":
            lo, ext = draw(st.integers(0, 8)), draw(st.integers(1, 40))
        elif kind == "signed":
            lo, ext = draw(st.integers(-20, 0)), draw(st.integers(1, 50))
        else:
            lo, ext = dlo, dhi - dlo + 1
        lo = max(dlo, min(lo, dhi))
        ext = max(1, min(ext, dhi - lo + 1))
        vs.append((Var(f"v{i}", dt), lo, ext))
    return Env(dt, vs)


TILES = [1, 2, 3, 4, 8, 16, 32, 64, 128, -4, -3]


def int_exprs(env: Env, depth: int = 3) -> st.SearchStrategy[PrimExpr]:
    dt = env.dtype
    dlo, dhi = int(dt.min_value()), int(dt.max_value())

    def const(v: int) -> PrimExpr:
        return IntImm(max(dlo, min(dhi, v)), dt)

    leaves = st.one_of(
        st.sampled_from([v for v, _, _ in env.vars]),
        st.integers(-8, 300).map(const),
    )

    def extend(children: st.SearchStrategy[PrimExpr]) -> st.SearchStrategy[PrimExpr]:
        tile = st.sampled_from(TILES).map(const)
        return st.one_of(
            st.tuples(children, children).map(lambda p: Add(*p)),
            st.tuples(children, children).map(lambda p: Sub(*p)),
            st.tuples(children, st.one_of(tile, children)).map(lambda p: Mul(*p)),
            st.tuples(children, tile).map(lambda p: FloorDiv(*p)),
            st.tuples(children, tile).map(lambda p: FloorMod(*p)),
            st.tuples(children, children).map(lambda p: FloorDiv(*p)),
            st.tuples(children, children).map(lambda p: FloorMod(*p)),
            st.tuples(children, children).map(lambda p: Min(*p)),
            st.tuples(children, children).map(lambda p: Max(*p)),
            st.tuples(cmp_of(children), children, children).map(lambda p: Select(*p)),
            st.tuples(children, st.sampled_from(NARROW)).map(lambda p: cast_through(p[0], p[1])),
            cmp_of(children).map(lambda b: Cast(dt, b)),
        )

    return st.recursive(leaves, extend, max_leaves=8 if depth >= 3 else 4)


NARROW = ["int8", "uint8", "int16", "int64", "uint32"]


def cast_through(e: PrimExpr, mid: str) -> PrimExpr:
    """e converted to `mid` and back: truncates, sign-extends or widens."""
    return Cast(e.dtype, Cast(DataType(mid), e))


def cmp_of(children: st.SearchStrategy[PrimExpr]) -> st.SearchStrategy[PrimExpr]:
    ops = st.sampled_from([LT, LE, GT, GE, EQ, NE])
    return st.tuples(ops, children, children).map(lambda p: p[0](p[1], p[2]))


def bool_exprs(env: Env) -> st.SearchStrategy[PrimExpr]:
    atoms = cmp_of(int_exprs(env, depth=2))

    def extend(children: st.SearchStrategy[PrimExpr]) -> st.SearchStrategy[PrimExpr]:
        return st.one_of(
            st.tuples(children, children).map(lambda p: And(*p)),
            st.tuples(children, children).map(lambda p: Or(*p)),
            children.map(Not),
        )

    return st.recursive(atoms, extend, max_leaves=3)


def value_or_none(e: PrimExpr, env: dict[Var, int]) -> int | None:
    """The value, or None where the expression is undefined (division by zero, C UB)."""
    try:
        return evaluate(e, env)  # type: ignore[return-value]
    except (ArithError, NoFold):
        return None
