"""A T.Pipelined loop on sm_90a whose extent is an expression (provably 1, provably 0, or symbolic
with blocks running 0, 1 or more iterations) lowers to the same warp-specialized TMA ring as the
equivalent literal, and every stage agrees with the tile-level program in the interpreter with
no detector firing (no mbarrier wait without its producer, no early read). The pass-level
structure is in tests/passes/test_pipeline_extents.py."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tsir
from tsir import T

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))

from flash_attention_hopper import flash_attention_hopper  # noqa: E402

Extent = Callable[[Any], Any]


def gemm(extent: Extent, blocks: int = 1, stages: int = 2, kb: int = 3) -> tsir.PrimFunc:
    """Block bx: C[:, bx tile] = A[:, :64 n] @ B[:64 n, bx tile], n = extent(bx) k-blocks of 64."""
    with T.prim_func("g") as f:
        A = T.param("A", (64, 64 * kb), "float16")
        B = T.param("B", (64 * kb, 64 * blocks), "float16")
        C = T.param("C", (64, 64 * blocks), "float16")
        with T.Kernel(blocks, threads=128) as bx:
            A_s = T.alloc_shared((64, 64), "float16")
            B_s = T.alloc_shared((64, 64), "float16")
            C_f = T.alloc_fragment((64, 64), "float32")
            T.clear(C_f)
            for ko in T.Pipelined(extent(bx), num_stages=stages):
                T.copy(A[0, ko * 64], A_s)
                T.copy(B[ko * 64, bx * 64], B_s)
                T.gemm(A_s, B_s, C_f)
            T.copy(C_f, C[0, bx * 64])
    return f.func


def _args(blocks: int, kb: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    a = rng.standard_normal((64, 64 * kb)).astype(np.float16)
    b = rng.standard_normal((64 * kb, 64 * blocks)).astype(np.float16)
    return [a, b, np.full((64, 64 * blocks), np.nan, np.float16)]


def _check(func: tsir.PrimFunc, args: list[np.ndarray]) -> tuple[tsir.Lowered, Any]:
    lowered = tsir.lower(func, "sm_90a")
    report = tsir.interpret.check_stages(lowered, args, target="sm_90a")
    report.raise_for_failure()
    return lowered, report


def test_the_reproducer_min_1_bx_plus_1_is_warp_specialized_and_correct() -> None:
    lowered, report = _check(gemm(lambda bx: T.min(1, bx + 1)), _args(1))
    assert not lowered.report, [str(d) for d in lowered.report]
    final = str(lowered["ThreadSync"])
    assert "threads=256" in final and "setmaxnreg_dec<40>" in final
    assert "mbar_full = T.alloc_buffer((1,)" in final  # a ring as deep as the loop: 1
    a, b, _ = _args(1)
    want = a[:, :64].astype(np.float32) @ b[:64].astype(np.float32)
    np.testing.assert_allclose(report.reference[2].astype(np.float32), want, rtol=2e-2, atol=2e-2)


def test_a_provably_empty_loop_runs_serially_and_leaves_the_accumulator_cleared() -> None:
    lowered, report = _check(gemm(lambda bx: T.min(0, bx)), _args(1))
    assert [d.message for d in lowered.report] == [
        "T.Pipelined(num_stages=2) over `ko` runs unpipelined: it runs no iteration (its "
        "extent is never above 0)"
    ]
    assert "mbar_full" not in str(lowered.module)  # no ring
    assert not report.reference[2].any()


@pytest.mark.parametrize("stages", [2, 3])
def test_blocks_running_0_1_2_and_3_iterations_share_one_warp_specialized_ring(
    stages: int,
) -> None:
    """n = min(bx, 3) over 4 blocks: the analyzer bounds it by 3, not by a constant, so the ring
    keeps its guarded prologue and in-loop produce steps; block 0's producer issues nothing and
    its consumers wait for nothing."""
    lowered, report = _check(gemm(lambda bx: T.min(bx, 3), blocks=4, stages=stages), _args(4))
    assert not lowered.report, [str(d) for d in lowered.report]
    final = str(lowered["ThreadSync"])
    assert "threads=256" in final and f"mbar_full = T.alloc_buffer(({stages},)" in final
    a, b, _ = _args(4)
    for bx in range(4):
        n = 64 * min(bx, 3)
        want = a[:, :n].astype(np.float32) @ b[:n, 64 * bx : 64 * bx + 64].astype(np.float32)
        got = report.reference[2][:, 64 * bx : 64 * bx + 64].astype(np.float32)
        np.testing.assert_allclose(got, want, rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("overlap", [False, True])
@pytest.mark.parametrize("bm, threads", [(64, 128), (128, 256)])
def test_causal_attention_with_one_key_tile_is_warp_specialized(
    bm: int, threads: int, overlap: bool
) -> None:
    """S <= bn: the causal extent `min(1, ceildiv((bx + 1) * bm, bn))` is provably 1."""
    S, D = 64, 64
    func = flash_attention_hopper(1, S, D, True, bm=bm, bn=128, threads=threads, overlap=overlap)
    rng = np.random.default_rng(S)
    q, k, v = (rng.standard_normal((1, S, D)).astype(np.float16) for _ in range(3))
    lowered, _ = _check(func, [q, k, v, np.zeros_like(q)])
    assert not lowered.report, [str(d) for d in lowered.report]
    assert f"threads={threads + 128}" in str(lowered["ThreadSync"])


@pytest.mark.gpu
@pytest.mark.parametrize(
    "blocks, stages, extent, trips",
    [
        (1, 2, lambda bx: T.min(1, bx + 1), [1]),
        (4, 2, lambda bx: T.min(bx, 3), [0, 1, 2, 3]),
        (4, 3, lambda bx: T.min(bx, 3), [0, 1, 2, 3]),
    ],
)
def test_on_the_gpu_blocks_of_0_1_and_more_iterations_finish_with_the_right_tiles(
    blocks: int, stages: int, extent: Extent, trips: list[int]
) -> None:
    """The warp-specialized kernels above on an H100: no block waits on an mbarrier nobody
    arrives on (the checked build traps after ~1 s without progress), every tile is right."""
    torch = pytest.importorskip("torch")
    if torch.cuda.get_device_capability() != (9, 0):
        pytest.skip("needs a Hopper GPU (sm_90a)")
    with tsir.knobs.override(nvrtc_options=("-DTSIR_MBARRIER_TIMEOUT_CYCLES=2000000000",)):
        kernel = tsir.compile(gemm(extent, blocks=blocks, stages=stages), target="cuda")
        assert "setmaxnreg" in kernel.cuda_source  # warp-specialized
        a, b, c = (torch.from_numpy(x).cuda() for x in _args(blocks))
        kernel(a, b, c)
        torch.cuda.synchronize()
    for bx, n in enumerate(trips):
        want = a[:, : 64 * n].float() @ b[: 64 * n, 64 * bx : 64 * bx + 64].float()
        got = c[:, 64 * bx : 64 * bx + 64].float()
        torch.testing.assert_close(got, want, rtol=2e-2, atol=2e-2)
