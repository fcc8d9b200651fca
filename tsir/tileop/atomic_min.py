"""AtomicMin: `T.atomic_min(dst_region, src, memory_order=None)`, dst[...] = min(dst[...], src[...])
element-wise with atomic minima (a NaN operand is ignored, as by fminf). Its regions, lowerings
and printer form are `AtomicOp`'s (atomic_add.py); the one-element form is `atomic_call("min")`."""

from __future__ import annotations

from typing import ClassVar

from ..node import node
from .atomic_add import AtomicOp
from .base import register_tile_op

__all__ = ["AtomicMin"]


@register_tile_op("tl.AtomicMin")
@node
class AtomicMin(AtomicOp):
    """dst[...] = min(dst[...], src[...]) element-wise, atomically."""

    kind: ClassVar[str] = "min"
