"""The flash attention tile program (examples/flash_attention_hopper.py) compiled for the GPU
present (sm_90a: wgmma for Q K^T and for P V with P in registers, K/V by TMA on an mbarrier ring,
a producer warpgroup) against torch SDPA: D = 64 and 128, causal and not, S not a multiple of the
tiles, one and two consumer warpgroups, masks only on the tiles across the diagonal or the end,
causal blocks heaviest first (one head or several per group), and the fast-math modes. Outputs are
poisoned (NaN) before each launch. Run with `pytest -m gpu tests/hopper/test_attention_gpu.py`
(scripts/gpu_attention.sh)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

import tsir

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))

from flash_attention_hopper import flash_attention_hopper  # noqa: E402  (examples/ on sys.path first)

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def torch() -> Any:
    torch = pytest.importorskip("torch")
    if torch.cuda.get_device_capability() != (9, 0):
        pytest.skip("needs a Hopper GPU (sm_90a)")
    # An mbarrier wait that sees no progress for ~1 s traps: a protocol bug fails, never hangs.
    with tsir.knobs.override(nvrtc_options=("-DTSIR_MBARRIER_TIMEOUT_CYCLES=2000000000",)):
        yield torch


@pytest.mark.parametrize(
    "BH, S, D, causal, bm, bn, stages, overlap, pingpong",
    [
        (4, 256, 64, False, 128, 128, 2, False, False),
        (4, 256, 64, True, 128, 64, 3, False, False),
        (3, 1000, 128, False, 128, 128, 2, False, False),  # ragged: 1000 = 7 * 128 + 104
        (3, 1000, 128, True, 128, 64, 2, False, False),
        (2, 777, 64, True, 64, 128, 2, False, False),  # one consumer warpgroup, ragged
        (8, 4096, 128, True, 128, 128, 2, False, False),  # the benchmark's shape (fewer heads)
        (8, 4096, 64, False, 128, 128, 2, False, False),
        (4, 256, 64, False, 128, 128, 2, True, False),  # S(j+1) overlapping P(j) V(j)
        (3, 1000, 128, True, 128, 128, 2, True, False),
        (2, 777, 64, True, 64, 64, 3, True, False),
        (8, 4096, 128, False, 128, 128, 2, True, False),
        (16, 4096, 64, True, 128, 128, 2, True, False),  # heaviest first, heads in two groups of 8
        # 133 query tiles: one head per group; ragged
        (1, 17000, 64, True, 128, 128, 2, True, False),
        (
            2,
            777,
            64,
            False,
            64,
            128,
            2,
            True,
            False,
        ),  # ragged, not causal: only the last tile masked
        (3, 1000, 128, True, 128, 64, 3, True, False),  # two diagonal tiles per block
        (2, 100, 64, True, 128, 128, 2, False, False),  # one partial key tile
        (2, 64, 128, True, 64, 64, 2, True, False),  # one tile, overlapped: the loop only adds P V
        (3, 1000, 128, True, 128, 128, 2, True, True),  # ping-pong of the two warpgroups
        (8, 4096, 128, False, 128, 128, 2, True, True),
        (4, 777, 64, False, 128, 64, 3, True, True),
        (2, 64, 64, True, 128, 128, 2, True, True),  # one tile: the loop's turns add P V only
    ],
)
def test_matches_torch_sdpa(
    torch: Any,
    BH: int,
    S: int,
    D: int,
    causal: bool,
    bm: int,
    bn: int,
    stages: int,
    overlap: bool,
    pingpong: bool,
) -> None:
    threads = 2 * bm if bm == 128 else 128
    func = flash_attention_hopper(
        BH, S, D, causal, bm=bm, bn=bn, threads=threads, num_stages=stages, overlap=overlap,
        pingpong=pingpong,
    )  # fmt: skip
    kernel = tsir.compile(func, target="cuda")
    assert kernel.target.arch == "sm_90a"
    g = torch.Generator(device="cuda").manual_seed(S + D)
    q, k, v = (
        torch.randn(BH, S, D, device="cuda", generator=g, dtype=torch.float16) for _ in "qkv"
    )
    o = torch.full_like(q, float("nan"))
    kernel(q, k, v, o)
    torch.cuda.synchronize()
    assert not torch.isnan(o).any(), "elements left unwritten (still NaN)"
    ref = torch.nn.functional.scaled_dot_product_attention(
        q[None].float(), k[None].float(), v[None].float(), is_causal=causal
    )[0]
    torch.testing.assert_close(o.float(), ref, rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("fast_math", ["ftz", True])
@pytest.mark.parametrize("causal", [False, True])
def test_fast_math_stays_within_tolerance(torch: Any, causal: bool, fast_math: bool | str) -> None:
    """The function's fast-math mode (the benchmark's fastest variants): "ftz" (exp2 as one
    ex2.approx.ftz, division exact) and True (NVRTC --use_fast_math)."""
    func = flash_attention_hopper(4, 1000, 128, causal, overlap=True, fast_math=fast_math)
    kernel = tsir.compile(func, target="cuda")
    g = torch.Generator(device="cuda").manual_seed(3)
    q, k, v = (
        torch.randn(4, 1000, 128, device="cuda", generator=g, dtype=torch.float16) for _ in "qkv"
    )
    o = torch.full_like(q, float("nan"))
    kernel(q, k, v, o)
    ref = torch.nn.functional.scaled_dot_product_attention(
        q[None].float(), k[None].float(), v[None].float(), is_causal=causal
    )[0]
    torch.testing.assert_close(o.float(), ref, rtol=1e-2, atol=1e-2)
