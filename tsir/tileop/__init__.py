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
from .atomic_scan import AtomicAdd, CumSum, FinalizeReducer
from .distributed import BarrierBlocksOp, GetOp, LdOp, PutOp, StOp, WaitOp

__all__ = [
    "InferLevel", "LayoutInferArgs", "LowerArgs", "TileOperatorNode", "get_tile_op",
    "register_tile_op", "registered_tile_ops", "Copy", "Fill", "AtomicAdd", "CumSum", "FinalizeReducer", "PutOp", "GetOp", "StOp", "LdOp",
    "WaitOp", "BarrierBlocksOp",
]
