"""What the compile cache's compiler hash covers (tsir/sources.py): the compiler's own sources,
not its front ends, its reference interpreter or test support."""

from __future__ import annotations

from pathlib import Path

import tsir
import tsir.codegen
import tsir.passes
from tsir.sources import NOT_COMPILER, is_compiler_source

TSIR = Path(tsir.__file__).resolve().parent


def test_front_ends_and_the_interpreter_are_not_compiler_sources() -> None:
    for sub in NOT_COMPILER:
        files = list((TSIR / sub).rglob("*.py"))
        assert files, f"tsir/{sub} has no sources: update NOT_COMPILER"
        assert not any(is_compiler_source(p) for p in files)


def test_ir_passes_and_codegen_are_compiler_sources() -> None:
    for path in (
        TSIR / "expr.py",
        TSIR / "tileop" / "gemm.py",
        TSIR / "layout" / "fragment.py",
        Path(tsir.passes.__file__).parent / "lower_tile_op.py",
        Path(tsir.codegen.__file__).parent / "cuda.py",
    ):
        assert path.exists() and is_compiler_source(path), path


def test_test_support_is_not_in_the_package() -> None:
    """The arithmetic lemma corpus and the TVM oracle are tests' helpers (tests/arith/)."""
    assert not (TSIR / "arith" / "corpus.py").exists()
    assert not (TSIR / "arith" / "tvm_oracle.py").exists()
