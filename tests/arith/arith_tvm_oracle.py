"""TVM's own analyzer as a differential oracle (apache-tvm, optional; imported lazily).

apache-tvm 0.27 moved the analyzer to `tvm.sym.Analyzer` and expressions to `tvm.tirx`; older wheels
have `tvm.arith` and `tvm.tir`. Both layouts are accepted. Only tests and benchmarks use this
module.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

from arith_corpus import Lemma

from tsir.arith.analyzer import Analyzer, Proof
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

__all__ = ["TVMOracle", "tvm_import_error", "ours"]


def tvm_import_error() -> str | None:
    """None when apache-tvm imports, else why not."""
    try:
        _modules()
    except Exception as exc:  # any import failure means: no oracle
        return f"{type(exc).__name__}: {exc}"
    return None


def _modules() -> tuple[Any, Any, Any, Any]:
    import tvm

    try:
        from tvm import sym as arith_mod
        from tvm import tirx as expr_mod
    except ImportError:
        from tvm import arith as arith_mod  # type: ignore[no-redef]
        from tvm import tir as expr_mod  # type: ignore[no-redef]
    return tvm, arith_mod, expr_mod, tvm.ir


class TVMOracle:
    def __init__(self) -> None:
        self.tvm, self.arith, self.tir, self.ir = _modules()
        self.version = self.tvm.__version__
        strength = getattr(self.arith, "ProofStrength", None)
        self.strengths = {
            "default": strength.DEFAULT if strength else 0,
            "symbolic": strength.SYMBOLIC_BOUND if strength else 1,
        }

    def convert(self, e: PrimExpr, vmap: dict[int, Any]) -> Any:
        tir = self.tir
        t = type(e)
        if t is Var:
            v = vmap.get(id(e))
            if v is None:
                v = vmap[id(e)] = tir.Var(e.name, str(e.dtype))  # type: ignore[attr-defined]
            return v
        if t is IntImm:
            return tir.IntImm(str(e.dtype), e.value)  # type: ignore[attr-defined]
        c = lambda x: self.convert(x, vmap)  # noqa: E731
        simple = {
            Add: tir.Add,
            Sub: tir.Sub,
            Mul: tir.Mul,
            Min: tir.Min,
            Max: tir.Max,
            EQ: tir.EQ,
            NE: tir.NE,
            LT: tir.LT,
            LE: tir.LE,
            GT: tir.GT,
            GE: tir.GE,
            And: tir.And,
            Or: tir.Or,
        }
        if t in simple:
            return simple[t](c(e.a), c(e.b))  # type: ignore[attr-defined]
        if t is FloorDiv:
            return tir.floordiv(c(e.a), c(e.b))
        if t is FloorMod:
            return tir.floormod(c(e.a), c(e.b))
        if t is Not:
            return tir.Not(c(e.a))
        if t is Select:
            return tir.Select(c(e.cond), c(e.true_value), c(e.false_value))
        if t is Cast:
            return tir.Cast(str(e.dtype), c(e.value))
        raise NotImplementedError(f"no TVM form for {t.__name__}")

    def analyzer(self, lemma: Lemma, vmap: dict[int, Any]) -> Any:
        ana = self.arith.Analyzer()
        for v, lo, ext in lemma.ranges:
            lo_t = lo if isinstance(lo, int) else self.convert(lo, vmap)
            ext_t = ext if isinstance(ext, int) else self.convert(ext, vmap)
            ana.bind(self.convert(v, vmap), self.ir.Range.from_min_extent(lo_t, ext_t))
        return ana

    def prove(self, lemma: Lemma, cond: PrimExpr | None = None, strength: str = "symbolic") -> bool:
        vmap: dict[int, Any] = {}
        ana = self.analyzer(lemma, vmap)
        goal = self.convert(lemma.cond if cond is None else cond, vmap)
        with ExitStack() as stack:
            for a in lemma.assumptions:
                stack.enter_context(ana.constraint_scope(self.convert(a, vmap)))
            return bool(ana.can_prove(goal, self.strengths[strength]))

    def prepared(self, lemma: Lemma, strength: str = "symbolic") -> tuple[Any, Any, list[Any], Any]:
        """(analyzer, goal, assumption exprs, strength) for timing loops."""
        vmap: dict[int, Any] = {}
        ana = self.analyzer(lemma, vmap)
        goal = self.convert(lemma.cond, vmap)
        assumptions = [self.convert(a, vmap) for a in lemma.assumptions]
        return ana, goal, assumptions, self.strengths[strength]


def ours(lemma: Lemma, cond: PrimExpr | None = None, ana: Analyzer | None = None) -> Proof:
    """Our analyzer on a lemma (a fresh one unless given)."""
    if ana is None:
        ana = Analyzer()
    for v, lo, ext in lemma.ranges:
        ana.bind(v, lo, ext)
    with ExitStack() as stack:
        for a in lemma.assumptions:
            stack.enter_context(ana.assume(a))
        return ana.prove(lemma.cond if cond is None else cond)
