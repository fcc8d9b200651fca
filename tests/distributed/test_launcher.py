"""`python -m tsir.runtime.launch` and multi-process groups on CPU (a FileStore and a fake IPC
backend): rank variables, prefixed output, stopping every rank when one fails, the timeout, and
the symmetric heap's checks across real processes."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from tsir.runtime.dist.launcher import main

HERE = Path(__file__).parent
ROOT = HERE.parent.parent


def launch(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tsir.runtime.launch", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**__import__("os").environ, "PYTHONPATH": str(ROOT)},
    )


def test_every_rank_gets_the_variables(tmp_path: Path) -> None:
    script = tmp_path / "env.py"
    script.write_text(
        "import os\nprint(*(os.environ[k] for k in ('RANK', 'LOCAL_RANK', 'WORLD_SIZE', 'MASTER_PORT', "
        "'NCCL_NVLS_ENABLE')), bool(os.environ['TSIR_DIST_STORE']))\n"
    )
    r = launch("-n", "3", str(script))
    assert r.returncode == 0, r.stdout
    lines = sorted(r.stdout.splitlines())
    assert [line.split()[:4] for line in lines] == [
        ["[rank", f"{i}]", str(i), str(i)] for i in range(3)
    ]
    assert all(
        line.split()[4] == "3" and line.split()[6] == "0" and line.endswith("True")
        for line in lines
    )


def test_a_failing_rank_stops_the_others(tmp_path: Path) -> None:
    script = tmp_path / "fail.py"
    script.write_text(
        "import os, sys, time\nif os.environ['RANK'] == '1': sys.exit(7)\ntime.sleep(60)\n"
    )
    t0 = time.monotonic()
    r = launch("-n", "2", str(script))
    assert r.returncode == 7 and time.monotonic() - t0 < 20
    assert "rank 1 exited with code 7; stopping the other ranks" in r.stdout


def test_timeout_stops_everything(tmp_path: Path) -> None:
    script = tmp_path / "hang.py"
    script.write_text("import time\ntime.sleep(60)\n")
    r = launch("-n", "2", "--timeout", "1", str(script))
    assert r.returncode == 124 and "timed out after 1 s" in r.stdout


def test_usage_errors() -> None:
    with pytest.raises(SystemExit):
        main(["-n", "0", "x.py"])
    with pytest.raises(SystemExit):
        main(["-n", "2"])


def test_groups_across_processes() -> None:
    r = launch("-n", "3", str(HERE / "scripts" / "fake_ranks.py"), "ok")
    assert r.returncode == 0, r.stdout
    for rank in range(3):
        assert f"[rank {rank}] ok rank {rank}/3 offsets 0 256" in r.stdout


def test_allocation_order_mismatch_is_reported() -> None:
    r = launch("-n", "2", str(HERE / "scripts" / "fake_ranks.py"), "order")
    assert r.returncode != 0
    assert "AllocationOrderError: symmetric allocation #1 differs between ranks" in r.stdout
    assert "rank 0: int32[8] (32 bytes, align 256)" in r.stdout
    assert "rank 1: float32[16] (64 bytes, align 256)" in r.stdout


def test_a_dead_peer_is_a_timeout_not_a_hang() -> None:
    r = launch("-n", "2", str(HERE / "scripts" / "fake_ranks.py"), "dead", timeout=60)
    assert r.returncode != 0
    assert "rank 0: rank 1 did not reach" in r.stdout
