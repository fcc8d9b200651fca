"""Blocks whose thread count is not a power of two (48, 96, 160): tsir's own fragment layouts spread
over the largest power of two of the threads, the others hold nothing of them, and every op that
reads registers skips theirs. Oracle: the interpreter at every stage (uninitialised reads,
races, results)."""

from __future__ import annotations

import numpy as np
import pytest

import tsir
from tsir import T


@pytest.mark.parametrize("threads", [48, 96, 160])
@pytest.mark.parametrize("dim", [0, 1])
def test_fragment_copy_reduce_and_nest(threads: int, dim: int) -> None:
    with T.prim_func("f") as f:
        X = T.param("X", (16, 64), "float32")
        Y = T.param("Y", (64 if dim == 0 else 16,), "float32")
        Z = T.param("Z", (16, 64), "float32")
        with T.Kernel(1, threads=threads):
            F = T.alloc_fragment((16, 64), "float32")
            s = T.alloc_fragment((64 if dim == 0 else 16,), "float32")
            T.copy(X, F)
            T.reduce_sum(F, s, dim=dim)
            for i, j in T.Parallel(16, 64):
                F[i, j] = F[i, j] - (s[j] if dim == 0 else s[i])
            T.copy(F, Z)
            T.copy(s, Y)
    x = np.random.default_rng(threads).standard_normal((16, 64)).astype(np.float32)
    n = 64 if dim == 0 else 16
    report = tsir.interpret.check_stages(
        f.func, [x, np.zeros(n, np.float32), np.zeros((16, 64), np.float32)], target="sm_80"
    )
    report.raise_for_failure()
    want = x.sum(axis=dim)
    np.testing.assert_allclose(report.reference[1], want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("threads", [48, 96])
def test_gemm_and_layer_norm_rows(threads: int) -> None:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
    from tilelang_forms import layer_norm_rows

    N, D = 3, 128
    rng = np.random.default_rng(1)
    x = rng.standard_normal((N, D)).astype(np.float16)
    g = rng.standard_normal(D).astype(np.float16)
    b = rng.standard_normal(D).astype(np.float16)
    outs = [np.zeros((N, D), np.float16), np.zeros(N, np.float32), np.zeros(N, np.float32)]
    report = tsir.interpret.check_stages(
        layer_norm_rows(N, D, 2, threads, "float16"), [x, g, b, *outs], target="sm_80"
    )
    report.raise_for_failure()
    np.testing.assert_allclose(report.reference[4], x.astype(np.float64).mean(1), rtol=1e-4)
