"""The lowering cache key covers the compiler's own sources and nothing else (issue 10, item 6)."""

from __future__ import annotations

from pathlib import Path

from tsir.runtime import kernel

import tsir


def _relative(files: list[Path]) -> set[str]:
    root = Path(tsir.__file__).parent.parent
    return {f.relative_to(root).as_posix() for f in files}


def test_front_ends_interpreter_and_test_support_are_not_in_the_key() -> None:
    hashed = _relative(kernel.compiler_source_files())
    for part in ("tsir/interpret/", "tsir/script/", "tsir/compat/"):
        assert not any(name.startswith(part) for name in hashed), part
    assert "tsir/arith/corpus.py" not in hashed
    assert "tsir/arith/tvm_oracle.py" not in hashed


def test_every_pass_codegen_and_ir_module_is_in_the_key() -> None:
    root = Path(tsir.__file__).parent.parent
    hashed = _relative(kernel.compiler_source_files())
    for folder in ("passes", "codegen", "tsir/tileop", "tsir/layout", "tsir/builder"):
        for path in (root / folder).rglob("*.py"):
            assert path.relative_to(root).as_posix() in hashed, path
    for name in ("tsir/stmt.py", "tsir/expr.py", "tsir/arith/simplify.py", "tsir/target.py"):
        assert name in hashed
    assert {"runtime/kernel.py", "runtime/host_program.py"} <= hashed
