"""Fragments read where another fragment decides the thread (tsir/tileop/replicated_layouts.py,
LayoutInference, LowerTileOp's mirrors): a 1-D fragment read in a 2-D T.Parallel at any index, a
fragment indexed by a T.serial variable, and fragments read outside T.Parallel by every thread.
Layout inference chooses a replication that works and reports its cost under TSIR_EXPLAIN; every
case is checked at every stage against the interpreter."""

from __future__ import annotations

import numpy as np
import pytest

import tsir
from tsir import T
from tsir.interpret import check_stages


def masked_scores(threads: int, index: str) -> tsir.PrimFunc:
    """TileLang's GQA decode: `acc_s[i, j] = if_then_else(mask_local[j] != 0, acc_s[i, j], -inf)`
    with acc_s a gemm accumulator and mask_local a 1-D fragment loaded from global memory."""
    M, N, K = 64, 64, 32
    with T.prim_func("mask") as f:
        Q = T.param("Q", (M, K), "float16")
        Kt = T.param("Kt", (N, K), "float16")
        mask = T.param("mask", (N,), "uint8")
        S = T.param("S", (M, N), "float32")
        with T.Kernel(1, threads=threads):
            Q_s = T.alloc_shared((M, K), "float16")
            K_s = T.alloc_shared((N, K), "float16")
            acc = T.alloc_fragment((M, N), "float32")
            m = T.alloc_fragment((N,), "uint8")
            T.copy(Q, Q_s)
            T.copy(Kt, K_s)
            T.copy(mask, m)
            T.gemm(Q_s, K_s, acc, transpose_B=True, clear_accum=True, policy="full_row")
            for i, j in T.Parallel(M, N):
                at = j if index == "column" else (j + i) % N
                acc[i, j] = T.if_then_else(m[at] != 0, acc[i, j], -T.infinity("float32"))
            T.copy(acc, S)
    return f.func


@pytest.mark.parametrize("threads", [32, 64, 128])
@pytest.mark.parametrize("index", ["column", "expression"])
def test_1d_fragment_read_in_a_2d_parallel(threads: int, index: str) -> None:
    func = masked_scores(threads, index)
    rng = np.random.default_rng(0)
    q = rng.standard_normal((64, 32)).astype(np.float16)
    k = rng.standard_normal((64, 32)).astype(np.float16)
    mask = rng.integers(0, 2, 64).astype(np.uint8)
    report = check_stages(func, [q, k, mask, np.zeros((64, 64), np.float32)], target="sm_80")
    assert report.ok, str(report)
    s = q.astype(np.float32) @ k.astype(np.float32).T
    idx = (
        np.arange(64)[None, :]
        if index == "column"
        else (np.arange(64)[None, :] + np.arange(64)[:, None]) % 64
    )
    want = np.where(mask[idx] != 0, s, -np.inf)
    np.testing.assert_allclose(report.reference[3], want, rtol=1e-3, atol=1e-3)
    notes = [d.message for d in tsir.lower(func, "sm_80").report]
    if index == "column":
        # Each thread holds the columns its accumulator registers cover: a quarter of them.
        assert any(
            "`m[j]` is replicated" in n and "16 element(s) per thread" in n for n in notes
        ), notes
    else:
        assert any(
            "held whole by every thread" in n and "64 element(s) per thread" in n for n in notes
        ), notes


@pytest.mark.parametrize("threads", [64, 128])
def test_fragment_indexed_by_a_serial_variable_inside_t_parallel(threads: int) -> None:
    """`acc[i, j] += tab[i, k]` for k in T.serial: tab follows acc's rows, all of k per holder."""
    M, N, KK = 16, 64, 5
    with T.prim_func("serial_k") as f:
        X = T.param("X", (M, N), "float32")
        Tb = T.param("Tb", (M, KK), "float32")
        Y = T.param("Y", (M, N), "float32")
        with T.Kernel(1, threads=threads):
            acc = T.alloc_fragment((M, N), "float32")
            tab = T.alloc_fragment((M, KK), "float32")
            T.copy(X, acc)
            for i, k in T.Parallel(M, KK):
                tab[i, k] = Tb[i, k]
            for k in T.serial(KK):
                for i, j in T.Parallel(M, N):
                    acc[i, j] = acc[i, j] + tab[i, k] * T.cast(k + 1, "float32")
            T.copy(acc, Y)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((M, N)).astype(np.float32)
    tb = rng.standard_normal((M, KK)).astype(np.float32)
    report = check_stages(f.func, [x, tb, np.zeros((M, N), np.float32)], target="sm_80")
    assert report.ok, str(report)
    np.testing.assert_allclose(
        report.reference[2], x + (tb * np.arange(1, KK + 1)).sum(1)[:, None], rtol=1e-4, atol=1e-5
    )


@pytest.mark.parametrize("threads", [64, 128])
def test_fragment_read_by_every_thread_outside_t_parallel(threads: int) -> None:
    """A fragment filled from memory and read in a serial loop by every thread: nothing else lays
    it out, so every thread holds all of it (reported with its cost)."""
    with T.prim_func("serial_read") as f:
        X = T.param("X", (4, 32), "float32")
        Y = T.param("Y", (threads,), "float32")
        with T.Kernel(1, threads=threads):
            tx = T.get_thread_binding(0)
            fr = T.alloc_fragment((32,), "float32")
            acc = T.alloc_local((1,), "float32")
            T.clear(acc)
            for r in T.serial(4):
                T.copy(X[r, :], fr)
                for k in T.serial(32):
                    acc[0] = acc[0] + fr[k] * T.cast(k, "float32")
            Y[tx] = acc[0]
    x = np.random.default_rng(2).standard_normal((4, 32)).astype(np.float32)
    report = check_stages(f.func, [x, np.zeros(threads, np.float32)], target="sm_80")
    assert report.ok, str(report)
    np.testing.assert_allclose(
        report.reference[1], np.full(threads, (x * np.arange(32)).sum()), rtol=1e-4
    )
    notes = [d.message for d in tsir.lower(f.func, "sm_80").report]
    assert any(
        "`fr` is accessed outside T.Parallel" in n and "32 element(s) per thread (128 bytes)" in n
        for n in notes
    )


