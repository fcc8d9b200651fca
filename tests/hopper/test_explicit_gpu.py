"""The hand-specialized Hopper programs (examples/hopper_ws_gemm.py in the builder,
examples/tilelang_ws_gemm.py in TileLang's form) compiled for the GPU present (sm_90a) against
torch, on tile-multiple and ragged shapes, outputs poisoned (NaN) before each launch (their SASS
is checked on the CPU: test_explicit_lowering.py). Run with
`pytest -m gpu tests/hopper/test_explicit_gpu.py` (scripts/gpu_explicit.sh)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

import tsir

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))

import hopper_ws_gemm as H  # noqa: E402  (examples/ on sys.path first)
import tilelang_ws_gemm as TL  # noqa: E402  (examples/ on sys.path first)

pytestmark = pytest.mark.gpu

SHAPES = [(512, 384, 512), (1000, 384, 520)]  # tile multiples; ragged M and K (TMA's zero fill)


@pytest.fixture(scope="module")
def torch() -> Any:
    torch = pytest.importorskip("torch")
    if torch.cuda.get_device_capability() != (9, 0):
        pytest.skip("needs a Hopper GPU (sm_90a)")
    # A wait that sees no progress for ~1 s traps (prints the barrier and parity): a protocol bug
    # is a failed test, not a hang.
    with tsir.knobs.override(nvrtc_options=("-DTSIR_MBARRIER_TIMEOUT_CYCLES=2000000000",)):
        yield torch


def _check(torch: Any, kernel: Any, m: int, n: int, k: int) -> None:
    g = torch.Generator(device="cuda").manual_seed(0)
    a = torch.randn(m, k, device="cuda", generator=g).half()
    b = torch.randn(k, n, device="cuda", generator=g).half()
    c = torch.full((m, n), float("nan"), device="cuda", dtype=torch.float16)
    kernel(a, b, c)
    torch.cuda.synchronize()
    assert not torch.isnan(c.float()).any(), "elements left unwritten (still NaN)"
    ref = a.float() @ b.float()
    err = ((c.float() - ref).abs().max() / ref.abs().max()).item()
    assert err <= 1e-2, f"relative error {err:.2e}"


BUILDERS = {
    "ws_gemm_barrier": H.ws_gemm_barrier,
    "ws_gemm_barrier_tma": lambda m, n, k: H.ws_gemm_barrier(m, n, k, tma=True),
    "ws_gemm_stages": lambda m, n, k: H.ws_gemm_stages(m, n, k, stages=3),
    "ws_gemm_split_n": H.ws_gemm_split_n,
    "ws_gemm_loops": lambda m, n, k: H.ws_gemm_loops(m, n, k, stages=3),
    "tilelang_copy_0_gemm_1": lambda m, n, k: TL.copy_0_gemm_1(m, n, k, 128, 128, 64),
    "tilelang_softpipe_stage2": lambda m, n, k: TL.copy_0_gemm_1(
        m, n, k, 128, 128, 64, num_stages=2
    ),
    "tilelang_copy_gemm_0_1": lambda m, n, k: TL.copy_gemm_0_1(m, n, k, 128, 128, 64),
}


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_matches_torch(torch: Any, name: str, shape: tuple[int, int, int]) -> None:
    kernel = tsir.compile(BUILDERS[name](*shape), target="cuda")
    assert kernel.target.arch == "sm_90a"
    _check(torch, kernel, *shape)


def test_tilelang_form_runs_through_compat_compile(torch: Any) -> None:
    """TileLang's calling convention: out_idx=[2] allocates and returns C."""
    from tsir.compat import tilelang

    k = tilelang.compile(TL.copy_0_gemm_1(512, 384, 512, 128, 128, 64), out_idx=[2])
    a = torch.randn(512, 512, device="cuda", dtype=torch.float16)
    b = torch.randn(512, 384, device="cuda", dtype=torch.float16)
    torch.testing.assert_close(k(a, b), a @ b, rtol=2e-2, atol=2e-2)


def test_tma_scale_matches_torch(torch: Any) -> None:
    kernel = tsir.compile(H.tma_scale(1000, 200), target="cuda")
    x = torch.randn(1000, 200, device="cuda")
    y = torch.full_like(x, float("nan"))
    kernel(x, y)
    torch.testing.assert_close(y, x * 2)
