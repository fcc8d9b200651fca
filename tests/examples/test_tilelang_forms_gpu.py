"""Issue 9's miscompile classes, run on a GPU against torch in the forms users write them."""

from __future__ import annotations

import pytest
from tilelang_forms import gemm_loop, gemm_scaled_a, histogram, layer_norm_rows, split_roles

import tsir

pytestmark = pytest.mark.gpu
torch = pytest.importorskip("torch")


def rel_err(out, ref):  # type: ignore[no-untyped-def]
    return ((out.double() - ref.double()).norm() / ref.double().norm()).item()


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("blk_m,threads", [(1, 256), (2, 256), (2, 96), (4, 128)])
@pytest.mark.parametrize("N,D", [(100, 512), (7, 1024)])
def test_layer_norm_rows(dtype: str, blk_m: int, threads: int, N: int, D: int) -> None:
    tdt = getattr(torch, dtype)
    k = tsir.compile(layer_norm_rows(N, D, blk_m, threads, dtype), target="cuda")
    x = torch.randn(N, D, device="cuda", dtype=tdt)
    g = torch.randn(D, device="cuda", dtype=tdt)
    b = torch.randn(D, device="cuda", dtype=tdt)
    y = torch.full_like(x, float("nan"))
    mean = torch.full((N,), float("nan"), device="cuda")
    rstd = torch.full((N,), float("nan"), device="cuda")
    k(x, g, b, y, mean, rstd)
    xf = x.double()
    ref_mean = xf.mean(-1)
    ref_rstd = torch.rsqrt(xf.var(-1, unbiased=False) + 1e-5)
    ref = torch.nn.functional.layer_norm(xf, (D,), g.double(), b.double(), eps=1e-5)
    assert rel_err(mean, ref_mean) < 1e-5
    assert rel_err(rstd, ref_rstd) < 1e-4
    assert rel_err(y, ref) < 1e-2


@pytest.mark.parametrize("num_stages", [None, 0, 1, 2, 3])
@pytest.mark.parametrize(
    "M,N,K,threads",
    [(512, 256, 512, 128), (200, 136, 100, 128), (5, 64, 48, 64), (130, 96, 64, 256)],
)
def test_gemm_in_unpipelined_and_pipelined_loops(
    num_stages: int | None, M: int, N: int, K: int, threads: int
) -> None:
    k = tsir.compile(gemm_loop(M, N, K, num_stages=num_stages, threads=threads), target="cuda")
    a = torch.randn(M, K, device="cuda", dtype=torch.float16)
    b = torch.randn(K, N, device="cuda", dtype=torch.float16)
    c = torch.full((M, N), float("nan"), device="cuda")
    k(a, b, c)
    assert rel_err(c, a.double() @ b.double()) < 1e-3


@pytest.mark.parametrize("M,N,K", [(256, 256, 256), (200, 136, 100)])
def test_shared_tile_written_by_parallel_then_gemm(M: int, N: int, K: int) -> None:
    k = tsir.compile(gemm_scaled_a(M, N, K), target="cuda")
    a = torch.randn(M, K, device="cuda", dtype=torch.float16)
    s = torch.rand(M, device="cuda") + 0.5
    b = torch.randn(K, N, device="cuda", dtype=torch.float16)
    c = torch.full((M, N), float("nan"), device="cuda")
    k(a, s, b, c)
    scaled = (a.float() * s[:, None]).half().double()
    assert rel_err(c, scaled @ b.double()) < 1e-3


@pytest.mark.parametrize("n,bins", [(100000, 64), (4095, 32), (1, 64)])
def test_shared_histogram(n: int, bins: int) -> None:
    k = tsir.compile(histogram(n, bins), target="cuda")
    x = torch.randint(0, 1 << 20, (n,), device="cuda", dtype=torch.int32)
    h = torch.zeros(bins, device="cuda", dtype=torch.int32)
    k(x, h)
    ref = torch.bincount((x % bins).long(), minlength=bins).to(torch.int32)
    assert torch.equal(h, ref)


@pytest.mark.parametrize("threads", [64, 256])
def test_tile_ops_in_thread_ranges(threads: int) -> None:
    n = 256
    k = tsir.compile(split_roles(n, threads), target="cuda")
    x = torch.randn(n, device="cuda")
    y = torch.full_like(x, float("nan"))
    z = torch.full_like(x, float("nan"))
    k(x, y, z)
    assert torch.equal(y, x.flip(0) + 1.0)
    assert torch.equal(z, torch.full_like(x, 7.0))
