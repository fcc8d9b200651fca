"""The errors the interpreter raises: unsupported IR, bad arguments, and hazards its detectors find.

Every hazard is a `HazardError` carrying structured fields (the kind, the statements involved, the
threads and blocks, the buffer and byte address) besides its message, so that the random-program
generator can classify hits without parsing text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import TSIRError
from .report import describe_stmt, describe_threads

__all__ = [
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
    "WgmmaHazardError",
    "ProxyFenceError",
    "RegisterBudgetError",
    "TmaError",
    "TileSemanticsError",
    "StageMismatchError",
    "Access",
]


class InterpretError(TSIRError):
    """Base of every error `tsir.interpret` raises on purpose."""


class InterpretUnsupportedError(InterpretError):
    """IR that the interpreter cannot execute (it names the construct; nothing is skipped)."""


class UnknownDeviceCallError(InterpretUnsupportedError):
    """A device-header call with no reference semantics in `tsir.interpret.device_calls`."""


class ExternCallError(InterpretUnsupportedError):
    """A call of hand-written CUDA (`T.call_extern`): it has no reference semantics."""


class ArgumentError(InterpretError):
    """Arguments that do not match the function's parameters (count, dtype, shape)."""


class TileSemanticsError(InterpretError):
    """A tile-level program whose meaning is ambiguous, e.g. T.Parallel iterations writing
    different values to one element."""


class StageMismatchError(InterpretError):
    """`check_stages(...).raise_for_failure()`: a stage computed something else, or failed."""


@dataclass
class Access:
    """One side of a hazard: what a group of threads did in one statement."""

    what: str  # "read", "write", "atomic write", "cp.async issue", "barrier", ...
    stmt: Any  # the statement node (printed in the message)
    threads: list[tuple[tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    origin: str | None = None  # the pass that produced the statement, when known


class HazardError(InterpretError):
    """A detector hit: a race, an uninitialised read, an out-of-bounds access, ...

    Fields: `kind` (short name), `accesses` (the statements and threads involved), `buffer`
    (its name, or None) and `address` (a byte address in the buffer's memory, or None).
    """

    kind = "hazard"

    def __init__(
        self,
        message: str,
        *,
        accesses: list[Access] | None = None,
        buffer: str | None = None,
        address: int | None = None,
    ):
        self.accesses = accesses or []
        self.buffer = buffer
        self.address = address
        super().__init__(message + _render_accesses(self.accesses))


def _render_accesses(accesses: list[Access]) -> str:
    out = []
    for a in accesses:
        who = describe_threads(a.threads)
        origin = f"  [produced by pass {a.origin}]" if a.origin else ""
        out.append(f"\n  {a.what} by {who}:{origin}\n      {describe_stmt(a.stmt)}")
    return "".join(out)


class DataRaceError(HazardError):
    kind = "data race"


class UninitializedReadError(HazardError):
    kind = "uninitialized read"


class OutOfBoundsError(HazardError):
    kind = "out of bounds"


class DivergentBarrierError(HazardError):
    kind = "divergent barrier"


class DivergentWarpError(HazardError):
    kind = "divergent warp op"


class AsyncCopyHazardError(HazardError):
    kind = "cp.async hazard"


class MisalignedAccessError(HazardError):
    kind = "misaligned access"


class ArithmeticHazardError(HazardError):
    kind = "arithmetic"


class DeadlockError(HazardError):
    kind = "deadlock"


class MbarrierError(HazardError):
    """An mbarrier used against its protocol: not initialised (or its initialisation not yet
    visible to the user), initialised twice, more arrivals than its count in one phase, a
    transaction count out of range, its 8 bytes read or written as data."""

    kind = "mbarrier misuse"


class NamedBarrierError(HazardError):
    """A named barrier (`bar.sync` / `bar.arrive` with an id and a thread count) used against its
    protocol: a warp arriving again (either form) before the barrier completed the generation it
    arrived in (the PTX ISA leaves that undefined: the extra arrival would count towards the
    current generation), or arrivals that no `bar.sync` ever consumed when the block ends."""

    kind = "named barrier misuse"


class WgmmaHazardError(HazardError):
    """wgmma's asynchronous protocol broken: an accumulator read or written, or an A register
    written, before the `wgmma_wait` that retires the operation; a shared operand tile written
    before then; accumulator or A registers written by ordinary code since the warpgroup's last
    `wgmma_fence`; a descriptor that differs between the threads of the warpgroup, or with
    reserved bits set; operations left pending at the end of the kernel."""

    kind = "wgmma hazard"


class ProxyFenceError(HazardError):
    """Shared memory written through the generic proxy (ordinary stores, stmatrix, cp.async) and
    then read by the async proxy (a wgmma operand, a TMA store source) without a
    `fence_proxy_async_shared()` by the writing thread in between: a barrier alone does not make
    generic writes visible to the async proxy."""

    kind = "missing proxy fence"


class RegisterBudgetError(HazardError):
    """`setmaxnreg` with an illegal count: not a multiple of 8 in [24, 256], an `inc` below or a
    `dec` above the warpgroup's current count."""

    kind = "register budget"


class TmaError(HazardError):
    """A tensor map or TMA copy that breaks a TMA rule (box size, inner extent, strides, the
    map's rank against the copy's, a destination outside shared memory)."""

    kind = "TMA misuse"
