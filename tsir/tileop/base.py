"""TileOperatorNode: the base of tile-level operations, and their registry.

A tile op is an IR node (fields are its operands) that lives in a `TileOpStmt`. It declares the
regions it reads and writes, takes part in layout inference (`infer_layout`) and lowers itself to
thread-level IR (`lower`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from ..buffer import Buffer, BufferRegion
from ..node import Node
from ..stmt import Stmt

if TYPE_CHECKING:
    from ..arith import Analyzer
    from ..target import Target

__all__ = [
    "TileOperatorNode", "InferLevel", "LayoutInferArgs", "LowerArgs", "register_tile_op",
    "get_tile_op", "registered_tile_ops",
]


class InferLevel(enum.IntEnum):
    FREE = 0
    COMMON = 1
    STRICT = 2


@dataclass
class LayoutInferArgs:
    target: Target
    num_threads: int
    layout_map: dict[Buffer, Any]
    analyzer: Analyzer


@dataclass
class LowerArgs:
    """What an op needs to lower itself: the kernel's thread variable and count, the target, layouts."""

    target: Target
    thread_var: Any
    num_threads: int
    layout_map: dict[Buffer, Any] = field(default_factory=dict)
    # Logical buffer -> the physical buffer that replaces it (a fragment -> its per-thread registers).
    buffer_remap: dict[Buffer, Buffer] = field(default_factory=dict)
    # Fragment -> the row-group plan LayoutInference chose for it (reductions need its shape).
    plans: dict[Buffer, Any] = field(default_factory=dict)
    # Allocates a scratch buffer in the enclosing kernel (reductions need shared workspace).
    add_workspace: Callable[[str, tuple[int, ...], Any, str], Buffer] | None = None


class TileOperatorNode(Node):
    """Base class of tile operators. Subclasses are `@node` dataclasses registered by name."""

    __slots__ = ()
    op_name: str = "tile_op"

    def spread(self) -> str:
        """Over which threads the op's work is spread: "block" (the op is collective over the
        threads that run it, which split its elements), "warp" (collective over one warp), or
        "thread" (each calling thread does its own, independent part: a scalar store)."""
        return "block"

    def reads(self) -> tuple[BufferRegion, ...]:
        return ()

    def writes(self) -> tuple[BufferRegion, ...]:
        return ()

    def infer_layout(self, args: LayoutInferArgs, level: InferLevel) -> dict[Buffer, Any]:
        return {}

    def lower(self, args: LowerArgs, analyzer: Analyzer) -> Stmt:
        raise NotImplementedError(f"{type(self).__name__}.lower")

    def clone(self) -> TileOperatorNode:
        # Ops are immutable; per-op inference state lives outside the node, so a clone is the node.
        return self


_REGISTRY: dict[str, type] = {}
T = TypeVar("T", bound=type)


def register_tile_op(name: str) -> Callable[[T], T]:
    """Register a tile operator class under `name` (e.g. "tl.Copy")."""

    def wrap(cls: T) -> T:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"tile op {name!r} registered twice")
        _REGISTRY[name] = cls
        cls.op_name = name  # type: ignore[attr-defined]
        return cls

    return wrap


def get_tile_op(name: str) -> type:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"no tile op named {name!r}; registered: {', '.join(sorted(_REGISTRY))}") from None


def registered_tile_ops() -> dict[str, type]:
    return dict(_REGISTRY)
