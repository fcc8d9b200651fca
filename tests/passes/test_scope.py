"""passes/scope.py's ScopedMutator: the analyzer knows an `if`'s condition inside its branches,
and a rewritten statement keeps the user's source line (its span)."""

from __future__ import annotations

from tsir.passes.scope import ScopedMutator

from tsir.dtype import int32
from tsir.errors import SourceLocation
from tsir.expr import Var
from tsir.stmt import Evaluate, IfThenElse


class _Bump(ScopedMutator):
    """Rewrites `x < 8` inside the branch: provable from the condition `x < 4`."""

    def visit_Evaluate(self, s: Evaluate) -> Evaluate:
        value = self.analyzer.simplify(s.value)
        return s if value is s.value else s.replace(value=value)


def test_a_rewritten_if_keeps_its_span_and_its_branches_see_the_condition() -> None:
    x = Var("x", int32)
    where = SourceLocation("prog.py", 12, "with T.If(x < 4):")
    s = IfThenElse(x < 4, Evaluate(x < 8), Evaluate(x < 8), span=where)
    out = _Bump().visit(s)
    assert isinstance(out, IfThenElse) and out is not s
    assert out.span == where
    assert str(out.then_case.value) in ("True", "T.bool(True)", "1")  # type: ignore[union-attr]
    assert "x < 8" in str(out.else_case)  # x >= 4 proves nothing about x < 8
