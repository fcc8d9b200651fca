"""TMA stores on the GPU (sm_90a), in the forms whose waits ThreadSync places: a pipelined copy
whose stages are refilled by TMA loads right after TMA stores read them (with and without warp
specialization), a tile stored twice into one tensor, and a tensor loaded by TMA and then stored
into. Exact results against torch (a copy is exact); outputs poisoned first. Run with
`pytest -m gpu tests/hopper/test_tma_store_gpu.py`."""

from __future__ import annotations

from typing import Any

import pytest
from tma_store_programs import pipelined_copy, stored_twice

import tsir

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def torch() -> Any:
    torch = pytest.importorskip("torch")
    if torch.cuda.get_device_capability() != (9, 0):
        pytest.skip("needs a Hopper GPU (sm_90a)")
    with tsir.knobs.override(nvrtc_options=("-DTSIR_MBARRIER_TIMEOUT_CYCLES=2000000000",)):
        yield torch


@pytest.mark.parametrize("warp_specialize", [False, True])
@pytest.mark.parametrize("stages", [2, 3])
def test_pipelined_copy_refills_each_stage_after_its_store(
    torch: Any, warp_specialize: bool, stages: int
) -> None:
    M, N = 4096, 128
    kernel = tsir.compile(pipelined_copy(M, N, 16, stages, warp_specialize, blocks=2), "cuda")
    src = kernel.cuda_source
    assert "tma_load_2d(" in src and "tma_store_2d(" in src
    x = torch.randn(M, N, device="cuda")
    y = torch.full_like(x, float("nan"))
    kernel(x, y)
    torch.cuda.synchronize()
    assert torch.equal(y, x)


def test_two_stores_into_one_tensor_land_in_program_order(torch: Any) -> None:
    M, N = 64, 128
    kernel = tsir.compile(stored_twice(M, N), target="cuda")
    x = torch.randn(M, N, device="cuda")
    y = torch.full_like(x, float("nan"))
    for _ in range(20):  # an order that holds by luck would show some of the time
        kernel(x, y)
        torch.cuda.synchronize()
        assert torch.equal(y, x * 2)
