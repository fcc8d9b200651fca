"""Every example of examples/distributed/ in the multi-rank interpreter at 2, 4 and 8 ranks: the
tile-level program (the reference), every stage of its lowering at 2 ranks, and the final module at
4 and 8, against numpy references; dead ranks and waits that can never be satisfied end in a
DeadlockError naming the waits."""

from __future__ import annotations

import os
import sys
from typing import Any

import ml_dtypes
import numpy as np
import pytest

import tsir
from tsir.interpret import DeadlockError, check_stages

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "examples", "distributed"))

import ag_gemm
import barrier_stress
import collectives
import cpengine_allgather
import gemm_rs
import nvshmem_examples
import put_get
import ring_shift

BF16 = ml_dtypes.bfloat16
RANKS = [2, 4, 8]


def pattern(n: int, dtype: Any, rank: int, salt: int = 0) -> np.ndarray:
    """examples/distributed/common.pattern, in numpy."""
    return ((np.arange(n, dtype=np.int64) * 7 + rank * 1000 + salt * 13) % 251).astype(dtype)


def stages(func: tsir.PrimFunc, ranks: int) -> Any:
    """Every stage at 2 ranks; the tile-level input and the final module at 4 and 8 (time)."""
    low = tsir.lower(func, "sm_80")
    return low if ranks == 2 else [low.stages[0], low.stages[-1]]


def run(func: tsir.PrimFunc, args: list[Any], ranks: int) -> list[Any]:
    report = check_stages(stages(func, ranks), args, ranks=ranks)
    assert report.ok, str(report)
    return report.reference


def per_rank(ranks: int, make: Any) -> list[np.ndarray]:
    return [make(r) for r in range(ranks)]


@pytest.mark.parametrize("ranks", RANKS)
def test_ring_shift(ranks: int) -> None:
    n, blocks = 1003, 7
    src = per_rank(ranks, lambda r: pattern(n, BF16, r, 1))
    out = run(
        ring_shift.ring_shift(n, blocks, "bfloat16"),
        [
            src,
            per_rank(ranks, lambda r: np.zeros(n, BF16)),
            per_rank(ranks, lambda r: np.zeros(blocks, np.int32)),
            per_rank(ranks, lambda r: np.full(n, np.nan, BF16)),
            3,
        ],
        ranks,
    )
    for r in range(ranks):
        np.testing.assert_array_equal(out[3][r], src[(r - 1) % ranks])
        np.testing.assert_array_equal(out[2][r], np.full(blocks, 3))


@pytest.mark.parametrize("ranks", RANKS)
@pytest.mark.parametrize(
    "case", [("float32", 1000, 1, 3), ("bfloat16", 259, 5, 5), ("int8", 131, 3, 0)]
)
@pytest.mark.parametrize("scope,put", [("block", True), ("warp", False)])
def test_put_get(ranks: int, case: tuple[str, int, int, int], scope: str, put: bool) -> None:
    dtype, chunk, so, do = case
    npdt = BF16 if dtype == "bfloat16" else np.dtype(dtype)
    n = put_get.BLOCKS * chunk + 8
    src = per_rank(ranks, lambda r: pattern(n, npdt, r, chunk))
    poison = np.frombuffer(np.full(n * np.dtype(npdt).itemsize, 0x5A, np.uint8).tobytes(), npdt)
    out = run(
        put_get.remote_copy(dtype, chunk, so, do, scope, put),
        [
            src,
            per_rank(ranks, lambda r: poison.copy()),
            per_rank(ranks, lambda r: np.zeros(64, np.int32)),
        ],
        ranks,
    )
    for r in range(ranks):
        want = poison.copy()
        other = src[(r - 1) % ranks]
        for b in range(put_get.BLOCKS):
            want[b * chunk + do : b * chunk + do + chunk] = other[
                b * chunk + so : b * chunk + so + chunk
            ]
        np.testing.assert_array_equal(out[1][r].view(np.uint8), want.view(np.uint8))


