"""Run pyright (configured in pyproject.toml, `[tool.pyright]`) over tsir as it is installed.

The checkout keeps `passes/`, `codegen/` and `runtime/` beside `tsir/`, and setuptools installs them as
`tsir.passes`, `tsir.codegen` and `tsir.runtime` (`package-dir`); at run time `tsir.__path__` adds the
repository root. pyright follows neither, so it would resolve no `tsir.passes...` import and none of
the `from ..errors import ...` in those folders. This script checks a mirror instead: a temporary
tree of symbolic links laid out like the installed package (`tsir/passes/...`) with pyproject.toml at
its root, and reports every diagnostic at its path in the checkout.

    python .ci/typecheck.py            # pyright's summary and diagnostics, exit status 1 on errors
    python .ci/typecheck.py --json     # pyright's JSON report (paths mapped back to the checkout)

pyright comes from the `test` extras (`pyright[nodejs]`: its Node.js is a wheel, nothing is
downloaded); the interpreter running this script is the one whose packages pyright resolves.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# (folder in the checkout, where it sits in the mirror): the installed layout of pyproject's
# package-dir
LAYOUT = (
    ("tsir", "tsir"),
    ("passes", "tsir/passes"),
    ("codegen", "tsir/codegen"),
    ("runtime", "tsir/runtime"),
)


def build_mirror(dest: Path) -> dict[str, str]:
    """Link every Python file of LAYOUT into `dest`; returns {mirror path: checkout path}.

    Files are linked one by one: pyright does not descend into linked directories."""
    links: dict[str, str] = {}
    for folder, place in LAYOUT:
        for source in sorted((ROOT / folder).rglob("*.py")):
            if "__pycache__" in source.parts:
                continue
            link = dest / place / source.relative_to(ROOT / folder)
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(source)
            links[str(link)] = str(source.relative_to(ROOT))
    (dest / "pyproject.toml").symlink_to(ROOT / "pyproject.toml")
    return links


def run_pyright(python: str = sys.executable) -> tuple[int, dict]:
    """pyright's exit status and JSON report over the mirror, file paths relative to the checkout."""
    env = dict(os.environ)
    # the version is pinned in pyproject: no query to PyPI for a newer one
    env["PYRIGHT_PYTHON_IGNORE_WARNINGS"] = "1"
    with tempfile.TemporaryDirectory(prefix="tsir-pyright-") as tmp:
        mirror = Path(tmp)
        links = build_mirror(mirror)
        command = [python, "-m", "pyright", "--outputjson", "--pythonpath", python]
        done = subprocess.run(command, cwd=mirror, env=env, capture_output=True, text=True)
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        raise RuntimeError(
            f"pyright did not run ({' '.join(command)}, exit status {done.returncode}):\n"
            f"{done.stdout}\n{done.stderr}"
        ) from None
    for diagnostic in report.get("generalDiagnostics", []):
        path = diagnostic.get("file", "")
        diagnostic["file"] = links.get(path, path)
    return done.returncode, report


def format_report(report: dict) -> str:
    lines = []
    for d in report.get("generalDiagnostics", []):
        start = d.get("range", {}).get("start", {})
        where = f"{d['file']}:{start.get('line', 0) + 1}:{start.get('character', 0) + 1}"
        rule = f" ({d['rule']})" if d.get("rule") else ""
        lines.append(f"{where} - {d['severity']}: {d['message']}{rule}")
    summary = report.get("summary", {})
    lines.append(
        f"pyright {report.get('version', '?')}: {summary.get('filesAnalyzed', 0)} files, "
        f"{summary.get('errorCount', 0)} errors, {summary.get('warningCount', 0)} warnings"
    )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    status, report = run_pyright()
    print(json.dumps(report, indent=1) if "--json" in argv else format_report(report))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
