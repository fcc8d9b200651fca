"""Print the line count of the source, per top-level folder (CONVENTIONS 3: keep it visible)."""

from __future__ import annotations

import sys
from pathlib import Path

FOLDERS = ("tsir", "passes", "codegen", "runtime", "tests", "examples", "benchmarks")
SUFFIXES = (".py", ".h", ".cuh", ".hpp")


def count(folder: Path) -> tuple[int, int]:
    files = [p for p in folder.rglob("*") if p.suffix in SUFFIXES and "__pycache__" not in p.parts]
    lines = sum(len(p.read_text(errors="replace").splitlines()) for p in files)
    return len(files), lines


def main() -> int:
    root = Path(__file__).resolve().parent.parent
    total_files = total_lines = 0
    print(f"{'folder':<12}{'files':>7}{'lines':>9}")
    for name in FOLDERS:
        folder = root / name
        if not folder.is_dir():
            continue
        files, lines = count(folder)
        total_files += files
        total_lines += lines
        print(f"{name + '/':<12}{files:>7}{lines:>9}")
    print(f"{'total':<12}{total_files:>7}{total_lines:>9}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
