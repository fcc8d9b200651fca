"""Tile operators: TileOperatorNode, its registry, and the core ops."""

from .base import (
    InferLevel,
    LayoutInferArgs,
    LowerArgs,
    TileOperatorNode,
    get_tile_op,
    register_tile_op,
    registered_tile_ops,
)
from .copy import Copy, Fill
from .distributed import BarrierBlocksOp, GetOp, LdOp, PutOp, StOp, WaitOp

__all__ = [
    "InferLevel", "LayoutInferArgs", "LowerArgs", "TileOperatorNode", "get_tile_op",
    "register_tile_op", "registered_tile_ops", "Copy", "Fill", "PutOp", "GetOp", "StOp", "LdOp",
    "WaitOp", "BarrierBlocksOp",
]
