"""`tilelang.layout`: the layouts TileLang programs annotate shared tiles with."""

from __future__ import annotations

from typing import Any

from ...buffer import Buffer
from ...errors import BuildError
from ...layout.swizzle import make_swizzled_layout as _make

__all__ = ["make_swizzled_layout"]


def make_swizzled_layout(buffer: Any, k_major: bool = True, allow_pad: bool = True) -> Any:
    """The bank-conflict-free swizzle tsir gives an mma operand tile of `buffer`'s shape."""
    if not isinstance(buffer, Buffer):
        raise BuildError(f"make_swizzled_layout takes a shared buffer, got {buffer!r}")
    return _make(tuple(buffer.shape), buffer.dtype, k_major, allow_pad=allow_pad)
