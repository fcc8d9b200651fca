"""Tile operators: TileOperatorNode (the interface the passes drive ops through), its registry,
and the ops, one file each."""

from . import gemm_rs as _gemm_rs  # noqa: F401  (registers the register-A lowerings)
from . import gemm_wgmma_rs as _gemm_wgmma_rs  # noqa: F401  (the register-A wgmma lowerings)
from .atomic_add import AtomicAdd, AtomicOp, MemoryOrder
from .atomic_max import AtomicMax
from .atomic_min import AtomicMin
from .base import (
    AsyncLoad,
    BulkLoad,
    InferLevel,
    LayoutFact,
    LayoutInferArgs,
    LowerArgs,
    Lowering,
    OpArgs,
    OpEnum,
    Requirement,
    Spread,
    TileOperatorNode,
    get_tile_op,
    register_tile_op,
    registered_tile_ops,
    requirement,
)
from .copy import Copy
from .copy_tma import tma_boxes_of  # registers Copy's "tma" lowering
from .cummax import CumMax
from .cumsum import CumSum
from .distributed import (
    BarrierBlocksOp,
    GetOp,
    LdOp,
    MemoryScope,
    PutOp,
    Relation,
    Semantics,
    StOp,
    WaitOp,
)
from .fill import Fill
from .finalize_reducer import FinalizeReducer
from .gemm import Gemm, GemmPolicy
from .gemm_wgmma import WgmmaPlan, wgmma_plan  # registers Gemm's "wgmma" lowering
from .im2col import Im2Col
from .parallel import ParallelLoop
from .reduce import Reduce, ReduceKind
from .tma_copy import TmaCopy

__all__ = [
    "AsyncLoad",
    "BulkLoad",
    "InferLevel",
    "LayoutFact",
    "LayoutInferArgs",
    "Lowering",
    "LowerArgs",
    "OpArgs",
    "OpEnum",
    "Requirement",
    "Spread",
    "TileOperatorNode",
    "get_tile_op",
    "register_tile_op",
    "registered_tile_ops",
    "requirement",
    "Copy",
    "Fill",
    "AtomicOp",
    "AtomicAdd",
    "AtomicMax",
    "AtomicMin",
    "MemoryOrder",
    "CumSum",
    "CumMax",
    "Reduce",
    "ReduceKind",
    "FinalizeReducer",
    "Gemm",
    "GemmPolicy",
    "WgmmaPlan",
    "wgmma_plan",
    "ParallelLoop",
    "Im2Col",
    "TmaCopy",
    "PutOp",
    "GetOp",
    "StOp",
    "LdOp",
    "WaitOp",
    "BarrierBlocksOp",
    "Semantics",
    "MemoryScope",
    "Relation",
]
