"""GEMM, softmax, layer norm and column sum on a GPU against torch (random data, poisoned outputs)."""

from __future__ import annotations

import pytest
from gemm import matmul
from softmax import column_sum, layer_norm, softmax

import tsir

pytestmark = pytest.mark.gpu
torch = pytest.importorskip("torch")


def rel_err(out, ref):  # type: ignore[no-untyped-def]
    return ((out.double() - ref.double()).norm() / ref.double().norm()).item()


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize(
    "M,N,K", [(256, 256, 256), (4096, 4096, 4096), (1000, 1000, 1000), (77, 130, 64)]
)
def test_gemm(dtype: str, M: int, N: int, K: int) -> None:
    tdt = getattr(torch, dtype)
    k = tsir.compile(matmul(M, N, K, dtype=dtype), target="cuda")
    a = torch.randn(M, K, device="cuda", dtype=tdt)
    b = torch.randn(K, N, device="cuda", dtype=tdt)
    c = torch.full((M, N), float("nan"), device="cuda", dtype=tdt)
    k(a, b, c)
    assert rel_err(c, a.double() @ b.double()) < 1e-2


@pytest.mark.parametrize("M,N,K", [(4096, 4096, 4096), (1000, 1000, 1000), (77, 130, 64)])
def test_gemm_with_shared_memory_epilogue(M: int, N: int, K: int) -> None:
    k = tsir.compile(matmul(M, N, K, dtype="bfloat16", epilogue="smem", swizzle=16), target="cuda")
    a = torch.randn(M, K, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(K, N, device="cuda", dtype=torch.bfloat16)
    c = torch.full((M, N), float("nan"), device="cuda", dtype=torch.bfloat16)
    k(a, b, c)
    assert rel_err(c, a.double() @ b.double()) < 1e-2


@pytest.mark.parametrize("ta,tb", [(False, True), (True, False), (True, True)])
def test_gemm_transposed(ta: bool, tb: bool) -> None:
    M, N, K = 512, 384, 256
    k = tsir.compile(matmul(M, N, K, transpose_A=ta, transpose_B=tb), target="cuda")
    a = torch.randn(M, K, device="cuda", dtype=torch.float16)
    b = torch.randn(K, N, device="cuda", dtype=torch.float16)
    c = torch.full((M, N), float("nan"), device="cuda", dtype=torch.float16)
    k(a.t().contiguous() if ta else a, b.t().contiguous() if tb else b, c)
    assert rel_err(c, a.double() @ b.double()) < 1e-2


def test_gemm_dynamic_m_and_bias_relu() -> None:
    N, K = 256, 512
    k = tsir.compile(matmul(None, N, K, epilogue="bias_relu", out_dtype="float32"), target="cuda")
    for M in (1, 100, 1000):
        a = torch.randn(M, K, device="cuda", dtype=torch.float16)
        b = torch.randn(K, N, device="cuda", dtype=torch.float16)
        bias = torch.randn(N, device="cuda")
        c = torch.full((M, N), float("nan"), device="cuda")
        k(a, b, bias, c)
        ref = torch.relu(a.double() @ b.double() + bias.double())
        assert rel_err(c, ref) < 1e-2


@pytest.mark.parametrize("N,rows", [(4096, 1), (1024, 4), (512, 8)])
def test_softmax(N: int, rows: int) -> None:
    k = tsir.compile(softmax(N, rows), target="cuda")
    for M in (1, 37, 1000):
        x = torch.randn(M, N, device="cuda") * 3
        y = torch.full_like(x, float("nan"))
        k(x, y)
        torch.testing.assert_close(
            y, torch.softmax(x.double(), dim=1).float(), rtol=1e-4, atol=1e-6
        )


@pytest.mark.parametrize("N,rows", [(1024, 1), (4096, 2)])
def test_layer_norm(N: int, rows: int) -> None:
    k = tsir.compile(layer_norm(N, rows), target="cuda")
    M = 333
    x = torch.randn(M, N, device="cuda")
    w, b = torch.randn(N, device="cuda"), torch.randn(N, device="cuda")
    y = torch.full_like(x, float("nan"))
    k(x, w, b, y)
    ref = torch.nn.functional.layer_norm(x.double(), (N,), w.double(), b.double(), eps=1e-5).float()
    torch.testing.assert_close(y, ref, rtol=1e-4, atol=1e-4)


def test_column_sum() -> None:
    N = 1024
    k = tsir.compile(column_sum(N), target="cuda")
    for M in (1, 64, 1000):
        x = torch.randn(M, N, device="cuda")
        out = torch.full((N,), float("nan"), device="cuda")
        k(x, out)
        torch.testing.assert_close(out, x.double().sum(0).float(), rtol=1e-4, atol=1e-3)


def test_column_sum_with_atomics() -> None:
    from softmax import column_sum_atomic

    N = 1024
    k = tsir.compile(column_sum_atomic(N), target="cuda")
    for M in (1, 200, 4096):
        x = torch.randn(M, N, device="cuda")
        out = torch.zeros(N, device="cuda")
        k(x, out)
        torch.testing.assert_close(out, x.double().sum(0).float(), rtol=1e-4, atol=1e-3)


def test_prefix_sum_rows() -> None:
    from softmax import prefix_sum_rows

    N = 256
    k = tsir.compile(prefix_sum_rows(N), target="cuda")
    for M in (1, 100):
        x = torch.randn(M, N, device="cuda")
        y = torch.full_like(x, float("nan"))
        k(x, y)
        torch.testing.assert_close(y, torch.cumsum(x.double(), dim=1).float(), rtol=1e-4, atol=1e-3)


def test_reducers_sum_and_max() -> None:
    from softmax import tile_sum_and_max

    N, bm = 4096, 8
    k = tsir.compile(tile_sum_and_max(N, bm), target="cuda")
    for M in (8, 100):
        x = torch.randn(M, N, device="cuda")
        nb = -(-M // bm)
        out = torch.full((nb, 2), float("nan"), device="cuda")
        k(x, out)
        pad = torch.zeros(nb * bm, N, device="cuda", dtype=torch.float64)
        pad[:M] = x.double()
        tiles = pad.view(nb, bm * N)
        torch.testing.assert_close(out[:, 0].double(), tiles.sum(1), rtol=1e-4, atol=1e-2)
        # Rows past M read zeros (T.copy's out-of-bounds rule), so the max includes 0 there.
        torch.testing.assert_close(out[:, 1].double(), tiles.max(1).values)


@pytest.mark.parametrize("D", [64, 128])
@pytest.mark.parametrize("S", [1024, 1000])
def test_flash_attention(D: int, S: int) -> None:
    from flash_attention import flash_attention

    BH = 6
    k = tsir.compile(flash_attention(BH, S, D), target="cuda")
    q, kk, v = (torch.randn(BH, S, D, device="cuda", dtype=torch.float16) for _ in range(3))
    o = torch.full_like(q, float("nan"))
    k(q, kk, v, o)
    p = torch.softmax(q.double() @ kk.double().transpose(1, 2) / D**0.5, dim=-1)
    ref = p @ v.double()
    assert rel_err(o, ref) < 1e-2
