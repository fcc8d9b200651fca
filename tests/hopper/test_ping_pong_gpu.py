"""`T.Pipelined(..., pingpong=True)` on a Hopper GPU (sm_90a): flash attention (the overlapped
loop FlashAttention-3 pairs ping-pong with, and the plain one), causal and not, S ragged, D = 64
and 128, against torch SDPA; GEMMs (plain and persistent, several tiles per block) against
torch.matmul. Outputs are poisoned (NaN) before each launch; an mbarrier wait without progress
traps after ~1 s (named barriers have no timeout: a ping-pong protocol bug hangs the test, which
pytest's own timeout or CI's kills). The same programs without ping-pong are checked alongside,
so a failure names the switch. Run with

    python -m pytest -q -m gpu tests/hopper/test_ping_pong_gpu.py
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pingpong_programs import attention, gemm

import tsir

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def torch() -> Iterator[Any]:
    torch = pytest.importorskip("torch")
    if torch.cuda.get_device_capability() != (9, 0):
        pytest.skip("needs a Hopper GPU (sm_90a)")
    with tsir.knobs.override(nvrtc_options=("-DTSIR_MBARRIER_TIMEOUT_CYCLES=2000000000",)):
        yield torch


@pytest.mark.parametrize("pingpong", [True, False], ids=["pingpong", "plain"])
@pytest.mark.parametrize(
    "BH, S, D, causal, bn, stages, overlap",
    [
        (4, 256, 64, False, 128, 2, True),
        (3, 1000, 128, True, 128, 2, True),  # ragged: 1000 = 7 * 128 + 104
        (3, 777, 64, True, 64, 3, True),
        (8, 4096, 128, True, 128, 2, True),  # the benchmark's shape (fewer heads)
        (8, 4096, 64, False, 128, 2, True),
        (4, 256, 64, True, 64, 2, False),  # the turn holds the softmax (reported, correct)
        (3, 1000, 128, False, 128, 2, False),
    ],
)
def test_attention_matches_torch_sdpa(
    torch: Any,
    BH: int,
    S: int,
    D: int,
    causal: bool,
    bn: int,
    stages: int,
    overlap: bool,
    pingpong: bool,
) -> None:
    func = attention(
        BH, S, D, causal=causal, bn=bn, num_stages=stages, overlap=overlap, pingpong=pingpong
    )
    kernel = tsir.compile(func, target="cuda")
    assert kernel.target.arch == "sm_90a"
    assert ("named_barrier_arrive" in kernel.cuda_source) == pingpong
    g = torch.Generator(device="cuda").manual_seed(S + D)
    q, k, v = (
        torch.randn(BH, S, D, device="cuda", generator=g, dtype=torch.float16) for _ in "qkv"
    )
    for _ in range(3):  # several launches: a protocol that only sometimes fails
        o = torch.full_like(q, float("nan"))
        kernel(q, k, v, o)
        torch.cuda.synchronize()
        assert not torch.isnan(o).any(), "elements left unwritten (still NaN)"
    ref = torch.nn.functional.scaled_dot_product_attention(
        q[None].float(), k[None].float(), v[None].float(), is_causal=causal
    )[0]
    torch.testing.assert_close(o.float(), ref, rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize(
    "M, N, K, persistent",
    [
        (256, 256, 512, False),
        (1000, 1024, 4096, False),  # ragged M
        (4096, 4096, 1024, True),  # 32 x 32 tiles over 132 blocks: several tiles per block
        (2000, 4096, 640, True),
    ],
)
def test_gemm_matches_torch(torch: Any, M: int, N: int, K: int, persistent: bool) -> None:
    kernel = tsir.compile(gemm(M, N, K, persistent=persistent), target="cuda")
    assert "named_barrier_arrive" in kernel.cuda_source
    g = torch.Generator(device="cuda").manual_seed(M + N + K)
    a = torch.randn(M, K, device="cuda", generator=g, dtype=torch.float16)
    b = torch.randn(K, N, device="cuda", generator=g, dtype=torch.float16)
    c = torch.full((M, N), float("nan"), device="cuda", dtype=torch.float16)
    kernel(a, b, c)
    torch.cuda.synchronize()
    assert not torch.isnan(c).any(), "elements left unwritten (still NaN)"
    torch.testing.assert_close(c.float(), (a.float() @ b.float()), rtol=2e-2, atol=2e-1)
