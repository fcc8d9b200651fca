"""`tsir.interpret(func, *args, ...)`: one rank on the host program (`host.Program`), or several
ranks in one process (`distributed.interpret_ranks`) when asked for or when the program uses
distributed operations."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from .distributed import interpret_ranks, uses_distributed
from .host import Program

__all__ = ["interpret"]


def interpret(
    func: Any,
    *args: Any,
    grid: Iterable[Any] | None = None,
    ranks: int = 1,
    check: bool = True,
    stages: Any = None,
    implicit_guards: bool | None = None,
    implicit_sync: bool = False,
    dead_ranks: Iterable[int] = (),
) -> None:
    """Run `func` (a PrimFunc from any stage of `tsir.lower(...).stages`, or the final Module) on
    numpy arrays in place and Python numbers, in parameter order. See the package docstring."""
    dead_ranks = tuple(dead_ranks)
    if ranks != 1 or dead_ranks or uses_distributed(func):
        interpret_ranks(
            func,
            args,
            grid=grid,
            ranks=ranks,
            check=check,
            stages=stages,
            implicit_guards=implicit_guards,
            implicit_sync=implicit_sync,
            dead_ranks=dead_ranks,
        )
        return
    run = Program(
        func,
        grid=grid,
        check=check,
        stages=stages,
        implicit_guards=implicit_guards,
        implicit_sync=implicit_sync,
    )
    # Overflow, NaN and infinities are part of C's float semantics, not warnings.
    with np.errstate(all="ignore"):
        run.bind(args)
        run.run()
    run.finish()
