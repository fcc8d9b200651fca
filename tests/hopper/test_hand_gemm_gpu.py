"""The hand-specialized Hopper GEMM (codegen/hopper_gemm.py, launched by benchmarks/hopper_launch.py)
against torch, with and without a cluster of two CTAs sharing B by TMA multicast, with direct or TMA stores: odd tile-row
counts (the pair's second CTA has no tile: zero-filled A, no stores), ragged N, K not a multiple of
the k-block, persistent and not. Outputs are poisoned (NaN) first; mbarrier waits trap after ~1 s
instead of hanging. Run with `pytest -m gpu tests/hopper/test_hand_gemm_gpu.py`."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from tsir.codegen.hopper_gemm import GemmConfig

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def launch() -> Any:
    torch = pytest.importorskip("torch")
    if torch.cuda.get_device_capability() != (9, 0):
        pytest.skip("needs a Hopper GPU (sm_90a)")
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import hopper_launch
    finally:
        sys.path.pop(0)
    return hopper_launch


@pytest.mark.parametrize("cluster_m", [1, 2])
@pytest.mark.parametrize("persistent", [True, False])
@pytest.mark.parametrize("tma_store", [False, True])
@pytest.mark.parametrize(
    "m,n,k",
    [(640, 512, 512), (384, 600, 328), (1000, 256, 4096), (128, 256, 64), (2048, 2048, 1024)],
)
def test_hand_gemm_matches_torch(
    launch: Any, cluster_m: int, persistent: bool, tma_store: bool, m: int, n: int, k: int
) -> None:
    import torch

    torch.manual_seed(m + n + k)
    cfg = GemmConfig(
        stages=3 if tma_store else 4,
        persistent=persistent,
        cluster_m=cluster_m,
        tma_store=tma_store,
        mbarrier_timeout_cycles=2 * 10**9,
    )
    gemm = launch.HopperGemm.load(cfg)
    ld = -(-n // 8) * 8
    a = torch.randn(m, k, device="cuda").half()
    # B's rows padded to 16 bytes (TMA's row pitch), as benchmarks/hopper_gemm.py does.
    b = torch.randn(k, ld, device="cuda").half()[:, :n]
    c = torch.full((m, ld), float("nan"), device="cuda", dtype=torch.half)[:, :n]
    gemm.launcher(a, b, c)()
    torch.cuda.synchronize()
    ref = a.float() @ b.float()
    err = ((c.float() - ref).norm() / ref.norm()).item()
    assert err < 1e-2, (cfg.name, err)
    assert gemm.grid(m, n) % cluster_m == 0


def test_cluster_grid_is_whole_clusters(launch: Any) -> None:
    cfg = GemmConfig(cluster_m=2)
    gemm = launch.HopperGemm.load(cfg)
    assert gemm.max_clusters > 0  # the driver answered the occupancy query
    for m, n in ((8192, 8192), (640, 512), (128, 256)):
        g = gemm.grid(m, n)
        assert g % 2 == 0 and g // 2 <= gemm.max_clusters
    assert launch.HopperGemm.load(replace(cfg, cluster_m=1)).max_clusters == 0
