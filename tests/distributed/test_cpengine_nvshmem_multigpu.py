"""Copy-engine all-gather / AG-GEMM and the NVSHMEM examples on 2 (and 4) GPUs, each one launch of
`python -m tsir.runtime.launch` with a timeout (device waits have timeouts too)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parent.parent.parent
EXAMPLES = ROOT / "examples" / "distributed"


def launch(
    n: int, script: Path, *args: str, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    cmd = [
        sys.executable,
        "-m",
        "tsir.runtime.launch",
        "-n",
        str(n),
        "--timeout",
        str(timeout - 10),
    ]
    r = subprocess.run(
        [*cmd, str(script), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    sys.stdout.write(r.stdout[-20000:])
    sys.stderr.write(r.stderr[-5000:])
    return r


def check(n: int, script: str, name: str) -> None:
    r = launch(n, EXAMPLES / script)
    passed = {int(m) for m in re.findall(rf"\[rank (\d+)\] PASS {name}\b", r.stdout)}
    assert passed == set(range(n)), (
        f"{name}: PASS from ranks {sorted(passed)} of {n}; exit {r.returncode}"
    )


@pytest.mark.multigpu
def test_cpengine_allgather_on_2_gpus() -> None:
    check(2, "cpengine_allgather.py", "cpengine_allgather")


@pytest.mark.multigpu(4)
def test_cpengine_allgather_on_4_gpus() -> None:
    check(4, "cpengine_allgather.py", "cpengine_allgather")


@pytest.mark.multigpu
def test_nvshmem_examples_on_2_gpus() -> None:
    pytest.importorskip("nvshmem.core")
    check(2, "nvshmem_examples.py", "nvshmem_examples")


@pytest.mark.multigpu(4)
def test_nvshmem_examples_on_4_gpus() -> None:
    pytest.importorskip("nvshmem.core")
    check(4, "nvshmem_examples.py", "nvshmem_examples")
