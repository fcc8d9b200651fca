"""The distributed examples and the bad-input checks on 2 (and 4) GPUs, each as one launch of
`python -m tsir.runtime.launch` with a timeout: nothing here can hang."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parent.parent.parent
SCRIPTS = Path(__file__).resolve().parent / "scripts"
EXAMPLES = ["put_get", "ring_shift", "collectives", "barrier_stress"]
_runs: dict[int, subprocess.CompletedProcess[str]] = {}


def launch(
    n: int, script: Path, *args: str, timeout: float = 300
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
        str(script),
        *args,
    ]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)
    sys.stdout.write(r.stdout[-20000:])
    return r


def examples_run(n: int) -> subprocess.CompletedProcess[str]:
    """All examples in one group of n ranks (launched once per world size)."""
    if n not in _runs:
        _runs[n] = launch(n, ROOT / "examples" / "distributed" / "run_all.py", timeout=420)
    return _runs[n]


def check_example(n: int, name: str) -> None:
    r = examples_run(n)
    passed = {int(m) for m in re.findall(rf"\[rank (\d+)\] PASS {name} w={n}", r.stdout)}
    failed = re.findall(rf"\[rank \d+\] FAIL {name} w={n}.*", r.stdout)
    assert not failed, "\n".join(failed)
    assert passed == set(range(n)), (
        f"{name}: PASS from ranks {sorted(passed)} of {n}; launcher exit {r.returncode}"
    )


@pytest.mark.multigpu
@pytest.mark.parametrize("name", EXAMPLES)
def test_example_on_2_gpus(name: str) -> None:
    check_example(2, name)


@pytest.mark.multigpu(4)
@pytest.mark.parametrize("name", EXAMPLES)
def test_example_on_4_gpus(name: str) -> None:
    check_example(4, name)


@pytest.mark.multigpu
def test_examples_exit_cleanly() -> None:
    assert examples_run(2).returncode == 0


@pytest.mark.multigpu
def test_bad_input() -> None:
    r = launch(2, SCRIPTS / "gpu_errors.py", timeout=180)
    for what in (
        "non-symmetric argument rejected at call time",
        "constant peer out of range rejected when built",
        "allocation order mismatch reported",
        "finalized",
    ):
        assert r.stdout.count(f"OK {what}") == 2, what
    assert r.returncode == 0


@pytest.mark.multigpu
def test_dead_peer_makes_a_timed_wait_fail_not_hang() -> None:
    r = launch(2, SCRIPTS / "gpu_peer_death.py", timeout=180)
    assert r.returncode == 3, f"launcher exit {r.returncode}"
    assert "[rank 0] host saw: " in r.stdout
    # the device's own report (printf before __trap) names the flag, the value seen and the rank
    assert re.search(r"tsir: wait timed out on rank 0 .* holds 0, waited for == 1", r.stdout), (
        "no device report"
    )
