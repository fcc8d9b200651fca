"""Every (single-GPU) example, interpreted at the tile level and at every stage of its lowering, on
small ragged shapes, against numpy references computed here independently of tsir."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ml_dtypes
import numpy as np
import pytest
from elementwise_2d import fused_exp_scale_bias
from flash_attention import flash_attention
from gemm import matmul
from softmax import (
    column_sum,
    column_sum_atomic,
    layer_norm,
    prefix_sum_rows,
    softmax,
    tile_sum_and_max,
)
from transpose import transpose
from vector_add import vector_add

import tsir
from tsir.interpret import check_stages

RNG = np.random.default_rng(1234)


def rand(*shape: int, dtype: Any = np.float32) -> np.ndarray:
    return RNG.standard_normal(shape).astype(dtype)


def assert_stages(
    func: tsir.PrimFunc, args: list[Any], expect: Callable[[list[Any]], None]
) -> None:
    """Every stage agrees with the tile-level run, no detector fires, and the tile-level outputs
    match the numpy reference (`expect` asserts on them)."""
    report = check_stages(func, args)
    assert report.ok, str(report)
    assert report.results[-1].stage == "SplitHostDevice"
    expect(report.reference)


def close(got: np.ndarray, want: np.ndarray, rtol: float, atol: float) -> None:
    np.testing.assert_allclose(got.astype(np.float64), want, rtol=rtol, atol=atol)


@pytest.mark.parametrize("n", [1, 200, 1000])
def test_vector_add(n: int) -> None:
    a, b = rand(n), rand(n)
    assert_stages(
        vector_add(block=256, threads=64),
        [a, b, np.full(n, np.nan, np.float32)],
        lambda out: close(out[2], a.astype(np.float64) + b, 1e-6, 1e-6),
    )


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_fused_exp_scale_bias(dtype: str) -> None:
    npdt = np.float32 if dtype == "float32" else ml_dtypes.bfloat16
    x, w, b = rand(9, 128, dtype=npdt), rand(128, dtype=npdt), rand(128, dtype=npdt)
    want = np.exp(x.astype(np.float64)) * w.astype(np.float64) + b.astype(np.float64)
    tol = 1e-5 if dtype == "float32" else 3e-2
    assert_stages(
        fused_exp_scale_bias(128, dtype, bm=4, bn=64, threads=64),
        [x, w, b, np.zeros((9, 128), npdt)],
        lambda out: close(out[3], want, tol, tol),
    )


@pytest.mark.parametrize("rows", [40, 64])
def test_transpose(rows: int) -> None:
    a = rand(rows, 64)
    assert_stages(
        transpose(N=64, tile=32, threads=128),
        [a, np.zeros((64, rows), np.float32)],
        lambda out: close(out[1], a.T, 0, 0),
    )


GEMM_CASES = [
    # (M, N, K, num_stages, transpose_A, transpose_B, dtype)
    (64, 64, 64, 2, False, False, "float16"),
    (64, 64, 96, 3, False, False, "float16"),
    (77, 50, 96, 3, False, False, "float16"),  # ragged M, N and a K tail
    (64, 64, 64, 2, True, False, "float16"),
    (64, 64, 64, 2, False, True, "float16"),
    (64, 32, 64, 3, True, True, "bfloat16"),
]


def _gemm_args(
    M: int, N: int, K: int, ta: bool, tb: bool, dtype: str
) -> tuple[list[Any], np.ndarray]:
    npdt = np.float16 if dtype == "float16" else ml_dtypes.bfloat16
    a = rand(*((K, M) if ta else (M, K)), dtype=npdt)
    b = rand(*((N, K) if tb else (K, N)), dtype=npdt)
    want = (a.T if ta else a).astype(np.float64) @ (b.T if tb else b).astype(np.float64)
    return [a, b, np.full((M, N), np.nan, npdt)], want


@pytest.mark.parametrize("M,N,K,stages,ta,tb,dtype", GEMM_CASES)
def test_gemm(M: int, N: int, K: int, stages: int, ta: bool, tb: bool, dtype: str) -> None:
    args, want = _gemm_args(M, N, K, ta, tb, dtype)
    tol = 2e-2 if dtype == "float16" else 5e-2
    func = matmul(
        M,
        N,
        K,
        bm=32,
        bn=32,
        bk=32,
        dtype=dtype,
        num_stages=stages,
        transpose_A=ta,
        transpose_B=tb,
        threads=128,
    )
    assert_stages(func, args, lambda out: close(out[2], want, tol, tol))


@pytest.mark.parametrize("stages", [0, 1])
def test_gemm_unpipelined_tile_level(stages: int) -> None:
    """The tile-level meaning of the un-pipelined loops (their lowering is issue 9's class 1, see
    test_known_classes.py)."""
    args, want = _gemm_args(70, 64, 64, False, False, "float16")
    tsir.interpret(matmul(70, 64, 64, bm=32, bn=32, bk=32, num_stages=stages, threads=128), *args)
    close(args[2], want, 2e-2, 2e-2)


@pytest.mark.parametrize("stages", [0, 1])
def test_gemm_unpipelined_all_stages(stages: int) -> None:
    args, want = _gemm_args(64, 64, 64, False, False, "float16")
    assert_stages(
        matmul(64, 64, 64, bm=32, bn=32, bk=32, num_stages=stages, threads=128),
        args,
        lambda out: close(out[2], want, 2e-2, 2e-2),
    )


def test_gemm_dynamic_m_bias_relu_fp32_out() -> None:
    M, N, K = 45, 64, 64
    a, b = rand(M, K, dtype=np.float16), rand(K, N, dtype=np.float16)
    bias = rand(N)
    want = np.maximum(a.astype(np.float64) @ b.astype(np.float64) + bias, 0)
    func = matmul(
        None, N, K, bm=32, bn=32, bk=32, epilogue="bias_relu", out_dtype="float32", threads=128
    )
    assert_stages(
        func,
        [a, b, bias, np.zeros((M, N), np.float32)],
        lambda out: close(out[3], want, 1e-3, 1e-3),
    )


def test_gemm_smem_epilogue() -> None:
    args, want = _gemm_args(64, 64, 64, False, False, "float16")
    func = matmul(64, 64, 64, bm=32, bn=32, bk=32, epilogue="smem", threads=128)
    assert_stages(func, args, lambda out: close(out[2], want, 2e-2, 2e-2))


def _softmax_ref(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("rows_per_block,threads", [(1, 64), (2, 64), (4, 128)])
def test_softmax(rows_per_block: int, threads: int) -> None:
    x = rand(7, 128).astype(np.float64).astype(np.float32)
    assert_stages(
        softmax(128, rows_per_block, threads=threads),
        [x, np.zeros((7, 128), np.float32)],
        lambda out: close(out[1], _softmax_ref(x.astype(np.float64)), 1e-5, 1e-6),
    )


@pytest.mark.parametrize("rows_per_block", [1, 2])
def test_layer_norm(rows_per_block: int) -> None:
    x, w, b = rand(5, 64), rand(64), rand(64)
    x64 = x.astype(np.float64)
    c = x64 - x64.mean(axis=1, keepdims=True)
    want = c / np.sqrt((c * c).mean(axis=1, keepdims=True) + 1e-5) * w + b
    assert_stages(
        layer_norm(64, rows_per_block, threads=64),
        [x, w, b, np.zeros((5, 64), np.float32)],
        lambda out: close(out[3], want, 1e-4, 1e-4),
    )


def test_column_sum() -> None:
    x = rand(37, 64)
    assert_stages(
        column_sum(64, bm=16, bn=64, threads=64),
        [x, np.zeros(64, np.float32)],
        lambda out: close(out[1], x.astype(np.float64).sum(axis=0), 1e-5, 1e-5),
    )


def test_column_sum_atomic() -> None:
    x = rand(37, 128)
    assert_stages(
        column_sum_atomic(128, bm=16, bn=64, threads=64),
        [x, np.zeros(128, np.float32)],
        lambda out: close(out[1], x.astype(np.float64).sum(axis=0), 1e-5, 1e-5),
    )


def test_prefix_sum_rows() -> None:
    x = rand(7, 64)
    assert_stages(
        prefix_sum_rows(64, bm=4, threads=64),
        [x, np.zeros((7, 64), np.float32)],
        lambda out: close(out[1], np.cumsum(x.astype(np.float64), axis=1), 1e-5, 1e-5),
    )


def test_tile_sum_and_max() -> None:
    x = rand(7, 64)
    x64 = x.astype(np.float64)
    want = np.stack([[x64[i : i + 2].sum(), x64[i : i + 2].max()] for i in range(0, 7, 2)])
    assert_stages(
        tile_sum_and_max(64, bm=2, threads=64),
        [x, np.zeros((4, 2), np.float32)],
        lambda out: close(out[1], want, 1e-5, 1e-5),
    )


def _attention_ref(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    q, k, v = (t.astype(np.float64) for t in (q, k, v))
    s = q @ k.transpose(0, 2, 1) / np.sqrt(q.shape[-1])
    return _softmax_ref(s.reshape(-1, s.shape[-1])).reshape(s.shape) @ v


def test_flash_attention_tile_level() -> None:
    q, k, v = (rand(2, 50, 32, dtype=np.float16) for _ in range(3))  # ragged sequence
    o = np.zeros((2, 50, 32), np.float16)
    tsir.interpret(flash_attention(2, 50, 32, bm=32, bn=32, threads=64), q, k, v, o)
    close(o, _attention_ref(q, k, v), 2e-2, 2e-2)


def test_flash_attention_all_stages() -> None:
    q, k, v = (rand(1, 64, 32, dtype=np.float16) for _ in range(3))
    assert_stages(
        flash_attention(1, 64, 32, bm=32, bn=32, threads=64),
        [q, k, v, np.zeros((1, 64, 32), np.float16)],
        lambda out: close(out[3], _attention_ref(q, k, v), 2e-2, 2e-2),
    )
