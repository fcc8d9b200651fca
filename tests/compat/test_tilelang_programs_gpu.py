"""The transcribed TileLang programs run through tsir.compat.tilelang and match torch (GPU)."""

import pytest
import tilelang_programs as P

import tsir.compat.tilelang as tilelang
from tsir.errors import UnsupportedError

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.gpu


def test_elementwise_add():
    k = tilelang.compile(
        P.elementwise_add(512, 1024, 32, 32, "float32", "float32", 128), out_idx=-1
    )
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
    k = (
        P.naive_gemv(1024, 1024, 128, 128)
        if which == "naive"
        else P.splitk_gemv(1024, 1024, 32, 32, 32)
    )
    k.get_profiler().assert_allclose(lambda x, y: x @ y.T, atol=1e-2, rtol=1e-2)


def test_rms_norm():
    k = P.rms_norm(1024, 1024, 1)
    k.get_profiler().assert_allclose(
        lambda x: x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-12), rtol=0.01, atol=0.01
    )


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
        r = tilelang.autotune(configs=[{"block_M": bm} for bm in (64, 128)], warmup=2, rep=5)(
            P.matmul
        )(a, b, block_N=128, block_K=32)
    torch.testing.assert_close(r, a @ b, rtol=1e-2, atol=1e-2)


def test_convolution():
    """examples/convolution/example_convolution.py's main(): views of the filter and output, a
    T.Parallel im2col, against torch.conv2d."""
    N, C, H, W, F, K, S, D, Pd = 128, 128, 64, 64, 128, 3, 1, 1, 1
    k = tilelang.compile(
        P.convolution(N, C, H, W, F, K, S, D, Pd, 64, 128, 32, 3, 256), out_idx=[2]
    )
    a = torch.randn(N, H, W, C).cuda().half()
    b = torch.randn(K, K, C, F).cuda().half()
    ref = torch.conv2d(
        a.permute(0, 3, 1, 2), b.permute(3, 2, 0, 1), stride=S, padding=Pd, dilation=D
    ).permute(0, 2, 3, 1)
    torch.testing.assert_close(k(a, b), ref, rtol=1e-2, atol=1e-2)


def _attention_ref(q, k, v, is_causal):
    scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / q.size(-1) ** 0.5
    if is_causal:
        n = q.size(1)
        scores = scores.masked_fill(
            torch.tril(torch.ones(n, n, device=q.device)) == 0, float("-inf")
        )
    return torch.einsum("bhqk,bkhd->bqhd", torch.softmax(scores.float(), dim=-1).to(q.dtype), v)


@pytest.mark.parametrize("is_causal", [False, True])
def test_flash_attention(is_causal):
    """examples/flash_attention/example_mha_fwd_bshd.py with main()'s tiles (smaller batch and
    sequence): P = softmax(S) multiplies V from the registers of S's accumulator (gemm_rs)."""
    k = P.flashattn(2, 8, 1024, 128, is_causal, block_M=128, block_N=128, num_stages=1, threads=128)
    assert "gemm_rs" in k.get_kernel_source()
    k.get_profiler().assert_allclose(
        lambda q, kk, v: _attention_ref(q, kk, v, is_causal), rtol=0.01, atol=0.01
    )


def _gqa_ref(q, k, v, mask):
    heads, groups = q.size(1), k.size(2)
    k_full = k.repeat_interleave(heads // groups, dim=2).float()
    v_full = v.repeat_interleave(heads // groups, dim=2).float()
    m_full = mask.repeat_interleave(heads // groups, dim=2)
    scores = torch.einsum("bhd,bshd->bhs", q.float(), k_full)
    scores = scores.masked_fill(m_full.permute(0, 2, 1) == 0, float("-inf"))
    p = torch.softmax(scores / q.size(-1) ** 0.5, dim=-1)
    return torch.einsum("bhs,bshd->bhd", p, v_full).half()


@pytest.mark.parametrize("num_split", [1, 16])
def test_gqa_decode(num_split):
    """examples/flash_decoding/example_gqa_decode.py with main()'s configuration (num_split=16:
    the split kernel and the combine kernel with its T.Fragment annotations) and without split."""
    batch, heads, groups, kv_seqlen, dim = 1, 32, 8, 8192, 128
    k = tilelang.compile(
        P.gqa_decode(batch, heads, groups, kv_seqlen, dim, 128, 64, num_split, 2, 128), out_idx=[6]
    )
    q = torch.randn(batch, heads, dim, device="cuda", dtype=torch.float16)
    kk = torch.randn(batch, kv_seqlen, groups, dim, device="cuda", dtype=torch.float16)
    v = torch.randn(batch, kv_seqlen, groups, dim, device="cuda", dtype=torch.float16)
    mask = torch.randint(0, 2, (batch, kv_seqlen, groups), device="cuda", dtype=torch.uint8)
    glse = torch.empty(batch, heads, num_split, device="cuda", dtype=torch.float16)
    partial = torch.empty(batch, heads, num_split, dim, device="cuda", dtype=torch.float16)
    o = k(q, kk, v, mask, glse, partial)
    torch.testing.assert_close(o, _gqa_ref(q, kk, v, mask), rtol=0.01, atol=0.01)


@pytest.mark.parametrize(("M", "N"), [(8192, 8192), (256, 1000)])
def test_online_softmax(M, N):
    """examples/online_softmax/online_softmax.py, unchanged: float16 max with float32 lse, which
    TileLang's promotion computes in float32 (tsir/compat/tilelang/promotion.py)."""
    k = P.softmax_kernel(M, N)
    x = torch.randn(M, N, device="cuda", dtype=torch.float16)
    y = k(x)
    torch.testing.assert_close(y, torch.softmax(x.float(), dim=-1).half(), rtol=1e-2, atol=1e-2)


def test_ws_gemm_barrierpipe_stage2():
    """T.gemm on stages of 3-D shared tiles, explicit warp roles and mbarriers (sm_90a)."""
    if torch.cuda.get_device_capability() != (9, 0):
        pytest.skip("needs a Hopper GPU (sm_90a): T.ws")
    k = tilelang.compile(P.ws_gemm_barrierpipe(1000, 384, 520, 128, 128, 64), out_idx=[2])
    a = torch.randn(1000, 520, device="cuda", dtype=torch.float16)
    b = torch.randn(520, 384, device="cuda", dtype=torch.float16)
    torch.testing.assert_close(k(a, b), a @ b, rtol=2e-2, atol=2e-2)
