"""Checks on the repository itself: small modules, and packaging that matches the source tree."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCE_DIRS = ("tsir", "passes", "codegen", "runtime")
SUFFIXES = (".py", ".h", ".cuh", ".hpp")
MAX_LINES = 800

# how pyproject maps the source folders into the installed `tsir` package
_PACKAGE_OF_DIR = {
    "tsir": "tsir",
    "passes": "tsir.passes",
    "codegen": "tsir.codegen",
    "runtime": "tsir.runtime",
}


def _source_files() -> list[Path]:
    return sorted(
        path
        for folder in SOURCE_DIRS
        for path in (ROOT / folder).rglob("*")
        if path.suffix in SUFFIXES and "__pycache__" not in path.parts
    )


def test_no_source_file_exceeds_the_line_limit() -> None:
    too_long = {
        str(path.relative_to(ROOT)): count
        for path in _source_files()
        if (count := len(path.read_text(errors="replace").splitlines())) > MAX_LINES
    }
    assert not too_long, f"split these files by concern (limit {MAX_LINES} lines): {too_long}"


@pytest.mark.skipif(sys.version_info < (3, 11), reason="tomllib is new in Python 3.11")
def test_every_source_package_is_listed_in_pyproject() -> None:
    """A subpackage missing from [tool.setuptools] packages works from a checkout but is left
    out of the installed wheel."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = set()
    for folder, package in _PACKAGE_OF_DIR.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((package, *relative)))
    missing = sorted(found - listed)
    assert not missing, f"add to [tool.setuptools] packages in pyproject.toml: {missing}"
