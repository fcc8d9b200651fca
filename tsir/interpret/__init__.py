"""`tsir.interpret`: a reference execution of tsir IR in numpy, at any stage of the pipeline.

    tsir.interpret(func, *args, grid=None, ranks=1, check=True)

runs `func` -- a PrimFunc built with `tsir.T`, any stage of `tsir.lower(func, target).stages`, or
the final `Module` (host function + device kernels) -- on numpy arrays (buffer parameters, modified
in place; dtypes must match, bfloat16/fp8 as `ml_dtypes` arrays) and Python numbers (scalar
parameters), in parameter order. Dynamic dimensions are bound from the arrays' shapes.

- `grid`: None runs every block of every kernel launch; an iterable of block indices (tuples, or
  ints for 1-D grids) runs only those blocks, for speed. Blocks outside the grid are an error.
- `check`: run the detectors (below); False runs without them (an out-of-bounds load then reads
  zero and a store is dropped).
- `ranks`: several ranks in one process (`tsir.interpret.distributed`): each buffer argument is
  then a list of per-rank arrays; symmetric memory, put/get, st/ld, flag waits, barrier_blocks,
  NVSHMEM calls and copy engines reach the peers' arrays. `dead_ranks=` names ranks that run
  nothing; a wait that can never be satisfied (on a dead rank, or on nobody) raises DeadlockError
  naming every waiting thread, its flag, the value it holds and the timeout it would hit.
- keyword extras: `stages=` (a `tsir.lower` result) makes hazard messages name the pass that
  produced each statement; `implicit_guards=` / `implicit_sync=` give the IR's meaning before
  LegalizeSafeMemoryAccess / ThreadSync make guards / barriers explicit (`check_stages` sets them).

Levels, chosen per kernel. Tile level (kernels that hold tile operators, T.Parallel loops or
fragments: the builder's IR up to InjectSoftwarePipeline/LayoutInference): one block at a time;
tile ops by DESIGN's semantics on whole per-block arrays; a T.Parallel nest is array semantics
(each statement over the whole iteration space; `x[i] = x[i] + v` with shared targets is a
reduction; other conflicting writes raise TileSemanticsError); statements outside T.Parallel run
in every thread; global accesses out of bounds read zero / are skipped. Thread level (from
LowerTileOp on): every thread of every block, one numpy lane each, all blocks of a sweep at once;
registers per lane, shared memory per block as bytes (views by dtype and offset after
PlanSharedMemory; swizzled tiles through their `shared_layout_map` before LowerSharedLayout),
barriers, warp shuffles, atomics, cp.async commit groups (data lands at the wait that retires it),
and the device-header functions of `device_calls.py` (gemm_ss through real swizzled addresses and
the PTX ldmatrix/mma fragment tables). An unknown device call raises UnknownDeviceCallError.

Detectors (thread level), each a `HazardError` naming both statements (printed IR, and the pass
that produced them when known), the threads and blocks, and the buffer and address:
DataRaceError (two threads of a block touch a shared byte between barriers, one writing, not both
atomic), UninitializedReadError (a register the reading thread never wrote), OutOfBoundsError (any
buffer, every vector lane), DivergentBarrierError (a barrier some threads of a block skip),
DivergentWarpError (a warp-collective op with inactive lanes), AsyncCopyHazardError (a cp.async
destination touched before its wait, or pending at kernel end), MisalignedAccessError,
ArithmeticHazardError (integer division by zero), DeadlockError (multi-rank waits).

    report = tsir.interpret.check_stages(func_or_lowered, args, target="sm_80")

runs the input (tile level, the reference) and every stage on copies of `args`; `report.ok`,
`report.first_failure` (`.stage`, `.status` in "mismatch" / "hazard" / "error" / "internal",
`.message`, `.error`), `report.results` (per stage, with seconds), `report.reference` (the input
stage's outputs) and `report.raise_for_failure()`. Floats compare within `stages.TOLERANCE`,
integers exactly. This is the entry point for differential testing of the pipeline.
"""

import sys as _sys
import types as _types
from typing import Any

from .errors import (
    Access,
    ArgumentError,
    ArithmeticHazardError,
    AsyncCopyHazardError,
    DataRaceError,
    DeadlockError,
    DivergentBarrierError,
    DivergentWarpError,
    HazardError,
    InterpretError,
    InterpretUnsupportedError,
    MbarrierError,
    MisalignedAccessError,
    OutOfBoundsError,
    ProxyFenceError,
    RegisterBudgetError,
    StageMismatchError,
    TileSemanticsError,
    TmaError,
    UninitializedReadError,
    UnknownDeviceCallError,
    WgmmaHazardError,
)
from .host import interpret
from .stages import StageReport, StageResult, check_stages

__all__ = [
    "interpret",
    "check_stages",
    "StageReport",
    "StageResult",
    "InterpretError",
    "InterpretUnsupportedError",
    "UnknownDeviceCallError",
    "ArgumentError",
    "HazardError",
    "DataRaceError",
    "UninitializedReadError",
    "OutOfBoundsError",
    "DivergentBarrierError",
    "DivergentWarpError",
    "AsyncCopyHazardError",
    "MisalignedAccessError",
    "ArithmeticHazardError",
    "DeadlockError",
    "MbarrierError",
    "WgmmaHazardError",
    "ProxyFenceError",
    "RegisterBudgetError",
    "TmaError",
    "TileSemanticsError",
    "StageMismatchError",
    "Access",
]


class _CallableModule(_types.ModuleType):
    """`tsir.interpret` is this package *and* the function: `tsir.interpret(func, *args)` runs a
    function, `tsir.interpret.check_stages(...)` and the error classes stay reachable from it."""

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        return interpret(*args, **kwargs)


_sys.modules[__name__].__class__ = _CallableModule
