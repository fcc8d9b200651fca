"""Simplify: index arithmetic brought to canonical form under the ranges in scope.

Requires: nothing. Guarantees: the same values, fewer operations; `if`s whose condition is proved
are folded. Runs after vectorization, whose index rewrites leave foldable arithmetic.
"""

from __future__ import annotations

from tsir.expr import IntImm, PrimExpr
from tsir.function import PrimFunc
from tsir.stmt import BufferStore, IfThenElse, Stmt, seq

from .infra import PassContext, register_pass
from .scope import ScopedMutator

__all__ = ["Simplify"]


class _Simplify(ScopedMutator):
    def index(self, e: PrimExpr) -> PrimExpr:
        return self.analyzer.simplify(e) if e.dtype.is_int and e.dtype.lanes == 1 else e

    def visit_BufferStore(self, s: BufferStore) -> Stmt:
        s = self.generic_visit(s)
        idx = tuple(self.index(i) for i in s.indices)
        return s if all(a is b for a, b in zip(idx, s.indices)) else s.replace(indices=idx)

    def visit_BufferLoad(self, e):
        e = self.generic_visit(e)
        idx = tuple(self.index(i) for i in e.indices)
        return e if all(a is b for a, b in zip(idx, e.indices)) else e.replace(indices=idx)

    def visit_IfThenElse(self, s: IfThenElse) -> Stmt:
        cond = self.analyzer.simplify(s.cond)
        if isinstance(cond, IntImm):
            if cond.value:
                return self.visit(s.then_case)
            return self.visit(s.else_case) if s.else_case is not None else seq()
        if self.analyzer.can_prove(cond):
            return self.visit(s.then_case)
        return super().visit_IfThenElse(s if cond is s.cond else s.replace(cond=cond))


@register_pass("Simplify")
def Simplify(func: PrimFunc, ctx: PassContext) -> PrimFunc:
    """Simplify index expressions and fold provable conditions."""
    return _Simplify().visit(func)
