"""Flash attention forward from the tile program (examples/flash_attention_hopper.py) on sm_90a:
every stage of the pipeline agrees with the tile-level program in the interpreter with no detector
firing, and with a numpy reference (D = 64 and 128, causal and not, S not a multiple of the
tiles); both gemms run on wgmma (Q K^T shared x shared, P V with P in registers), K and V arrive by
TMA on an mbarrier ring filled by a producer warpgroup; and the CUDA compiles under NVRTC to HGMMA,
UTMALDG and setmaxnreg with no local memory (issue 11, deliverables 5 and 6 for attention; the GPU
run is tests/hopper/test_attention_gpu.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from sass_tools import count, opcodes, sass

import tsir

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))

from flash_attention_hopper import flash_attention_hopper  # noqa: E402  (examples/ on sys.path first)


def reference(q: np.ndarray, k: np.ndarray, v: np.ndarray, causal: bool) -> np.ndarray:
    s = np.einsum("bqd,bkd->bqk", q.astype(np.float64), k.astype(np.float64))
    s /= np.sqrt(q.shape[-1])
    if causal:
        n = q.shape[1]
        s = np.where(np.tril(np.ones((n, n), bool)), s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return np.einsum("bqk,bkd->bqd", p, v.astype(np.float64))


@pytest.mark.parametrize(
    "S, D, causal, bm, bn, overlap",
    [
        (200, 64, False, 128, 128, False),  # two consumer warpgroups; ragged: TMA zero-fills,
        (200, 128, True, 128, 64, False),  # the mask drops keys past S; 4 tiles on a ring of 2
        (192, 64, True, 64, 64, False),  # one consumer warpgroup
        (200, 64, True, 64, 64, True),  # S(j+1) and P(j) V(j) in flight together
    ],
)
def test_every_stage_agrees_with_the_tile_program_and_numpy(
    S: int, D: int, causal: bool, bm: int, bn: int, overlap: bool
) -> None:
    threads = 2 * bm if bm == 128 else 128
    func = flash_attention_hopper(1, S, D, causal, bm=bm, bn=bn, threads=threads, overlap=overlap)
    rng = np.random.default_rng(S + D)
    q, k, v = (rng.standard_normal((1, S, D)).astype(np.float16) for _ in range(3))
    lowered = tsir.lower(func, "sm_90a")
    assert not lowered.report, [str(d) for d in lowered.report]
    report = tsir.interpret.check_stages(lowered, [q, k, v, np.zeros_like(q)], target="sm_90a")
    report.raise_for_failure()
    np.testing.assert_allclose(
        report.reference[3].astype(np.float64), reference(q, k, v, causal), atol=3e-3
    )
    final = str(lowered["ThreadSync"])
    assert f"threads={threads + 128}" in final  # a producer warpgroup beside the consumers
    for call in (
        "wgmma_ss<tsir::kWgmmaF16, ",
        f"wgmma_rs<tsir::kWgmmaF16, {D}, 1>",
        "tma_load_3d",
        "mbarrier_arrive_expect_tx",
        "setmaxnreg_dec<40>",
        "wgmma_fence_operands_u32<",
    ):
        assert call in final, call
    assert "gemm_sm80" not in final and "cp_async" not in final
    # Overlapped: the softmax of S(j+1) starts with P(j) V(j) still pending.
    assert ("wgmma_wait<1>" in final) == overlap


# -- NVRTC and SASS --------------------------------------------------------------------------------


@pytest.mark.parametrize("D, causal, overlap", [(64, False, False), (128, True, True)])
def test_sass_is_the_hopper_path_without_local_memory(
    D: int, causal: bool, overlap: bool, tmp_path: Path
) -> None:
    """The benchmark's shapes (BH=32, S=4096): HGMMA for both gemms, TMA loads, the register
    rebalancing of warp specialization, and no local-memory traffic or stack."""
    func = flash_attention_hopper(32, 4096, D, causal, overlap=overlap)
    kernel = tsir.compile(func, target="sm_90a")
    ops = opcodes(sass(kernel.cubin, tmp_path))
    assert ops["HGMMA.64x128x16.F32"] > 0 and ops[f"HGMMA.64x{D}x16.F32"] > 0, ops
    assert count(ops, "UTMALDG") > 0
    assert count(ops, "USETMAXREG") == 2
    assert count(ops, "LDL") == 0 and count(ops, "STL") == 0
