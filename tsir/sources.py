"""Which of tsir's source files make up the compiler, the code a kernel's lowering depends on.

The compile cache keys each cached lowering on a hash of these files (`compiler_source_hash` in
runtime/kernel.py), so a changed compiler never reuses a lowering made by another version of
itself. Front ends (the builder, the script forms, TileLang compatibility: what they build reaches
the key as the function's IR) and the reference interpreter are not the compiler: editing them
must not invalidate every user's cache.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["NOT_COMPILER", "is_compiler_source"]

# Subpackages of `tsir` that never run while a function is lowered.
NOT_COMPILER = ("builder", "compat", "interpret", "script")

_TSIR_DIR = Path(__file__).resolve().parent


def is_compiler_source(path: Path) -> bool:
    """False for the files of the `NOT_COMPILER` subpackages of tsir/, True for any other file."""
    try:
        parts = path.resolve().relative_to(_TSIR_DIR).parts
    except ValueError:
        return True  # passes/, codegen/, runtime/: the compiler's other halves
    return not (len(parts) > 1 and parts[0] in NOT_COMPILER)
