"""Flash attention forward from the tile program (examples/flash_attention_hopper.py) on sm_90a:
every stage of the pipeline agrees with the tile-level program in the interpreter with no detector
firing, and with a numpy reference (D = 64 and 128, causal and not, S not a multiple of the
tiles); both gemms run on wgmma (Q K^T shared x shared, P V with P in registers), K and V arrive by
TMA on an mbarrier ring filled by a producer warpgroup; only the key tiles that cross the diagonal
or the sequence's end run the mask; causal blocks launch heaviest first; and the CUDA compiles under
NVRTC to HGMMA, UTMALDG and setmaxnreg with no local memory (issue 11, deliverables 5 and 6 for
attention; the GPU run is tests/hopper/test_attention_gpu.py)."""

from __future__ import annotations

import heapq
import itertools
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sass_tools import count, opcodes, sass

import tsir
from tsir.arith import Analyzer
from tsir.visitor import Visitor, substitute

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))

import flash_attention_hopper as example  # noqa: E402  (examples/ on sys.path first)
from flash_attention_hopper import flash_attention_hopper  # noqa: E402


def reference(q: np.ndarray, k: np.ndarray, v: np.ndarray, causal: bool) -> np.ndarray:
    s = np.einsum("bqd,bkd->bqk", q.astype(np.float64), k.astype(np.float64))
    s /= np.sqrt(q.shape[-1])
    if causal:
        n = q.shape[1]
        s = np.where(np.tril(np.ones((n, n), bool)), s, -np.inf)
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return np.einsum("bqk,bkd->bqd", p, v.astype(np.float64))


def threads_for(bm: int) -> int:
    return 2 * bm if bm == 128 else 128


def qkv(BH: int, S: int, D: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((BH, S, D)).astype(np.float16) for _ in range(3)]


