"""`T.Pipelined(..., pingpong=True)` on sm_90a (issue 11): the two consumer warpgroups of a
warp-specialized loop take turns issuing their wgmma, ordered by two named barriers
(passes/inject_ping_pong.py).

- The protocol: every interleaving of a model of the two warpgroups' barrier operations
  (bar.arrive counts and goes on, bar.sync waits, a generation completes with 256 threads) has
  the turns strictly alternating, never two at once, no generation overrun, no deadlock, and
  nothing pending at the end, for any trip count and across the tiles of a persistent kernel;
  the placements the pass avoids fail in the model.
- The switch: malformed or contradictory values raise at the user's line; where the loop cannot
  take turns (another target, one consumer warpgroup, no warp specialization) the report that
  TSIR_EXPLAIN=1 prints says why.
- The lowered programs (attention with the intra-warpgroup overlap and without, causal, ragged S;
  a GEMM; a persistent GEMM walking several tiles per block) agree with the tile-level program
  at every stage in the interpreter (no race, deadlock or barrier misuse), and compute exactly
  what the same program without ping-pong computes.
- NVRTC and SASS: each loop iteration's HGMMAs sit between a BAR.SYNC and a BAR.ARV of 256
  threads. The GPU run is tests/hopper/test_ping_pong_gpu.py.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
from pingpong_programs import attention, attention_reference, gemm
from sass_tools import sass

import tsir
from tsir import T
from tsir.errors import BuildError
from tsir.printer import print_func, rebuild

# -- the protocol, over every interleaving ---------------------------------------------------------

Op = tuple[str, int]


def protocol(tiles: list[int], placement: str = "kernel") -> tuple[list[Op], list[Op]]:
    """W0's and W1's operations on barriers 0 (B0) and 1 (B1): `tiles` loops of the given trip
    counts (a persistent kernel runs several), each iteration a turn (`sync own; begin; end;
    arrive other`). `placement`: where W1's first arrival and W0's last sync go ("kernel": around
    everything, as InjectPingPong does; "tile": around each tile's loop; "none": left out)."""
    out: list[list[Op]] = []
    for w in (0, 1):
        ops: list[Op] = []
        if placement == "kernel" and w == 1:
            ops.append(("arrive", 0))
        for n in tiles:
            if placement == "tile" and w == 1:
                ops.append(("arrive", 0))
            for _ in range(n):
                ops += [("sync", w), ("begin", w), ("end", w), ("arrive", 1 - w)]
            if placement == "tile" and w == 0:
                ops.append(("sync", 0))
        if placement == "kernel" and w == 0:
            ops.append(("sync", 0))
        out.append(ops)
    return out[0], out[1]


def explore(programs: tuple[list[Op], list[Op]]) -> tuple[set[str], int]:
    """Every interleaving (depth-first over states): the problems found and the states seen.
    State: each warpgroup's position and what it waits for, each barrier's arrivals in its current
    generation and its generation count, who is in a turn and who took the last one."""
    problems: set[str] = set()
    start = ((0, 0), (None, None), (frozenset(), frozenset()), (0, 0), None, 1)
    seen = {start}
    stack = [start]
    while stack:
        pcs, waits, arrived, gens, inside, last = stack.pop()
        moves = []
        for w in (0, 1):
            if waits[w] is not None:
                b, g = waits[w]
                if gens[b] > g:  # its generation completed: the sync returns
                    moves.append((w, None))
                continue
            if pcs[w] < len(programs[w]):
                moves.append((w, programs[w][pcs[w]]))
        if not moves:
            if any(pcs[w] < len(programs[w]) or waits[w] is not None for w in (0, 1)):
                problems.add("deadlock")
            elif any(arrived):
                problems.add("pending arrivals at the end")
            continue
        for w, op in moves:
            p, wt, ar, gn = list(pcs), list(waits), list(arrived), list(gens)
            ins, lst = inside, last
            if op is None:
                wt[w] = None
                p[w] += 1
            elif op[0] in ("arrive", "sync"):
                b = op[1]
                if w in ar[b]:
                    problems.add("generation overrun")
                    continue
                ar[b] = ar[b] | {w}
                if op[0] == "sync":
                    wt[w] = (b, gn[b])
                else:
                    p[w] += 1
                if len(ar[b]) == 2:  # 256 threads: the generation completes
                    ar[b], gn[b] = frozenset(), gn[b] + 1
            elif op[0] == "begin":
                if ins is not None:
                    problems.add("two turns at once")
                if lst == w:
                    problems.add("a warpgroup took two turns in a row")
                ins, lst = w, w
                p[w] += 1
            else:
                ins = None
                p[w] += 1
            state = (tuple(p), tuple(wt), tuple(ar), tuple(gn), ins, lst)
            if state not in seen:
                seen.add(state)
                stack.append(state)  # type: ignore[arg-type]
    return problems, len(seen)


@pytest.mark.parametrize("tiles", [[0], [1], [5], [2, 0, 3]])
def test_turns_alternate_and_the_barriers_balance_in_every_interleaving(tiles: list[int]) -> None:
    problems, states = explore(protocol(tiles))
    assert problems == set()
    assert states > sum(tiles)


def test_a_first_arrival_and_last_sync_per_tile_would_overrun_a_generation() -> None:
    """W1 may finish tile t and arrive for tile t + 1 before W0's last sync of tile t: its two
    arrivals would complete B0 without W0. Hence the pass puts them around the tile loop."""
    problems, _ = explore(protocol([1, 1], placement="tile"))
    assert "generation overrun" in problems


def test_without_the_first_arrival_and_last_sync_the_protocol_deadlocks() -> None:
    problems, _ = explore(protocol([2], placement="none"))
    assert "deadlock" in problems


# -- the switch and the report ---------------------------------------------------------------------


def _loop(**kw: object) -> None:
    with T.prim_func("f"):
        A = T.param("A", (64,), "float32")
        with T.Kernel(1, threads=256):
            for k in T.Pipelined(4, **kw):  # type: ignore[arg-type]
                A[k] = 1.0


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(num_stages=2, pingpong=1), "T.Pipelined pingpong must be True or False, got 1"),
        (dict(num_stages=0, pingpong=True), "pingpong=True needs num_stages >= 2 (got 0)"),
        (
            dict(num_stages=3, pingpong=True, warp_specialize=False),
            "pingpong=True contradicts warp_specialize=False",
        ),
        (dict(num_stages=3, pingpong=True, tma=False), "pingpong=True contradicts tma=False"),
    ],
)
def test_malformed_or_contradictory_requests_raise_at_the_users_line(
    kw: dict, message: str
) -> None:
    with pytest.raises(BuildError) as e:
        _loop(**kw)
    assert message in str(e.value)
    assert e.value.loc is not None and e.value.loc.filename.endswith("test_ping_pong.py")


