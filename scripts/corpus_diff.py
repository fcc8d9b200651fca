"""Corpus diff for refactors (CONVENTIONS 20): regenerate the CUDA of every example kernel
(`examples/catalog.py`) with this checkout and with another revision, and diff the two.

    python scripts/corpus_diff.py                 # against `main`, for sm_80, sm_90a, sm_100a
    python scripts/corpus_diff.py --against HEAD~1 --targets sm_90a --keep /tmp/corpus

Both sides build the kernels from *this* checkout's `examples/` (the corpus), and lower and print
them with their own tsir: the other revision is exported with `git archive` into a temporary folder
and run in a subprocess with that folder first on PYTHONPATH. Exits 0 when every kernel's CUDA is
identical (a kernel that fails to build must fail with the same message on both sides), 1 otherwise,
printing the first lines of each difference. No GPU and no NVRTC are needed.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGETS = ("sm_80", "sm_90a", "sm_100a")


def dump(out: Path, targets: list[str], examples: Path) -> None:
    """Write `<target>/<kernel>.cu` (or `.err`) for every catalog kernel; runs inside the tree
    under test (the tsir that `import tsir` finds)."""
    sys.path.insert(0, str(examples))
    from catalog import KERNELS
    from tsir.codegen.cuda import generate_cuda

    import tsir

    out.mkdir(parents=True, exist_ok=True)
    (out / "tsir_path.txt").write_text(tsir.__file__)
    for target in targets:
        folder = out / target
        folder.mkdir(parents=True, exist_ok=True)
        for name, build in sorted(KERNELS.items()):
            try:
                text = generate_cuda(tsir.lower(build(), target).module)
                (folder / f"{name}.cu").write_text(text)
            except Exception as e:  # noqa: BLE001  (a failure is part of the corpus)
                (folder / f"{name}.err").write_text(f"{type(e).__name__}: {e}\n")


def _export(ref: str, dest: Path) -> str:
    sha = subprocess.run(
        ["git", "rev-parse", "--short", ref], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()
    archive = dest / "tree.tar"
    with archive.open("wb") as fh:
        subprocess.run(["git", "archive", ref], cwd=ROOT, check=True, stdout=fh)
    with tarfile.open(archive) as tar:
        tar.extractall(dest / "tree", filter="data")
    archive.unlink()
    return sha


def _run_dump(tree: Path, out: Path, targets: list[str]) -> None:
    env = dict(os.environ, PYTHONPATH=str(tree), TSIR_CACHE_DIR=str(out / "cache"))
    env.pop("TSIR_DUMP_IR", None)
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--dump",
        str(out),
        "--targets",
        ",".join(targets),
        "--examples",
        str(ROOT / "examples"),
    ]
    subprocess.run(cmd, env=env, check=True, cwd=tree)
    found = (out / "tsir_path.txt").read_text()
    if not found.startswith(str(tree)):
        raise SystemExit(f"the dump for {tree} imported tsir from {found}; check PYTHONPATH")


def compare(a: Path, b: Path, targets: list[str], context: int) -> list[str]:
    """Names (target/kernel) whose output differs; prints each difference."""
    differing: list[str] = []
    for target in targets:
        names = sorted(
            {p.name for p in (a / target).iterdir()} | {p.name for p in (b / target).iterdir()}
        )
        for name in names:
            pa, pb = a / target / name, b / target / name
            ta = pa.read_text() if pa.exists() else None
            tb = pb.read_text() if pb.exists() else None
            if ta == tb:
                continue
            differing.append(f"{target}/{name}")
            diff = difflib.unified_diff(
                (ta or "<missing>\n").splitlines(True),
                (tb or "<missing>\n").splitlines(True),
                f"before/{target}/{name}",
                f"after/{target}/{name}",
                n=2,
            )
            lines = list(diff)
            sys.stdout.writelines(lines[:context])
            if len(lines) > context:
                print(f"... ({len(lines) - context} more diff lines)")
    return differing


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--against", default="main", help="the git revision to compare with (main)")
    ap.add_argument("--targets", default=",".join(TARGETS))
    ap.add_argument("--keep", type=Path, help="keep both corpora under this folder")
    ap.add_argument("--lines", type=int, default=60, help="diff lines shown per kernel")
    ap.add_argument("--dump", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--examples", type=Path, default=ROOT / "examples", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    targets = [t for t in args.targets.split(",") if t]
    if args.dump is not None:
        dump(args.dump, targets, args.examples)
        return 0
    with tempfile.TemporaryDirectory(prefix="tsir-corpus-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        sha = _export(args.against, Path(tmp))
        before, after = work / f"before-{sha}", work / "after"
        _run_dump(Path(tmp) / "tree", before, targets)
        _run_dump(ROOT, after, targets)
        differing = compare(before, after, targets, args.lines)
        total = sum(1 for t in targets for _ in (after / t).iterdir())
        errors = sum(1 for t in targets for p in (after / t).iterdir() if p.suffix == ".err")
        summary = {
            "against": f"{args.against} ({sha})",
            "kernels x targets": total,
            "failing to build (both sides)": errors
            - sum(1 for d in differing if d.endswith(".err")),
            "differing": len(differing),
        }
        print(json.dumps(summary))
        return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
