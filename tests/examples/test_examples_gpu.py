"""The examples on a GPU, against torch, on random data with poisoned outputs and odd sizes."""

from __future__ import annotations

import pytest
from elementwise_2d import fused_exp_scale_bias
from transpose import transpose
from vector_add import vector_add

import tsir

pytestmark = pytest.mark.gpu
torch = pytest.importorskip("torch")


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("n", [1, 3, 1000, 4097, 1 << 20, (1 << 20) + 5])
def test_vector_add(dtype: str, n: int) -> None:
    kernel = tsir.compile(vector_add(dtype), target="cuda")
    tdt = getattr(torch, dtype)
    a = torch.randn(n, device="cuda").to(tdt)
    b = torch.randn(n, device="cuda").to(tdt)
    c = torch.full((n,), float("nan"), device="cuda", dtype=tdt)
    kernel(a, b, c)
    torch.cuda.synchronize()
    torch.testing.assert_close(c, a + b)


@pytest.mark.parametrize("M", [1, 5, 8, 1000, 4099])
def test_fused_exp_scale_bias(M: int) -> None:
    N = 1024
    kernel = tsir.compile(fused_exp_scale_bias(N), target="cuda")
    x = torch.randn(M, N, device="cuda")
    w = torch.randn(N, device="cuda")
    b = torch.randn(N, device="cuda")
    y = torch.full((M, N), float("nan"), device="cuda")
    kernel(x, w, b, y)
    ref = (torch.exp(x.double()) * w.double() + b.double()).float()
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-5)


def test_fused_exp_scale_bias_fp16_odd_width() -> None:
    N = 200  # not a multiple of the 256-wide tile: column guards
    kernel = tsir.compile(fused_exp_scale_bias(N, "float16"), target="cuda")
    x = torch.randn(33, N, device="cuda", dtype=torch.float16)
    w = torch.randn(N, device="cuda", dtype=torch.float16)
    b = torch.randn(N, device="cuda", dtype=torch.float16)
    y = torch.full((33, N), float("nan"), device="cuda", dtype=torch.float16)
    kernel(x, w, b, y)
    ref = (torch.exp(x.float()) * w.float() + b.float()).half()
    torch.testing.assert_close(y, ref, rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("M,N", [(4096, 4096), (1000, 4096), (77, 4096), (64, 128)])
def test_transpose_dynamic_rows(M: int, N: int) -> None:
    kernel = tsir.compile(transpose(N=N), target="cuda")
    a = torch.randn(M, N, device="cuda")
    b = torch.full((N, M), float("nan"), device="cuda")
    kernel(a, b)
    torch.testing.assert_close(b, a.t())


@pytest.mark.parametrize("S", [64, 1000, 2048])
def test_transpose_static(S: int) -> None:
    kernel = tsir.compile(transpose(M=S, N=S), target="cuda")
    a = torch.randn(S, S, device="cuda")
    b = torch.full((S, S), float("nan"), device="cuda")
    kernel(a, b)
    torch.testing.assert_close(b, a.t())


def test_wrong_shape_is_rejected_before_launch() -> None:
    kernel = tsir.compile(fused_exp_scale_bias(1024), target="cuda")
    x = torch.randn(4, 512, device="cuda")
    w = torch.randn(1024, device="cuda")
    with pytest.raises(tsir.LaunchError, match="X"):
        kernel(x, w, w, x)


def test_empty_rows_launch_nothing() -> None:
    kernel = tsir.compile(fused_exp_scale_bias(1024), target="cuda")
    x = torch.randn(0, 1024, device="cuda")
    w = torch.randn(1024, device="cuda")
    kernel(x, w, w, x.clone())
    torch.cuda.synchronize()


def test_vector_add_on_cupy_and_jax_arrays() -> None:
    """DLPack tensors from other frameworks: CuPy arrays and JAX arrays on the GPU."""
    import os

    import numpy as np

    kernel = tsir.compile(vector_add(), target="cuda")
    n = 10_001
    cupy = pytest.importorskip("cupy")
    a, b = cupy.random.rand(n, dtype=cupy.float32), cupy.random.rand(n, dtype=cupy.float32)
    c = cupy.full((n,), cupy.nan, dtype=cupy.float32)
    kernel(a, b, c)
    cupy.cuda.get_current_stream().synchronize()
    np.testing.assert_allclose(cupy.asnumpy(c), cupy.asnumpy(a + b), rtol=1e-6)

    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    if not any(d.platform == "gpu" for d in jax.devices()):
        pytest.skip("JAX sees no GPU")
    ka, kb = jax.random.split(jax.random.PRNGKey(0))
    x = jax.random.normal(ka, (n,), dtype=jnp.float32)
    y = jax.random.normal(kb, (n,), dtype=jnp.float32)
    out = jnp.full((n,), jnp.nan, dtype=jnp.float32)
    for arr in (x, y, out):
        arr.block_until_ready()
    kernel(x, y, out)
    torch.cuda.synchronize()
    np.testing.assert_allclose(np.asarray(out), np.asarray(x) + np.asarray(y), rtol=1e-6)
