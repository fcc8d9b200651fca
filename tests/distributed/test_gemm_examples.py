"""All-gather + GEMM and GEMM + reduce-scatter (examples/distributed/ag_gemm.py, gemm_rs.py): the
kernels compile on the CPU; on 2 GPUs the results match torch over several epochs (flags and
counters reused without a reset)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import tsir

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT / "examples" / "distributed"))
sys.path.insert(0, str(ROOT / "examples"))


@pytest.mark.parametrize("target", ["sm_80", "sm_90a", "sm_100a"])
def test_ag_gemm_kernels_compile(target: str) -> None:
    from ag_gemm import ag_push, gemm_after_flags

    push = tsir.compile(ag_push(256, 256, 2, 2), target=target)
    gemm = tsir.compile(gemm_after_flags(512, 384, 256, 256, 2), target=target)
    assert "tsir::wait<tsir::GE>" in gemm.cuda_source
    # sm_90a's tensor-core path is wgmma (tests/hopper), the others' mma.sync.
    assert ("wgmma_ss<" if target == "sm_90a" else "gemm_ss<") in gemm.cuda_source
    assert push.cubin[:4] == b"\x7fELF"


def test_gemm_rows_must_come_from_one_slice() -> None:
    from ag_gemm import gemm_after_flags

    with pytest.raises(AssertionError, match="one slice"):
        gemm_after_flags(512, 384, 256, 256, 4, bm=128)


def test_gemm_rs_kernels_compile() -> None:
    from gemm_rs import gemm_partial, reduce_scatter

    g = tsir.compile(gemm_partial(512, 256, 256, 2), target="sm_90a")
    rs = tsir.compile(reduce_scatter(512, 256, 2), target="sm_90a")
    assert "tsir::wait<tsir::GE>" in rs.cuda_source and "wgmma_ss<" in g.cuda_source


@pytest.mark.multigpu
@pytest.mark.parametrize("example", ["ag_gemm", "gemm_rs"])
def test_gemm_examples_on_2_gpus(example: str) -> None:
    pytest.importorskip("torch")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    cmd = [
        sys.executable,
        "-m",
        "tsir.runtime.launch",
        "-n",
        "2",
        "--timeout",
        "230",
        str(ROOT / "examples" / "distributed" / f"{example}.py"),
    ]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=240, env=env)
    sys.stdout.write(r.stdout[-8000:] + r.stderr[-8000:])
    assert r.returncode == 0
    assert r.stdout.count(f"PASS {example} ") == 2