@pytest.mark.parametrize("ranks", RANKS)
def test_collectives(ranks: int) -> None:
    n, blocks = 300, 3
    inp = per_rank(ranks, lambda r: pattern(n, BF16, r))
    out = run(
        collectives.all_gather(n, ranks, blocks, threads=128),
        [
            inp,
            per_rank(ranks, lambda r: np.zeros(ranks * n, BF16)),
            per_rank(ranks, lambda r: np.zeros(64, np.int32)),
        ],
        ranks,
    )
    for r in range(ranks):
        np.testing.assert_array_equal(out[1][r], np.concatenate(inp))
    inp2 = per_rank(ranks, lambda r: pattern(ranks * n, np.int8, r, 7))
    out = run(
        collectives.all_to_all(n, ranks, blocks, threads=128, dtype="int8"),
        [
            inp2,
            per_rank(ranks, lambda r: np.zeros(ranks * n, np.int8)),
            per_rank(ranks, lambda r: np.zeros(64, np.int32)),
        ],
        ranks,
    )
    for r in range(ranks):
        np.testing.assert_array_equal(
            out[1][r], np.concatenate([inp2[q][r * n : (r + 1) * n] for q in range(ranks)])
        )


@pytest.mark.parametrize("ranks", RANKS)
@pytest.mark.parametrize("blocks,fence", [(3, True), (2, False)])
def test_barrier_stress(ranks: int, blocks: int, fence: bool) -> None:
    out = run(
        barrier_stress.barrier_stress(blocks, iterations=2, fence=fence),
        [
            per_rank(ranks, lambda r: np.zeros(256, np.int32)),
            per_rank(ranks, lambda r: np.zeros(64, np.int32)),
            per_rank(ranks, lambda r: np.zeros(1, np.int32)),
            5,
        ],
        ranks,
    )
    for r in range(ranks):
        assert out[2][r][0] == 0  # no torn or stale slot seen
        assert out[1][r][r] & 0xFFFFF == 0  # quiescent: every arrival count back to 0
        assert out[1][r][r] >> 20 == 4  # two iterations, two barriers each
        np.testing.assert_array_equal(out[0][r][: ranks * blocks], np.full(ranks * blocks, 6))


