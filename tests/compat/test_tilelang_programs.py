"""The ten TileLang example programs (our transcriptions, tilelang_programs.py) through
tsir.compat.tilelang: compiled with NVRTC here; run against torch on a GPU (marked gpu).
All ten compile; online softmax and flash attention are also checked at every pipeline stage
against the interpreter on small shapes."""

import numpy as np
import pytest
import tilelang_programs as P

import tsir.compat.tilelang as tilelang
from tsir.interpret import check_stages

COMPILES = {
    "elementwise_add": lambda: tilelang.compile(
        P.elementwise_add(512, 1024, 32, 32, "float32", "float32", 128), out_idx=-1
    ),
    "gemm": lambda: P.matmul.compile(M=1024, N=1024, K=1024, block_M=128, block_N=128, block_K=32),
    "gemm_splitk": lambda: P.matmul_splitk(1024, 1024, 1024, 128, 128, 32, 4),
    "gemv_naive": lambda: P.naive_gemv(1024, 1024, 128, 128),
    "gemv_splitk": lambda: P.splitk_gemv(1024, 1024, 32, 32, 32),
    "rms_norm": lambda: P.rms_norm(8192, 8192, 1),
    "topk": lambda: P.tl_topk(M=320, N=128, topk=6, blk_m=64),
    "convolution": lambda: tilelang.compile(
        P.convolution(128, 128, 64, 64, 128, 3, 1, 1, 1, 64, 128, 32, 3, 256), out_idx=[2]
    ),
    "online_softmax": lambda: P.softmax_kernel(8192, 8192),
    "flash_attention": lambda: P.flashattn(
        8, 32, 4096, 128, False, block_M=128, block_N=128, num_stages=1, threads=128
    ),
    "gqa_decode": lambda: tilelang.compile(
        P.gqa_decode(1, 32, 8, 8192, 128, 128, 64, 1, 2, 128), out_idx=[6]
    ),
}


@pytest.mark.parametrize("name", sorted(COMPILES))
def test_program_compiles(name, cpu_target):
    k = COMPILES[name]()
    assert k.kernel.cubin[:4] == b"\x7fELF"
    assert 'extern "C" __global__' in k.get_kernel_source()


def test_gemv_tvm_allreduce_variant_names_the_tvm_intrinsic():
    from tsir.compat.tilelang import language as T
    from tsir.compat.tilelang.missing import MissingFeature

    with pytest.raises(MissingFeature, match="TVM TIR intrinsic"):
        T.tvm_thread_allreduce


# -- every pipeline stage of the programs issue 12's ops completed, on small shapes ----------------


def _softmax(s):  # type: ignore[no-untyped-def]
    p = np.exp(s - s.max(-1, keepdims=True))
    return p / p.sum(-1, keepdims=True)


@pytest.mark.parametrize("is_causal", [False, True])
def test_flash_attention_at_every_stage(is_causal):
    func = P.flashattn.fn(
        1, 2, 128, 64, is_causal, block_M=64, block_N=64, num_stages=1, threads=128
    )
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, 128, 2, 64)).astype(np.float16) for _ in range(3))
    report = check_stages(func, [q, k, v, np.zeros_like(q)])
    assert report.ok, str(report)
    s = np.einsum("bqhd,bkhd->bhqk", q.astype(np.float64), k.astype(np.float64)) / 8.0
    if is_causal:
        s = np.where(np.tril(np.ones((128, 128), bool)), s, -np.inf)
    want = np.einsum("bhqk,bkhd->bqhd", _softmax(s), v.astype(np.float64))
    np.testing.assert_allclose(report.reference[3].astype(np.float64), want, atol=3e-3)


@pytest.mark.parametrize("num_split", [1, 2])
def test_gqa_decode_at_every_stage(num_split):
    batch, heads, groups, kv, dim = 1, 128, 2, 256, 64
    func = P.gqa_decode(batch, heads, groups, kv, dim, 64, 64, num_split, 2, 128)
    rng = np.random.default_rng(1)
    q = rng.standard_normal((batch, heads, dim)).astype(np.float16)
    k = rng.standard_normal((batch, kv, groups, dim)).astype(np.float16)
    v = rng.standard_normal((batch, kv, groups, dim)).astype(np.float16)
    mask = rng.integers(0, 2, (batch, kv, groups)).astype(np.uint8)
    mask[:, 0] = 1
    glse = np.zeros((batch, heads, num_split), np.float16)
    partial = np.zeros((batch, heads, num_split, dim), np.float16)
    report = check_stages(
        func, [q, k, v, mask, glse, partial, np.zeros((batch, heads, dim), np.float16)]
    )
    assert report.ok, str(report)
    g = heads // groups
    kd, vd = (np.repeat(a.astype(np.float64), g, axis=2) for a in (k, v))
    s = np.einsum("bhd,bkhd->bhk", q.astype(np.float64), kd) / np.sqrt(dim)
    s = np.where(np.repeat(mask, g, axis=2).transpose(0, 2, 1) != 0, s, -np.inf)
    want = np.einsum("bhk,bkhd->bhd", _softmax(s), vd)
    np.testing.assert_allclose(report.reference[6].astype(np.float64), want, atol=3e-3)


def test_ws_gemm_barrierpipe_stages_of_a_3d_buffer_at_every_stage(cpu_target):
    """TileLang's hand-pipelined warp-specialized GEMM: T.gemm on `A_shared[ko % 2, :, :]`
    (sm_90a: wgmma on a stage of the 3-D tiles), ragged M and K, and the NVRTC compile."""
    M, N, K = 130, 128, 200
    func = P.ws_gemm_barrierpipe(M, N, K, 128, 128, 64)
    rng = np.random.default_rng(2)
    a = rng.standard_normal((M, K)).astype(np.float16)
    b = rng.standard_normal((K, N)).astype(np.float16)
    report = check_stages(func, [a, b, np.full((M, N), np.nan, np.float16)], target="sm_90a")
    assert report.ok, str(report)
    want = a.astype(np.float32) @ b.astype(np.float32)
    np.testing.assert_allclose(report.reference[2].astype(np.float32), want, rtol=2e-2, atol=0.1)
    k = tilelang.compile(P.ws_gemm_barrierpipe(1024, 1024, 1024, 128, 128, 64), out_idx=[2])
    assert "wgmma_ss" in k.get_kernel_source()
