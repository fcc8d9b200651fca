"""Warp values: T.shfl_xor/down/up/sync and T.warp_reduce_sum/max/min/bitand/bitor (warp.h),
checked at every stage against the interpreter and numpy (CUDA's source-lane and width rules), for
each dtype and several block sizes; misuse is refused; a GPU test compares with torch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ml_dtypes
import numpy as np
import pytest

import tsir
from tsir import T
from tsir.errors import BuildError, DTypeError
from tsir.interpret import DivergentWarpError, InterpretUnsupportedError, check_stages, interpret

NP: dict[str, Any] = {"float16": np.float16, "bfloat16": ml_dtypes.bfloat16}

SHUFFLES: list[tuple[str, Callable[[Any, Any], Any]]] = [
    ("xor5", lambda v, tx: T.shfl_xor(v, 5)),
    ("down3", lambda v, tx: T.shfl_down(v, 3)),
    ("up2", lambda v, tx: T.shfl_up(v, 2)),
    ("idx7w8", lambda v, tx: T.shfl_sync(0xFFFFFFFF, v, 7, 8)),
    ("idx33", lambda v, tx: T.shfl_sync(0xFFFFFFFF, v, 33)),
    ("xor_lane", lambda v, tx: T.shfl_xor(v, tx % 4)),
    ("sum", lambda v, tx: T.warp_reduce_sum(v)),
    ("max", lambda v, tx: T.warp_reduce_max(v)),
    ("min", lambda v, tx: T.warp_reduce_min(v)),
]
BITS: list[tuple[str, Callable[[Any, Any], Any]]] = [
    ("bitand", lambda v, tx: T.warp_reduce_bitand(v)),
    ("bitor", lambda v, tx: T.warp_reduce_bitor(v)),
]


def warp_kernel(
    dtype: str, threads: int, ops: list[tuple[str, Callable[[Any, Any], Any]]]
) -> tsir.PrimFunc:
    with T.prim_func("warp") as f:
        X = T.param("X", (2, threads), dtype)
        Y = T.param("Y", (2, len(ops), threads), dtype)
        with T.Kernel(2, threads=threads) as bx:
            tx = T.get_thread_binding()
            v = T.alloc_var(dtype)
            v[0] = X[bx, tx]
            for k, (_, op) in enumerate(ops):
                Y[bx, k, tx] = op(v[0], tx)
    return f.func


def reference(x: np.ndarray, name: str) -> np.ndarray:
    """One block's expected row for `name` (lanes by CUDA's rules; reductions exact)."""
    n = x.shape[0]
    lane = np.arange(n) % 32
    base = np.arange(n) - lane
    rules = {
        "xor5": (lane ^ 5, np.ones(n, bool)),
        "down3": (lane + 3, lane + 3 < 32),
        "up2": (lane - 2, lane >= 2),
        "idx7w8": (lane // 8 * 8 + 7, np.ones(n, bool)),
        "idx33": (np.full(n, 1), np.ones(n, bool)),
        "xor_lane": (lane ^ (np.arange(n) % 4), np.ones(n, bool)),
    }
    if name in rules:
        src, ok = rules[name]
        return x[base + np.where(ok, src, lane)]
    w = (
        x.astype(np.float64)
        if x.dtype.kind == "f" or x.dtype == ml_dtypes.bfloat16
        else x.astype(np.int64)
    )
    per = w.reshape(-1, 32)
    fn = {
        "sum": lambda a: a.sum(1),
        "max": lambda a: a.max(1),
        "min": lambda a: a.min(1),
        "bitand": lambda a: np.bitwise_and.reduce(a, 1),
        "bitor": lambda a: np.bitwise_or.reduce(a, 1),
    }[name]
    return np.repeat(fn(per), 32)


CASES = [
    ("float32", 64),
    ("float16", 32),
    ("bfloat16", 96),
    ("float64", 64),
    ("int32", 96),
    ("uint32", 32),
    ("int64", 64),
    ("int8", 32),
]


@pytest.mark.parametrize(("dtype", "threads"), CASES)
def test_every_stage_computes_the_warp_ops(dtype: str, threads: int) -> None:
    ops = SHUFFLES + (BITS if not dtype.startswith(("float", "bfloat")) else [])
    func = warp_kernel(dtype, threads, ops)
    npdt = NP.get(dtype, dtype)
    rng = np.random.default_rng(5)
    if np.dtype(npdt).kind in "iu":
        hi = 4 if dtype == "int8" else 1000  # int8 sums stay in range
        x = rng.integers(0, hi, (2, threads)).astype(npdt)
    else:
        x = rng.integers(-64, 64, (2, threads)).astype(npdt)  # exact in every float type
    y = np.zeros((2, len(ops), threads), npdt)
    report = check_stages(func, [x, y])
    assert report.ok, str(report)
    got = report.reference[1]
    for b in range(2):
        for k, (name, _) in enumerate(ops):
            want = reference(x[b], name).astype(npdt)
            np.testing.assert_array_equal(got[b, k], want, err_msg=f"{name} block {b}")


@pytest.mark.parametrize("target", ["sm_80", "sm_90a"])
def test_warp_ops_compile(target: str) -> None:
    for dtype in ("float16", "bfloat16", "int64", "float64"):
        ops = SHUFFLES + (BITS if dtype == "int64" else [])
        kernel = tsir.compile(warp_kernel(dtype, 64, ops), target=target)
        assert kernel.cubin[:4] == b"\x7fELF"
        assert "tsir::warp_reduce_sum(" in kernel.cuda_source


def test_a_partial_warp_is_refused() -> None:
    func = warp_kernel("float32", 48, SHUFFLES[:1])
    with pytest.raises(DivergentWarpError, match="needs whole warps, but the block has 48 threads"):
        interpret(func, np.zeros((2, 48), np.float32), np.zeros((2, 1, 48), np.float32))


def test_a_shuffle_under_a_divergent_branch_is_refused() -> None:
    with T.prim_func("div") as f:
        X = T.param("X", (32,), "float32")
        with T.Kernel(1, threads=32):
            tx = T.get_thread_binding()
            with T.If(tx < 16):
                X[tx] = T.shfl_xor(X[tx], 1)
    with pytest.raises(DivergentWarpError, match="only 16 of the 32 lanes"):
        interpret(f.func, np.zeros(32, np.float32))


def test_a_shuffle_inside_parallel_is_refused_by_the_tile_interpreter() -> None:
    with T.prim_func("par") as f:
        X = T.param("X", (32,), "float32")
        with T.Kernel(1, threads=32):
            for i in T.Parallel(32):
                X[i] = T.shfl_xor(X[i], 1)
    with pytest.raises(InterpretUnsupportedError, match="inside T.Parallel"):
        interpret(f.func, np.zeros(32, np.float32))


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        (
            lambda X, B: T.shfl_sync(0xFFFF, X[0], 1),
            BuildError,
            r"mask 65535 names only some lanes",
        ),
        (
            lambda X, B: T.shfl_xor(B[0], 1),
            DTypeError,
            r"up to 64 bits, got `B\[0\]` of dtype bool",
        ),
        (lambda X, B: T.warp_reduce_bitor(X[0]), DTypeError, r"takes an integer, got `X\[0\]`"),
        (
            lambda X, B: T.shfl_sync(0xFFFFFFFF, X[0], 1, 12),
            BuildError,
            r"width must be a power of two",
        ),
        (lambda X, B: T.shfl_down(X[0], 1.5), DTypeError, r"offset must be an integer"),
    ],
)
def test_misuse_names_the_line(build: Callable[[Any, Any], Any], error: type, message: str) -> None:
    with T.prim_func("f"):
        X = T.param("X", (4,), "float32")
        B = T.param("B", (4,), "bool")
        with T.Kernel(1, threads=32):
            with pytest.raises(error, match=message) as e:
                build(X, B)
    assert e.value.loc is not None and "lambda X, B:" in e.value.loc.line


@pytest.mark.gpu
@pytest.mark.parametrize(
    ("dtype", "threads"), [("float32", 128), ("float16", 64), ("int32", 96), ("int64", 32)]
)
def test_warp_ops_on_the_gpu(dtype: str, threads: int) -> None:
    torch = pytest.importorskip("torch")
    ops = SHUFFLES + (BITS if dtype.startswith("int") else [])
    kernel = tsir.compile(warp_kernel(dtype, threads, ops))
    tdt = getattr(torch, dtype)
    x = torch.randint(-64, 64, (2, threads), device="cuda").to(tdt)
    y = torch.zeros((2, len(ops), threads), device="cuda", dtype=tdt)
    kernel(x, y)
    xs = x.cpu().numpy()
    for b in range(2):
        for k, (name, _) in enumerate(ops):
            want = reference(xs[b], name).astype(xs.dtype)
            np.testing.assert_array_equal(y[b, k].cpu().numpy(), want, err_msg=name)
