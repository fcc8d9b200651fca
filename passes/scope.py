"""A mutator that keeps an Analyzer informed of the ranges and facts in scope.

Loop variables are bound to their ranges, kernel block/thread indices to the grid and block, let
variables to their values, and the condition of an `if` is assumed in its then-branch (its negation
in the else-branch). Passes that prove things about indices subclass it.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

from tsir.arith import Analyzer
from tsir.expr import IntImm, Not
from tsir.stmt import For, IfThenElse, KernelLaunch, LetStmt, Stmt
from tsir.visitor import Mutator

__all__ = ["ScopedMutator"]


class ScopedMutator(Mutator):
    def __init__(self, analyzer: Analyzer | None = None):
        super().__init__()
        self.analyzer = analyzer if analyzer is not None else Analyzer()

    def visit_PrimFunc(self, f: Any) -> Any:
        # Dynamic dimensions are sizes: non-negative and within their dtype (the launcher checks).
        for v in f.dynamic_vars():
            self.analyzer.bind(
                v, IntImm(0, v.dtype), IntImm(int(v.dtype.max_value()), v.dtype), override=True
            )
        return self.generic_visit(f)

    def visit_KernelLaunch(self, k: KernelLaunch) -> Stmt:
        for v, n in zip(k.block_vars, k.grid):
            self.analyzer.bind(v, IntImm(0, v.dtype), n)
        for v, n in zip(k.thread_vars, k.threads):
            self.analyzer.bind(v, IntImm(0, v.dtype), IntImm(n, v.dtype))
        return self.generic_visit(k)

    def visit_For(self, s: For) -> Stmt:
        self.analyzer.bind(s.loop_var, s.min, s.extent, override=True)
        return self.generic_visit(s)

    def visit_LetStmt(self, s: LetStmt) -> Stmt:
        self.analyzer.bind(s.var, s.value, override=True)
        return self.generic_visit(s)

    def visit_IfThenElse(self, s: IfThenElse) -> Stmt:
        cond = self.visit(s.cond)
        with self.analyzer.assume(cond):
            then_case = self.visit(s.then_case)
        else_case = s.else_case
        if else_case is not None:
            with self.analyzer.assume(Not(cond)):
                else_case = self.visit(else_case)
        if cond is s.cond and then_case is s.then_case and else_case is s.else_case:
            return s
        return s.replace(cond=cond, then_case=then_case, else_case=else_case)

    def assuming(self, *conds: Any) -> ExitStack:
        stack = ExitStack()
        for c in conds:
            stack.enter_context(self.analyzer.assume(c))
        return stack