@pytest.mark.parametrize(
    "kw",
    [
        dict(num_stages=3, pingpong=True),
        dict(num_stages=3, pingpong=True, tma=True, order=[0, 1], stage=[0, 1]),
        dict(num_stages=2, warp_specialize=False, order=[0, 1], stage=[0, 1]),  # (no pingpong)
    ],
)
def test_the_printer_round_trips_the_switch(kw: dict) -> None:
    """With a hand-written schedule too (the printer compared T.Pipelined's keywords in the
    builder's order, and printed an `annotations=` that T.Pipelined does not take)."""
    with T.prim_func("f") as f:
        A = T.param("A", (64,), "float32")
        with T.Kernel(1, threads=256):
            for k in T.Pipelined(4, **kw):
                A[k] = 1.0
    text = print_func(f.func)
    assert "annotations=" not in text
    tsir.assert_structural_equal(rebuild(text), f.func)


def test_the_ring_carries_the_request_to_warp_specialize() -> None:
    """(InjectSoftwarePipeline's output, which prints and rebuilds.)"""
    ring = tsir.lower(gemm(128, 128, 128), "sm_90a")["InjectSoftwarePipeline"]
    assert '"mbarrier_ring", (mbar_full, mbar_empty, 2, True, True)' in print_func(ring)
    tsir.assert_structural_equal(rebuild(print_func(ring)), ring)


def _report(func: tsir.PrimFunc, target: str) -> list[str]:
    return [
        d.message
        for d in tsir.lower(func, target).report
        if "T.Pipelined(pingpong=True)" in d.message
    ]


def test_where_the_loop_cannot_take_turns_the_report_says_why() -> None:
    (line,) = _report(gemm(128, 128, 128), "sm_80")
    assert line.startswith("T.Pipelined(pingpong=True) over `ko` is not applied: the loop is not")
    (line,) = _report(gemm(128, 128, 128, threads=128), "sm_90a")  # one consumer warpgroup
    assert line == (
        "T.Pipelined(pingpong=True) over `ko` is not applied: ping-pong needs two consumer "
        "warpgroups to take turns, the kernel has 1 (128 threads)"
    )


def test_a_kernel_that_is_not_warp_specialized_says_so() -> None:
    """mma.sync's header reads threadIdx itself: such a kernel is not split, so nobody takes
    turns."""
    assert _report(gemm(128, 128, 128, policy="mma"), "sm_90a") == [
        "T.Pipelined(pingpong=True) is not applied: ping-pong needs the producer warpgroup of "
        "warp specialization (see the report above)"
    ]


# -- every stage in the interpreter ----------------------------------------------------------------


