"""The staged-operand GEMMs of staged_gemm_programs.py (`T.gemm(A_s[ko % stages, :, :], ...)`)
compiled for the GPU present against torch, outputs poisoned (NaN) before each launch: mma.sync
on any sm_80+ GPU, wgmma SS / RS and the TMA ring on a Hopper GPU (their stages are checked in the
interpreter and their SASS on the CPU: test_gemm_staged.py). Run with
`pytest -m gpu tests/tileop/test_gemm_staged_gpu.py`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import staged_gemm_programs as P

import tsir

pytestmark = pytest.mark.gpu

SHAPES = [(512, 384, 512), (1000, 264, 520)]  # tile multiples; ragged M, N and K


@pytest.fixture(scope="module")
def torch() -> Any:
    torch = pytest.importorskip("torch")
    # A wait that sees no progress for ~1 s traps: a protocol bug is a failed test, not a hang.
    with tsir.knobs.override(nvrtc_options=("-DTSIR_MBARRIER_TIMEOUT_CYCLES=2000000000",)):
        yield torch


def _hopper(torch: Any) -> None:
    if torch.cuda.get_device_capability() != (9, 0):
        pytest.skip("needs a Hopper GPU (sm_90a)")


def _check(torch: Any, kernel: Any, m: int, n: int, k: int, dtype: str, tb: bool = False) -> None:
    g = torch.Generator(device="cuda").manual_seed(0)
    dt = getattr(torch, dtype)
    a = torch.randn(m, k, device="cuda", generator=g).to(dt)
    b = torch.randn(n, k, device="cuda", generator=g).to(dt) if tb else None
    if b is None:
        b = torch.randn(k, n, device="cuda", generator=g).to(dt)
    c = torch.full((m, n), float("nan"), device="cuda", dtype=dt)
    kernel(a, b, c)
    torch.cuda.synchronize()
    assert not torch.isnan(c.float()).any(), "elements left unwritten (still NaN)"
    ref = a.float() @ (b.float().T if tb else b.float())
    err = ((c.float() - ref).abs().max() / ref.abs().max()).item()
    assert err <= 2e-2, f"relative error {err:.2e}"


HAND: dict[str, Callable[..., tsir.PrimFunc]] = {
    "s2_t128_fp16": lambda m, n, k, p: P.hand_pipelined(m, n, k, 128, 128, 32, 2, 128, policy=p),
    "s3_t256_bf16": lambda m, n, k, p: P.hand_pipelined(
        m, n, k, 128, 128, 64, 3, 256, dtype="bfloat16", policy=p
    ),
    "s3_t128_transpose_B": lambda m, n, k, p: P.hand_pipelined(
        m, n, k, 128, 64, 32, 3, 128, transpose_B=True, policy=p
    ),
}


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("policy", ["mma", "square"])
@pytest.mark.parametrize("name", sorted(HAND))
def test_hand_pipelined_matches_torch(
    torch: Any, name: str, policy: str, shape: tuple[int, int, int]
) -> None:
    """policy "mma": mma.sync (any sm_80+ GPU); "square": the GPU's choice (wgmma on sm_90a)."""
    kernel = tsir.compile(HAND[name](*shape, policy), target="cuda")
    _check(torch, kernel, *shape, "bfloat16" if "bf16" in name else "float16", "transpose" in name)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name", ["tma_ring", "register_a"])
def test_hopper_forms_match_torch(torch: Any, name: str, shape: tuple[int, int, int]) -> None:
    _hopper(torch)
    func = (
        P.tma_ring(*shape, stages=3)
        if name == "tma_ring"
        else P.register_a(*shape, bm=64, bn=128, bk=32)
    )
    kernel = tsir.compile(func, target="sm_90a")
    _check(torch, kernel, *shape, "float16")
