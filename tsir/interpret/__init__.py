"""`tsir.interpret`: a reference execution of tsir IR in numpy, at any stage of the pipeline.

    tsir.interpret(func, *args, grid=None, ranks=1, check=True)

runs `func` -- a PrimFunc built with `tsir.T`, any stage of `tsir.lower(func, target).stages`, or the
final `Module` -- on numpy arrays (buffer parameters, modified in place) and Python numbers (scalar
parameters), in parameter order. Dynamic dimensions are bound from the arrays' shapes.
"""

import sys as _sys
import types as _types
from typing import Any

from .errors import (
    Access, ArgumentError, ArithmeticHazardError, AsyncCopyHazardError, DataRaceError, DeadlockError,
    DivergentBarrierError, DivergentWarpError, HazardError, InterpretError, InterpretUnsupportedError,
    MisalignedAccessError, OutOfBoundsError, StageMismatchError, TileSemanticsError,
    UninitializedReadError, UnknownDeviceCallError,
)
from .host import interpret
from .stages import StageReport, StageResult, check_stages

__all__ = [
    "interpret", "check_stages", "StageReport", "StageResult", "InterpretError", "InterpretUnsupportedError", "UnknownDeviceCallError", "ArgumentError",
    "HazardError", "DataRaceError", "UninitializedReadError", "OutOfBoundsError", "DivergentBarrierError",
    "DivergentWarpError", "AsyncCopyHazardError", "MisalignedAccessError", "ArithmeticHazardError",
    "DeadlockError", "TileSemanticsError", "StageMismatchError", "Access",
]


class _CallableModule(_types.ModuleType):
    """`tsir.interpret` is this package *and* the function: `tsir.interpret(func, *args)` runs a
    function, `tsir.interpret.check_stages(...)` and the error classes stay reachable from it."""

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        return interpret(*args, **kwargs)


_sys.modules[__name__].__class__ = _CallableModule