@pytest.mark.parametrize(
    "S, D, causal, bm, bn, overlap, pingpong",
    [
        (200, 64, False, 128, 128, False, False),  # two consumer warpgroups; ragged: TMA
        (200, 128, True, 128, 64, False, False),  # zero-fills, the mask drops keys past S
        (192, 64, True, 64, 64, False, False),  # one consumer warpgroup
        (200, 64, True, 64, 64, True, False),  # S(j+1) and P(j) V(j) in flight together
        (256, 64, False, 128, 128, True, False),  # no tile masked; the last iteration: P V only
        (200, 64, True, 128, 64, True, True),  # the two warpgroups' gemms in turns (ping-pong)
        (256, 128, False, 128, 128, True, True),
    ],
)
def test_every_stage_agrees_with_the_tile_program_and_numpy(
    S: int, D: int, causal: bool, bm: int, bn: int, overlap: bool, pingpong: bool
) -> None:
    threads = threads_for(bm)
    func = flash_attention_hopper(
        1, S, D, causal, bm=bm, bn=bn, threads=threads, overlap=overlap, pingpong=pingpong
    )
    q, k, v = qkv(1, S, D, S + D)
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
    assert ("named_barrier_arrive" in str(lowered.module)) == pingpong  # InjectPingPong's turns


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("S", [64, 128, 192, 200])
def test_the_tile_program_matches_numpy(S: int, causal: bool, monkeypatch: Any) -> None:
    """Every tile shape (bm, bn in 64, 128), overlapped or not, D 64 and 128, at the tile level;
    causal with 4 heads launched in one group, one by one, and two by two (smaller waves)."""
    BH = 4 if causal else 2
    configs = itertools.product(((64, 64), (64, 128), (128, 64), (128, 128)), (False, True))
    for n, ((bm, bn), overlap) in enumerate(configs):
        D = (64, 128)[n % 2]
        qb = -(-S // bm)
        wave = (example.WAVE, 1, 2 * qb)[n % 3] if causal else example.WAVE
        monkeypatch.setattr(example, "WAVE", wave)
        func = flash_attention_hopper(
            BH, S, D, causal, bm=bm, bn=bn, threads=threads_for(bm), overlap=overlap
        )
        q, k, v = qkv(BH, S, D, S * D)
        o = np.zeros_like(q)
        tsir.interpret(func, q, k, v, o)
        err = np.abs(o.astype(np.float64) - reference(q, k, v, causal)).max()
        assert err < 3e-3, (bm, bn, overlap, D, wave, err)


# -- which key tiles run the mask ------------------------------------------------------------------


class _MaskGuards(Visitor):
    """For each store of the mask's select into S_f inside the key loop `k`: the conditions of the
    `if`s around it within the loop (negated in an else branch)."""

    def __init__(self) -> None:
        super().__init__()
        self.conds: list[Any] = []
        self.loop: Any = None
        self.guards: list[list[Any]] = []

    def visit_For(self, s: Any) -> None:
        if s.loop_var.name == "k":
            self.loop = s
        self.generic_visit(s)

    def visit_IfThenElse(self, s: Any) -> None:
        if self.loop is None:
            return self.generic_visit(s)
        self.conds.append(s.cond)
        self.visit(s.then_case)
        self.conds.pop()
        if s.else_case is not None:
            self.conds.append(tsir.Not(s.cond))
            self.visit(s.else_case)
            self.conds.pop()

    def visit_BufferStore(self, s: Any) -> None:
        if s.buffer.name == "S_f" and isinstance(s.value, tsir.Select) and self.loop is not None:
            self.guards.append(list(self.conds))


@pytest.mark.parametrize(
    "S, causal, bm, bn, overlap",
    [
        (4096, True, 128, 128, False),
        (4096, True, 128, 64, True),
        (1000, True, 64, 128, False),
        (1000, False, 128, 128, True),
        (4096, False, 128, 128, True),
    ],
)
def test_only_the_tiles_across_the_diagonal_or_the_end_run_the_mask(
    S: int, causal: bool, bm: int, bn: int, overlap: bool
) -> None:
    """In the lowered kernel, the mask's stores into S run, for each block and key iteration, under
    `if`s that hold exactly for the key tiles with a key past the sequence or (causal) past the
    block's first query: the last ceil(bm / bn) tiles of a causal block, the last tile of a ragged
    sequence, and (overlapped) the tile past the block's last one, which the last iteration
    scores; none when none of these exists."""
    BH, D = 4, 64
    func = flash_attention_hopper(
        BH, S, D, causal, bm=bm, bn=bn, threads=threads_for(bm), overlap=overlap
    )
    kernel = tsir.lower(func, "sm_90a")["ThreadSync"].body
    while not isinstance(kernel, tsir.KernelLaunch):
        kernel = kernel.body
    found = _MaskGuards()
    found.visit(kernel.body)
    if not causal and S % bn == 0 and not overlap:
        assert not found.guards
        return
    assert found.guards and found.loop is not None
    analyzer = Analyzer()
    qb = -(-S // bm)
    gx, gy = example.grid(BH, qb, causal)
    for b0, b1 in itertools.product(range(gx), range(gy)):
        bx, _ = example.block_of(b0, b1, BH, qb, causal)
        blocks = dict(zip(kernel.block_vars, (b0, b1)))
        extent = analyzer.simplify(substitute(found.loop.extent, blocks))
        for k in range(int(extent.value)):
            at = {**blocks, found.loop.loop_var: k}

            def holds(conds: list[Any]) -> bool:
                values = [analyzer.simplify(substitute(c, at)) for c in conds]
                assert all(isinstance(x, tsir.IntImm) for x in values), values
                return all(x.value for x in values)

            masked = any(holds(g) for g in found.guards)
            t = k + 1 if overlap else k
            partial = (t + 1) * bn > S or (causal and t * bn + bn - 1 > bx * bm)
            assert masked == (partial or t >= int(extent.value)), (b0, b1, k)


# -- launch order ----------------------------------------------------------------------------------


def makespan(work: list[int], machines: int) -> int:
    """Blocks started in launch order on the first free SM (list scheduling)."""
    free = [0] * machines
    for w in work:
        heapq.heapreplace(free, free[0] + w)
    return max(free)


@pytest.mark.parametrize(
    "BH, S, bm", [(32, 4096, 128), (16, 8192, 128), (6, 1000, 64), (1, 200, 64)]
)
def test_causal_blocks_launch_heaviest_first(BH: int, S: int, bm: int) -> None:
    """The causal grid covers every (query tile, head) once; within each group of heads the query
    tiles come last-first (the most key tiles first) and a group spans a wave of blocks, so on
    WAVE SMs the grid finishes close to the ideal time (list scheduling of the launch order), where
    the plain order leaves a tail."""
    qb = -(-S // bm)
    gx, gy = example.grid(BH, qb, True)
    order = [example.block_of(b0, b1, BH, qb, True) for b1 in range(gy) for b0 in range(gx)]
    assert sorted(order) == sorted(itertools.product(range(qb), range(BH)))
    for group in range(gy):
        tiles = [bx for bx, _ in order[group * gx : (group + 1) * gx]]
        assert tiles == sorted(tiles, reverse=True)
    g = example.heads_per_group(BH, qb)
    assert g * qb >= example.WAVE or g == BH
    work = [bx + 1 for bx, _ in order]  # key tiles of a block (bm = bn)
    ideal = max(-(-sum(work) // example.WAVE), max(work))
    assert makespan(work, example.WAVE) <= ideal * 1.02 + 1
    if BH == 32:  # the benchmark's shape: query tiles in order, heads one after another
        plain = [bx + 1 for _ in range(BH) for bx in range(qb)]
        assert makespan(plain, example.WAVE) > ideal * 1.1


# -- NVRTC and SASS --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "D, causal, overlap, pingpong",
    [(64, False, False, False), (64, True, False, False), (128, True, True, False),
     (128, False, True, True)],
)  # fmt: skip
def test_sass_is_the_hopper_path_without_local_memory(
    D: int, causal: bool, overlap: bool, pingpong: bool, tmp_path: Path
) -> None:
    """The benchmark's shapes (BH=32, S=4096): HGMMA for both gemms, TMA loads, the register
    rebalancing of warp specialization, and no local-memory traffic or stack."""
    func = flash_attention_hopper(32, 4096, D, causal, overlap=overlap, pingpong=pingpong)
    kernel = tsir.compile(func, target="sm_90a")
    ops = opcodes(sass(kernel.cubin, tmp_path))
    assert ops["HGMMA.64x128x16.F32"] > 0 and ops[f"HGMMA.64x{D}x16.F32"] > 0, ops
    assert count(ops, "UTMALDG") > 0
    assert count(ops, "USETMAXREG") == 2
    assert count(ops, "LDL") == 0 and count(ops, "STL") == 0
