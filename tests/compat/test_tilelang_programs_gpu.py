"""The transcribed TileLang programs run through tsir.compat.tilelang and match torch (GPU)."""

import pytest

import tilelang_programs as P
import tsir.compat.tilelang as tilelang
from tsir.errors import UnsupportedError

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.gpu


def test_elementwise_add():
    k = tilelang.compile(P.elementwise_add(512, 1024, 32, 32, "float32", "float32", 128), out_idx=-1)
    a, b = torch.randn(512, 1024, device="cuda"), torch.randn(512, 1024, device="cuda")
    torch.testing.assert_close(k(a, b), a + b)


def test_gemm_direct_call_and_profiler():
    a = torch.randn(1024, 512, device="cuda", dtype=torch.float16)
    b = torch.randn(512, 768, device="cuda", dtype=torch.float16)
    c = P.matmul(a, b, 128, 128, 32)
    torch.testing.assert_close(c, a @ b, rtol=1e-2, atol=1e-2)
    k = P.matmul.compile(M=1024, N=768, K=512, block_M=128, block_N=128, block_K=32)
    prof = k.get_profiler()
    prof.assert_allclose(lambda x, y: x @ y, rtol=1e-2, atol=1e-2)
    assert prof.do_bench(warmup=5, rep=20) > 0
    try:
        assert prof.do_bench(warmup=5, rep=20, backend="cupti") > 0
    except UnsupportedError as e:  # a torch without CUPTI: the error must say so
        assert "CUPTI" in str(e)


def test_gemm_splitk():
    k = P.matmul_splitk(1024, 1024, 1024, 128, 128, 32, 4)
    a = torch.randn(1024, 1024, device="cuda").half()
    b = torch.randn(1024, 1024, device="cuda").half()
    c = torch.zeros(1024, 1024, device="cuda")
    k(a, b, c)
    torch.testing.assert_close(c, (a @ b).float(), rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("which", ["naive", "splitk"])
def test_gemv(which):
    k = P.naive_gemv(1024, 1024, 128, 128) if which == "naive" else P.splitk_gemv(1024, 1024, 32, 32, 32)
    k.get_profiler().assert_allclose(lambda x, y: x @ y.T, atol=1e-2, rtol=1e-2)


def test_rms_norm():
    k = P.rms_norm(1024, 1024, 1)
    k.get_profiler().assert_allclose(lambda x: x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-12), rtol=0.01, atol=0.01)


def test_topk():
    logits = torch.rand((320, 128), device="cuda")
    gates, idx = P.tl_topk(M=320, N=128, topk=6, blk_m=64)(logits)
    ref_g, ref_i = logits.topk(6, dim=1)
    torch.testing.assert_close(gates, ref_g)
    torch.testing.assert_close(idx, ref_i.to(torch.int32))


def test_autotune_over_a_config_space(tmp_path, monkeypatch):
    from tsir import knobs

    a = torch.randn(512, 256, device="cuda", dtype=torch.float16)
    b = torch.randn(256, 512, device="cuda", dtype=torch.float16)
    with knobs.override(cache_dir=tmp_path):
        r = tilelang.autotune(configs=[{"block_M": bm} for bm in (64, 128)], warmup=2, rep=5)(P.matmul)(a, b, block_N=128, block_K=32)
    torch.testing.assert_close(r, a @ b, rtol=1e-2, atol=1e-2)
