"""Verify: check well-formedness (tsir.verify) at the head of the pipeline."""

from __future__ import annotations

from tsir.function import PrimFunc
from tsir.verify import verify

from .infra import PassContext, register_pass

__all__ = ["Verify"]


@register_pass("Verify")
def Verify(func: PrimFunc, ctx: PassContext) -> PrimFunc:
    """Raise VerifyError on malformed IR; return the function unchanged."""
    verify(func, pass_name="Verify")
    return func