@pytest.mark.parametrize("ranks", RANKS)
def test_gemm_reduce_scatter(ranks: int) -> None:
    bm = bn = 32
    M, N, Kl = 32 * ranks, 32, 32
    rng = np.random.default_rng(ranks)
    A = rng.standard_normal((M, Kl * ranks)).astype(BF16)
    B = rng.standard_normal((Kl * ranks, N)).astype(BF16)
    parts = run(
        gemm_rs.gemm_partial(M, N, Kl, ranks, bm=bm, bn=bn, bk=32),
        [
            per_rank(ranks, lambda r: np.ascontiguousarray(A[:, r * Kl : (r + 1) * Kl])),
            per_rank(ranks, lambda r: np.ascontiguousarray(B[r * Kl : (r + 1) * Kl])),
            per_rank(ranks, lambda r: np.zeros((M, N), np.float32)),
            per_rank(ranks, lambda r: np.zeros(M // bm, np.int32)),
        ],
        ranks,
    )
    np.testing.assert_array_equal(parts[3][0], np.full(M // bm, ranks))  # every rank's tile counted
    out = run(
        gemm_rs.reduce_scatter(M, N, ranks, bm=bm, bn=bn, threads=64),
        [
            [p.reshape(-1) for p in parts[2]],
            parts[3],
            per_rank(ranks, lambda r: np.zeros((M // ranks, N), np.float32)),
            1,
        ],
        ranks,
    )
    full = A.astype(np.float64) @ B.astype(np.float64)
    rows = M // ranks
    for r in range(ranks):
        np.testing.assert_allclose(out[2][r], full[r * rows : (r + 1) * rows], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("ranks", RANKS)
def test_all_gather_gemm(ranks: int) -> None:
    rows, N, K = 32, 32, 32
    M = rows * ranks
    rng = np.random.default_rng(10 + ranks)
    shards = per_rank(ranks, lambda r: rng.standard_normal(rows * K).astype(BF16))

    def full(r: int) -> np.ndarray:
        x = np.zeros(M * K, BF16)
        x[r * rows * K : (r + 1) * rows * K] = shards[r]
        return x

    pushed = run(
        ag_gemm.ag_push(rows, K, ranks, 1, threads=128),
        [per_rank(ranks, full), per_rank(ranks, lambda r: np.zeros(ranks, np.int32)), 1],
        ranks,
    )
    gathered = np.concatenate(shards)
    for r in range(ranks):
        np.testing.assert_array_equal(pushed[0][r], gathered)
    B = rng.standard_normal((K, N)).astype(BF16)
    out = run(
        ag_gemm.gemm_after_flags(M, N, K, rows, 1, bm=32, bn=32, bk=32),
        [
            [a.reshape(M, K) for a in pushed[0]],
            per_rank(ranks, lambda r: B.copy()),
            per_rank(ranks, lambda r: np.zeros((M, N), BF16)),
            pushed[1],
            1,
        ],
        ranks,
    )
    want = gathered.reshape(M, K).astype(np.float64) @ B.astype(np.float64)
    for r in range(ranks):
        np.testing.assert_allclose(out[2][r].astype(np.float64), want, rtol=3e-2, atol=1e-1)


@pytest.mark.parametrize("ranks", RANKS)
def test_copy_engine_all_gather(ranks: int) -> None:
    n = 48
    inp = per_rank(ranks, lambda r: pattern(n, BF16, r))
    out = run(
        cpengine_allgather.cp_all_gather(n, ranks),
        [
            inp,
            per_rank(ranks, lambda r: np.zeros(ranks * n, BF16)),
            per_rank(ranks, lambda r: np.zeros(ranks, np.int32)),
            4,
        ],
        ranks,
    )
    for r in range(ranks):
        np.testing.assert_array_equal(out[1][r], np.concatenate(inp))
        np.testing.assert_array_equal(out[2][r], np.full(ranks, 4))


@pytest.mark.parametrize("ranks", [2, 4])
def test_copy_engine_all_gather_gemm(ranks: int) -> None:
    m, n, k = 32, 32, 32
    rng = np.random.default_rng(20 + ranks)
    A = per_rank(ranks, lambda r: rng.standard_normal((m, k)).astype(np.float16))
    B = rng.standard_normal((k, n)).astype(np.float16)
    out = run(
        cpengine_allgather.ag_gemm(m, n, k, ranks, bm=32, bn=32, bk=32),
        [
            A,
            per_rank(ranks, lambda r: np.zeros((ranks * m, k), np.float16)),
            per_rank(ranks, lambda r: B.copy()),
            per_rank(ranks, lambda r: np.zeros((ranks * m, n), np.float16)),
            per_rank(ranks, lambda r: np.zeros(ranks, np.int32)),
            1,
        ],
        ranks,
    )
    want = np.concatenate(A).astype(np.float64) @ B.astype(np.float64)
    for r in range(ranks):
        np.testing.assert_allclose(out[3][r].astype(np.float64), want, rtol=2e-2, atol=5e-2)


@pytest.mark.parametrize("ranks", RANKS)
def test_nvshmem_examples(ranks: int) -> None:
    n = 40
    src = per_rank(ranks, lambda r: pattern(n, np.float32, r))
    zeros = lambda k: per_rank(ranks, lambda r: np.zeros(k, np.float32))
    out = run(nvshmem_examples.put_get(n), [src, zeros(n), zeros(n)], ranks)
    for r in range(ranks):
        np.testing.assert_array_equal(out[1][r], src[(r - 1) % ranks])
        np.testing.assert_array_equal(out[2][r], src[(r + 1) % ranks])
    sig = lambda k: per_rank(ranks, lambda r: np.zeros(k, np.uint64))
    out = run(nvshmem_examples.ring_shift(n), [src, zeros(n), sig(1), 3], ranks)
    for r in range(ranks):
        np.testing.assert_array_equal(out[1][r], src[(r - 1) % ranks])
    out = run(nvshmem_examples.all_gather(n, ranks), [src, zeros(ranks * n), sig(ranks), 3], ranks)
    for r in range(ranks):
        np.testing.assert_array_equal(out[1][r], np.concatenate(src))


# -- dead ranks and waits that never end -----------------------------------------------------------


def _ring_args(ranks: int, n: int = 64, blocks: int = 2) -> list[Any]:
    return [
        per_rank(ranks, lambda r: pattern(n, np.float32, r)),
        per_rank(ranks, lambda r: np.zeros(n, np.float32)),
        per_rank(ranks, lambda r: np.zeros(blocks, np.int32)),
        per_rank(ranks, lambda r: np.zeros(n, np.float32)),
        1,
    ]


@pytest.mark.parametrize("stage", ["input", "SplitHostDevice"])
def test_a_dead_rank_ends_in_a_deadlock_error_naming_the_waits(stage: str) -> None:
    func = tsir.lower(ring_shift.ring_shift(64, 2), "sm_80")[stage]
    with pytest.raises(DeadlockError) as info:
        tsir.interpret(func, *_ring_args(3), ranks=3, dead_ranks={1})
    msg = str(info.value)
    assert "Rank(s) [1] are dead" in msg
    assert "rank 2 block (0,) thread (0,)" in msg and "waits for `flags`[0]" in msg
    assert "waits for `flags`[0] >= 1, which holds 0" in msg
    assert "its timeout of 20000000000 cycles would trap" in msg


def test_a_barrier_with_a_dead_rank_ends_in_a_deadlock_error() -> None:
    func = barrier_stress.barrier_stress(2, iterations=1)
    with pytest.raises(
        DeadlockError,
        match=r"barrier_blocks \(timeout 20000000000 cycles\) waits for rank\(s\) \[2\]",
    ):
        tsir.interpret(
            func,
            per_rank(3, lambda r: np.zeros(256, np.int32)),
            per_rank(3, lambda r: np.zeros(64, np.int32)),
            per_rank(3, lambda r: np.zeros(1, np.int32)),
            1,
            ranks=3,
            dead_ranks=[2],
        )


def test_a_wait_nothing_satisfies_without_a_timeout() -> None:
    from tsir import T

    with T.prim_func("stuck") as f:
        flag = T.param("flag", (1,), "int32", scope="symmetric")
        with T.Kernel(1, threads=32):
            tx = T.get_thread_binding()
            with T.If(tx == 0):
                T.wait_eq(flag[0], 1)
    with pytest.raises(DeadlockError, match="it has no timeout: it would hang"):
        tsir.interpret(f.func, per_rank(2, lambda r: np.zeros(1, np.int32)), ranks=2)


def test_per_rank_arguments_are_required() -> None:
    with pytest.raises(tsir.TSIRError, match="pass a list of 2 numpy arrays"):
        tsir.interpret(ring_shift.ring_shift(64, 2), *[np.zeros(64, np.float32)] * 4, 1, ranks=2)


def test_ld_atom_add_and_warp_votes_at_both_levels() -> None:
    from tsir import T

    with T.prim_func("misc") as f:
        data = T.param("data", (8,), "int32", scope="symmetric")
        out = T.param("out", (4,), "int32")
        with T.Kernel(1, threads=64):
            tx = T.get_thread_binding()
            peer = (T.get_rank() + 1) % T.get_num_ranks()
            v = T.ld(data[3], sem="acquire", scope="sys", src_pe=peer)
            old = T.atom_add(data[0], 1, scope="sys", dst_pe=peer)  # every thread: 64 adds
            any_ = T.alloc_var("int32")
            all_ = T.alloc_var("int32")
            any_[0] = T.cast(T.warp_any(tx == 5), "int32")
            all_[0] = T.cast(T.warp_all(tx < 40), "int32")
            with T.If(tx == 0):
                out[0] = v
                out[1] = any_[0]
                out[2] = all_[0]
            with T.If(tx == 63):
                out[3] = old + all_[0]  # the last of the 64 adds; warp 1 is not all below 40
    low = tsir.lower(f.func, "sm_80")
    for _, ir in (low.stages[0], low.stages[-1]):
        data_ = per_rank(3, lambda r: np.arange(8, dtype=np.int32) + 100 * r)
        out_ = per_rank(3, lambda r: np.zeros(4, np.int32))
        tsir.interpret(ir, data_, out_, ranks=3)
        for r in range(3):
            peer = (r + 1) % 3
            np.testing.assert_array_equal(out_[r], [100 * peer + 3, 1, 1, 100 * peer + 63])
            assert data_[r][0] == 100 * r + 64
