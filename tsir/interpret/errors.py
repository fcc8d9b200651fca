"""The errors the interpreter raises: unsupported IR, bad arguments, and hazards its detectors find.

Every hazard is a `HazardError` carrying structured fields (the kind, the statements involved, the
threads and blocks, the buffer and byte address) besides its message, so that the random-program
generator can classify hits without parsing text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import TSIRError

__all__ = [
    "InterpretError", "InterpretUnsupportedError", "UnknownDeviceCallError", "ArgumentError",
    "HazardError", "DataRaceError", "UninitializedReadError", "OutOfBoundsError",
    "DivergentBarrierError", "DivergentWarpError", "AsyncCopyHazardError", "MisalignedAccessError",
    "ArithmeticHazardError", "DeadlockError", "TileSemanticsError", "StageMismatchError", "Access",
]


class InterpretError(TSIRError):
    """Base of every error `tsir.interpret` raises on purpose."""


class InterpretUnsupportedError(InterpretError):
    """IR that the interpreter cannot execute (it names the construct; nothing is skipped)."""


class UnknownDeviceCallError(InterpretUnsupportedError):
    """A device-header call with no reference semantics in `tsir.interpret.device_calls`."""


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

    def __init__(self, message: str, *, accesses: list[Access] | None = None, buffer: str | None = None,
                 address: int | None = None):
        self.accesses = accesses or []
        self.buffer = buffer
        self.address = address
        super().__init__(message + _render_accesses(self.accesses))


def _render_accesses(accesses: list[Access]) -> str:
    from .report import describe_stmt, describe_threads

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