@pytest.mark.parametrize("threads", [64, 128])
def test_reduction_result_read_outside_t_parallel_is_mirrored(threads: int) -> None:
    """A row maximum (laid out by the reduction, spread over threads) read by every thread in a
    serial loop: LowerTileOp keeps a copy in shared memory, refreshed after the reduction."""
    with T.prim_func("mirror") as f:
        X = T.param("X", (16, 64), "float32")
        Y = T.param("Y", (threads,), "float32")
        with T.Kernel(1, threads=threads):
            tx = T.get_thread_binding(0)
            fr = T.alloc_fragment((16, 64), "float32")
            mx = T.alloc_fragment((16,), "float32")
            acc = T.alloc_local((1,), "float32")
            T.copy(X, fr)
            T.reduce_max(fr, mx, dim=1)
            T.clear(acc)
            for k in T.serial(16):
                acc[0] = acc[0] + mx[k]
            Y[tx] = acc[0]
    x = np.random.default_rng(3).standard_normal((16, 64)).astype(np.float32)
    report = check_stages(f.func, [x, np.zeros(threads, np.float32)], target="sm_80")
    assert report.ok, str(report)
    np.testing.assert_allclose(report.reference[1], np.full(threads, x.max(1).sum()), rtol=1e-5)
    notes = [d.message for d in tsir.lower(f.func, "sm_80").report]
    assert any(
        "`mx` is read outside T.Parallel" in n and "copied to shared memory" in n for n in notes
    )


@pytest.mark.parametrize("target", ["sm_80", "sm_90a"])
def test_replicated_fragments_compile(target: str) -> None:
    for index in ("column", "expression"):
        assert tsir.compile(masked_scores(128, index), target=target).cubin[:4] == b"\x7fELF"


@pytest.mark.gpu
@pytest.mark.parametrize("index", ["column", "expression"])
def test_masked_scores_on_the_gpu(index: str) -> None:
    torch = pytest.importorskip("torch")
    k = tsir.compile(masked_scores(128, index), target="cuda")
    q = torch.randn(64, 32, device="cuda", dtype=torch.float16)
    kt = torch.randn(64, 32, device="cuda", dtype=torch.float16)
    mask = torch.randint(0, 2, (64,), device="cuda", dtype=torch.uint8)
    s = torch.zeros(64, 64, device="cuda")
    k(q, kt, mask, s)
    ar = torch.arange(64, device="cuda")
    idx = ar[None, :].expand(64, 64) if index == "column" else (ar[None, :] + ar[:, None]) % 64
    want = torch.where(
        mask[idx] != 0, q.float() @ kt.float().T, torch.tensor(float("-inf"), device="cuda")
    )
    torch.testing.assert_close(s, want, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("axis", ["rows", "columns"])
def test_accumulating_across_threads_in_t_parallel_is_refused(axis: str) -> None:
    """`s[i] = s[i] + F[i, j]` with row i spread over several threads: each thread would sum its
    own part into its own copy (a silent wrong sum, on main for rows): refused with the fix."""
    with T.prim_func("acc") as f:
        X = T.param("X", (16, 64), "float32")
        Y = T.param("Y", (64,), "float32")
        with T.Kernel(1, threads=64):
            F = T.alloc_fragment((16, 64), "float32")
            s = T.alloc_fragment((64,) if axis == "columns" else (16,), "float32")
            T.copy(X, F)
            T.clear(s)
            for i, j in T.Parallel(16, 64):
                if axis == "columns":
                    s[j] = s[j] + F[i, j]
                else:
                    s[i] = s[i] + F[i, j]
            T.copy(s, Y[0 : (64 if axis == "columns" else 16)])
    with pytest.raises(
        tsir.UnsupportedError, match="accumulates over iterations that run in different threads"
    ) as e:
        tsir.lower(f.func, "sm_80")
    assert e.value.loc is not None and e.value.loc.filename == __file__


def test_accumulating_within_one_thread_is_fine() -> None:
    """Each thread holds whole rows: the same accumulation is right, and allowed."""
    from tsir.layout import Fragment

    with T.prim_func("rows") as f:
        X = T.param("X", (16, 8), "float32")
        Y = T.param("Y", (16,), "float32")
        with T.Kernel(1, threads=16):
            F = T.alloc_fragment((16, 8), "float32")
            s = T.alloc_fragment((16,), "float32")
            T.annotate_layout(
                {
                    F: Fragment.from_fn((16, 8), lambda i, j: i, lambda i, j: j),
                    s: Fragment.from_fn((16,), lambda i: i, lambda i: 0),
                }
            )
            T.copy(X, F)
            T.clear(s)
            for i, j in T.Parallel(16, 8):
                s[i] = s[i] + F[i, j]
            T.copy(s, Y)
    x = np.random.default_rng(6).standard_normal((16, 8)).astype(np.float32)
    report = check_stages(f.func, [x, np.zeros(16, np.float32)], target="sm_80")
    assert report.ok, str(report)
    np.testing.assert_allclose(report.reference[1], x.sum(1), rtol=1e-5)