def _qkv(S: int, D: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    q, k, v = (rng.standard_normal((1, S, D)).astype(np.float16) for _ in range(3))
    return [q, k, v, np.zeros_like(q)]


def _final(lowered: tsir.Lowered, args: list[np.ndarray]) -> list[np.ndarray]:
    out = [a.copy() for a in args]
    tsir.interpret(lowered.stages[-1][1], *out)
    return out


@pytest.mark.parametrize(
    "S, causal, overlap", [(136, True, True), (200, False, False)], ids=["overlap", "in-turn"]
)
def test_attention_every_stage_agrees_and_equals_the_program_without_ping_pong(
    S: int, causal: bool, overlap: bool
) -> None:
    D = 32
    args = _qkv(S, D, S)
    lowered = tsir.lower(attention(1, S, D, causal=causal, overlap=overlap), "sm_90a")
    report = tsir.interpret.check_stages(lowered, args, target="sm_90a")
    report.raise_for_failure()
    np.testing.assert_allclose(
        report.reference[3].astype(np.float64),
        attention_reference(*args[:3], causal),
        atol=3e-3,
    )
    final = str(lowered["InjectPingPong"])
    assert final.count("named_barrier_arrive") == 2 and final.count("named_barrier_sync") == 2
    notes = [d.message for d in lowered.report]
    # Without the overlap the turn holds the softmax: applied, and the report says so.
    assert bool(notes) != overlap and all("waits for its own results" in n for n in notes)
    plain = tsir.lower(attention(1, S, D, causal=causal, overlap=overlap, pingpong=False), "sm_90a")
    assert "named_barrier_arrive" not in str(plain["InjectPingPong"])
    np.testing.assert_array_equal(_final(lowered, args)[3], _final(plain, args)[3])


def _gemm_args(M: int, N: int, K: int) -> list[np.ndarray]:
    rng = np.random.default_rng(M + N + K)
    a = rng.standard_normal((M, K)).astype(np.float16)
    b = rng.standard_normal((K, N)).astype(np.float16)
    return [a, b, np.full((M, N), np.nan, np.float16)]


def test_a_gemm_loop_takes_turns_at_every_k_block() -> None:
    args = _gemm_args(128, 128, 160)  # K = 2.5 k-blocks: TMA zero-fills the last one
    lowered = tsir.lower(gemm(128, 128, 160), "sm_90a")
    assert not lowered.report, [str(d) for d in lowered.report]
    tsir.interpret.check_stages(lowered, args, target="sm_90a").raise_for_failure()
    want = args[0].astype(np.float32) @ args[1].astype(np.float32)
    np.testing.assert_allclose(
        _final(lowered, args)[2].astype(np.float32), want, rtol=2e-2, atol=2e-1
    )


def test_persistent_blocks_keep_taking_turns_from_tile_to_tile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One block walks 3 tiles (PERSISTENT_CTAS = 1): the first arrival and the last sync
    surround the tile loop, so the turns continue across tiles and no generation is overrun
    (the interpreter reports a second arrival in one generation, and arrivals left pending)."""
    import tsir.passes.warp_specialize as ws

    monkeypatch.setattr(ws, "PERSISTENT_CTAS", 1)
    args = _gemm_args(384, 128, 128)
    lowered = tsir.lower(gemm(384, 128, 128, persistent=True), "sm_90a")
    assert not lowered.report, [str(d) for d in lowered.report]
    tsir.interpret.check_stages(lowered, args, target="sm_90a").raise_for_failure()
    text = str(lowered["InjectPingPong"])
    tile_loop = text.index("for tile in")
    assert text.index('named_barrier_arrive", 3, 256') < tile_loop
    assert text.rindex('named_barrier_sync", 3, 256') > text.index("C[")


# -- NVRTC and SASS --------------------------------------------------------------------------------


def _sass_ops(cubin: bytes) -> list[str]:
    """The SASS instructions in program order, with operands (`BAR.SYNC.DEFER_BLOCKING R13,
    0x100`), predicates dropped."""
    out = []
    for line in sass(cubin, Path(tempfile.mkdtemp())).splitlines():
        m = re.match(r"^\s*/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P\w+\s+)?([^;]*);", line)
        if m:
            out.append(m.group(1).strip())
    return out


def test_each_iterations_hgmma_sit_between_bar_sync_and_bar_arrive() -> None:
    """The benchmark's shape (S = 4096, D = 128, causal, the overlapped loop): in SASS, the loop's
    HGMMAs (S(j+1) = Q K^T, then P(j) V(j) with P from registers) are bracketed by a BAR.SYNC and
    a BAR.ARV on a register id (the warpgroup's barrier) of 256 threads (0x100); the first arrival
    and the last sync name barrier 3; no local memory."""
    kernel = tsir.compile(attention(32, 4096, 128, causal=True), target="sm_90a")
    ops = _sass_ops(kernel.cubin)
    turn_sync = [i for i, o in enumerate(ops) if re.fullmatch(r"BAR\.SYNC\S* R\d+, 0x100", o)]
    turn_arrive = [i for i, o in enumerate(ops) if re.fullmatch(r"BAR\.ARV R\d+, 0x100", o)]
    assert len(turn_sync) == 1 and len(turn_arrive) == 1, [o for o in ops if "BAR" in o]
    first, last = turn_sync[0], turn_arrive[0]
    inside = [o for o in ops[first:last] if o.startswith("HGMMA")]
    assert any(".64x64x16." in o for o in inside) and any(".64x128x16." in o for o in inside)
    assert inside == [o for o in ops[first:] if o.startswith("HGMMA")]  # all of the loop's
    assert ops.count("BAR.ARV 0x3, 0x100") == 1
    assert sum(bool(re.fullmatch(r"BAR\.SYNC\S* 0x3, 0x100", o)) for o in ops) == 1
    assert not any(o.startswith(("LDL", "STL")) for o in ops)
