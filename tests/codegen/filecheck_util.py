"""Run FileCheck-style CHECK lines (the pure-Python `filecheck` package) against generated text."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile


def filecheck(text: str, checks: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        check_file = os.path.join(d, "checks.txt")
        with open(check_file, "w") as f:
            f.write(checks)
        proc = subprocess.run(
            [sys.executable, "-m", "filecheck", check_file],
            input=text,
            capture_output=True,
            text=True,
            check=False,
        )
    if proc.returncode != 0:
        raise AssertionError(
            f"FileCheck failed:\n{proc.stdout}\n{proc.stderr}\n--- input ---\n{text}"
        )
