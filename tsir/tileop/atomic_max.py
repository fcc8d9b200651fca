"""AtomicMax: `T.atomic_max(dst_region, src, memory_order=None)`, dst[...] = max(dst[...], src[...])
element-wise with atomic maxima (a NaN operand is ignored, as by fmaxf). Its regions, lowerings
and printer form are `AtomicOp`'s (atomic_add.py); the one-element form is `atomic_call("max")`."""

from __future__ import annotations

from typing import ClassVar

from ..node import node
from .atomic_add import AtomicOp
from .base import register_tile_op

__all__ = ["AtomicMax"]


@register_tile_op("tl.AtomicMax")
@node
class AtomicMax(AtomicOp):
    """dst[...] = max(dst[...], src[...]) element-wise, atomically."""

    kind: ClassVar[str] = "max"
