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

Hopper (mbarrier.h, tma.h, wgmma.h; `strands.py`, `hopper*.py`, `mbarrier.py`, `tma.py`,
`wgmma_*.py`). A kernel that calls them runs one block at a time, each warpgroup as a strand that
parks on waits (mbarrier phases, named barriers `bar.sync id, n`, setmaxnreg.inc) while the others
run; when every strand of the block is parked, a DeadlockError names each wait (barrier, parity,
state, threads). Shared memory is addressed as in the headers, by 32-bit shared-window addresses
(`tsir.mbarrier.shared_u32(address_of(buf[i]))` plus offsets; every allocation 1024-aligned).
mbarriers are objects in 8 bytes of shared memory (arrivals, transaction bytes, phase; init,
arrive, expect_tx, wait/try_wait with parity, the init fence). A TMA tensor map is the intrinsic
`tma_descriptor(address_of(A[0, ..., 0]), box_0, ..., box_{r-1}, swizzle_bytes)` (handle dtype;
the whole global buffer A, its box outermost first, 0/32/64/128-byte swizzle), given inline as a
call's `desc`, bound to a Var by a LetStmt, or -- after SplitHostDevice -- a kernel parameter
Var that the host program binds to that call. TMA loads are async events: their bytes are
pending from issue until they land, which is when a thread polls their barrier and its phase
cannot complete without them; they write the box through the swizzle, zero-filled out of bounds.
TMA stores read shared memory until `tma_store_wait_read` and write global memory at
`tma_store_wait`. wgmma: per warpgroup a queue of committed groups; `wgmma_ss/rs<KIND, N, ...>`
(`&d[0]` and, for rs, `&a[0]` as `address_of` of register arrays; matrix descriptors as uint64
values from `tsir.wgmma.wgmma_desc`) read their operands (decoded with the ISA's canonical layouts,
wgmma_ref.py) and write the accumulator when `wgmma_wait<N>` retires them; fp16/bf16/fp8 with
fp32 accumulation. setmaxnreg keeps the block's register budget, elect_one picks lane 0 of each
warp, fence_proxy_async_shared makes a thread's generic shared writes visible to the async proxy.
Orderings between warps (barriers, named barriers, mbarrier arrive -> wait, TMA completion) are
vector clocks (context.py) that the race detector reads.

Detectors (thread level), each a `HazardError` naming both statements (printed IR, and the pass
that produced them when known), the threads and blocks, and the buffer and address:
DataRaceError (two threads of a block touch a shared byte with nothing ordering them, one
writing, not both atomic), UninitializedReadError (a register the reading thread never wrote),
OutOfBoundsError (any buffer, every vector lane, shared addresses outside every allocation),
DivergentBarrierError (a barrier some threads of a block skip), DivergentWarpError (a warp- or
warpgroup-collective op with inactive lanes), AsyncCopyHazardError (a cp.async or TMA load
destination touched before it landed, a TMA store source written before its read-wait, either
pending at kernel end), MisalignedAccessError, ArithmeticHazardError (integer division by zero),
DeadlockError (multi-rank waits; parked warpgroups), MbarrierError (an mbarrier used against its
protocol: uninitialised, init not fenced or not ordered before use, too many arrivals, missing
expect_tx, its bytes used as data), WgmmaHazardError (a pending accumulator read or written, a
pending A register written, an operand tile written before retirement, registers written since
the last wgmma_fence, operations left pending), ProxyFenceError (a generic shared write read by
wgmma or a TMA store without fence.proxy.async by its writer), RegisterBudgetError (setmaxnreg
with an illegal count), TmaError (a tensor map or copy that breaks a TMA rule),
NamedBarrierError (a warp arriving twice at a named barrier in one generation, arrivals no
`bar.sync` consumed by the end of the block).

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

# The semantics tables of the device calls: device_calls declares the core entries; these
# modules add the distributed, NVSHMEM and Hopper ones to the same table when imported.
from . import (  # noqa: F401
    atomic_calls,
    debug_calls,
    dist_calls,
    hopper_calls,
    mbarrier,
    nvshmem_calls,
    tma,
    warp_calls,
    wgmma_calls,
)
from .entry import interpret
from .errors import (
    Access,
    ArgumentError,
    ArithmeticHazardError,
    AsyncCopyHazardError,
    DataRaceError,
    DeadlockError,
    DivergentBarrierError,
    DivergentWarpError,
    ExternCallError,
    HazardError,
    InterpretError,
    InterpretUnsupportedError,
    MbarrierError,
    MisalignedAccessError,
    NamedBarrierError,
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
from .stages import StageReport, StageResult, check_stages

__all__ = [
    "interpret",
    "check_stages",
    "StageReport",
    "StageResult",
    "InterpretError",
    "InterpretUnsupportedError",
    "UnknownDeviceCallError",
    "ExternCallError",
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
    "NamedBarrierError",
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
