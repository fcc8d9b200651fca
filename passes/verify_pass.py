"""Verify: check well-formedness (tsir.verify) at the head of the pipeline, and that every device
call the program makes exists on the target."""

from __future__ import annotations

from typing import Any

from tsir.errors import UnsupportedError
from tsir.expr import Call
from tsir.function import PrimFunc
from tsir.intrin import DEVICE_FUNCTIONS, device_function_name
from tsir.stmt import Stmt
from tsir.target import Target
from tsir.verify import verify
from tsir.visitor import Visitor

from .infra import PassContext, register_pass

__all__ = ["Verify", "check_target_calls"]


class _TargetCalls(Visitor):
    """Device calls whose declaration (`DeviceFunction.min_sm`) needs a newer GPU than `target`,
    reported at the user's line of the statement that makes them."""

    def __init__(self, target: Target) -> None:
        super().__init__()
        self.target = target
        self.span: Any = None

    def visit_Stmt(self, s: Stmt) -> None:
        outer = self.span
        self.span = s.span if s.span is not None else outer
        self.generic_visit(s)
        self.span = outer

    def visit_Call(self, c: Call) -> None:
        fn = DEVICE_FUNCTIONS.get(device_function_name(c.op))
        if fn is not None and fn.min_sm > self.target.sm:
            raise UnsupportedError(
                f"{fn.requires or c.op} is not available on {self.target.arch}; compile for "
                f"sm_{fn.min_sm} or later, or use another form",
                loc=self.span,
                where="Verify",
            )
        self.generic_visit(c)


def check_target_calls(func: PrimFunc, target: Target) -> None:
    """Raise UnsupportedError when `func` calls a device function `target` lacks."""
    _TargetCalls(target).visit(func.body)


@register_pass("Verify")
def Verify(func: PrimFunc, ctx: PassContext) -> PrimFunc:
    """Raise VerifyError on malformed IR, UnsupportedError on a call the target lacks; return the
    function unchanged."""
    verify(func, pass_name="Verify")
    check_target_calls(func, ctx.target)
    return func
