"""One hierarchy for every error tsir raises on purpose.

User-facing errors carry *where* (the user's source line, the op, the buffer or the pass) and *what*
(expected vs found). Nothing here imports the rest of tsir, so every module can raise these.
"""

from __future__ import annotations

import os
import sys
import traceback
from dataclasses import dataclass

__all__ = [
    "TSIRError",
    "BuildError",
    "DTypeError",
    "VerifyError",
    "LayoutConflictError",
    "ArithError",
    "CompileError",
    "LaunchError",
    "InternalError",
    "UnsupportedError",
    "SourceLocation",
    "user_location",
]


@dataclass(frozen=True, slots=True)
class SourceLocation:
    """A place in the user's Python source: the frame that called into the builder."""

    filename: str
    lineno: int
    line: str

    def __str__(self) -> str:
        text = f"{self.filename}:{self.lineno}"
        if self.line:
            text += f"\n    {self.line.strip()}"
        return text


_PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_INTERNAL_DIRS = tuple(
    os.path.join(_PKG_DIR, d) + os.sep for d in ("tsir", "passes", "codegen", "runtime")
)


_STDLIB = os.path.dirname(os.path.abspath(os.__file__)) + os.sep


def _is_internal(filename: str) -> bool:
    path = os.path.abspath(filename)
    if path.startswith(_INTERNAL_DIRS):
        return True
    # contextlib and friends sit between the user's `with` and the builder.
    if path.startswith(_STDLIB) and f"{os.sep}site-packages{os.sep}" not in path:
        return True
    # An installed tsir keeps passes/codegen/runtime under tsir/.
    return f"{os.sep}tsir{os.sep}" in path and f"{os.sep}site-packages{os.sep}" in path


def user_location() -> SourceLocation | None:
    """The innermost stack frame outside tsir itself (the user's line), or None."""
    frame = sys._getframe(1)
    while frame is not None:
        if not _is_internal(frame.f_code.co_filename) and not frame.f_code.co_filename.startswith(
            "<"
        ):
            summary = traceback.FrameSummary(
                frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name
            )
            return SourceLocation(summary.filename, summary.lineno or 0, summary.line or "")
        frame = frame.f_back
    return None


class TSIRError(Exception):
    """Base class of every error tsir raises deliberately."""

    def __init__(
        self, message: str, *, loc: SourceLocation | None = None, where: str | None = None
    ):
        self.message = message
        self.loc = loc
        self.where = where
        super().__init__(self._render())

    def _render(self) -> str:
        text = self.message
        if self.where:
            text = f"[{self.where}] {text}"
        if self.loc is not None:
            text += f"\n  at {self.loc}"
        return text


class BuildError(TSIRError):
    """Misuse of the builder `tsir.T` (wrong index count, buffer outside its kernel, ...)."""

    def __init__(
        self, message: str, *, loc: SourceLocation | None = None, where: str | None = None
    ):
        super().__init__(message, loc=loc if loc is not None else user_location(), where=where)


class DTypeError(BuildError):
    """An expression mixes dtypes, or a dtype is used where it is not allowed."""


class VerifyError(TSIRError):
    """IR that is not well formed (raised by `tsir.verify`, naming the pass that produced it)."""


class LayoutConflictError(TSIRError):
    """Two tile operators need different layouts for one buffer."""


class ArithError(TSIRError):
    """Bad arithmetic: constant division by zero, mixed dtypes in analyzer input."""


class CompileError(TSIRError):
    """NVRTC / nvJitLink rejected the generated code, or a toolchain piece is missing."""


class LaunchError(TSIRError):
    """A kernel call whose arguments do not match the compiled signature, or a failed launch."""


class UnsupportedError(TSIRError):
    """A feature that the chosen target or tsir does not support."""


class InternalError(TSIRError):
    """An exception inside tsir that is not one of its deliberate errors: a tsir bug, reported
    with the stage that raised it, the user's statement it was processing, the original exception
    and the frame it rose in. `original` holds the exception (TSIR_DEBUG=1 lets it propagate
    unchanged, with its full traceback)."""

    def __init__(self, original: BaseException, stage: str, loc: SourceLocation | None):
        self.original = original
        frames = traceback.extract_tb(original.__traceback__)
        inner = frames[-1] if frames else None  # where it rose
        at = f" (raised at {os.path.basename(inner.filename)}:{inner.lineno})" if inner else ""
        super().__init__(
            f"internal error, a tsir bug: {type(original).__name__}: {original}{at}. Please report "
            f"it with this message; TSIR_DEBUG=1 shows the full traceback",
            loc=loc,
            where=stage,
        )
