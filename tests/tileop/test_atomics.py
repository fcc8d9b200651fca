"""Atomics (tsir/tileop/atomic_{add,max,min}.py, tsir/builder/atomic_lang.py, tsir/atomic.h):
T.atomic_add/max/min on one element (every memory order, return_prev) and on regions (fragment,
shared and global sources, ragged global destinations that need guards), and the vector adds
T.atomic_addx2/x4. Every pipeline stage agrees with the interpreter, for each dtype atomics take
and several thread counts; the CUDA compiles for sm_80 and sm_90a; float32 vector atomics are
refused on sm_80 at the user's line; misuse is refused; GPU tests compare with torch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ml_dtypes
import numpy as np
import pytest

import tsir
from tsir import T
from tsir.errors import BuildError, DTypeError, UnsupportedError
from tsir.interpret import MisalignedAccessError, check_stages, interpret
from tsir.printer import print_func, rebuild

NP: dict[str, Any] = {"float16": np.float16, "bfloat16": ml_dtypes.bfloat16}
DTYPES = ("int32", "uint32", "int64", "uint64", "float16", "bfloat16", "float32", "float64")
ORDERS = (None, "relaxed", "consume", "acquire", "release", "acq_rel", "seq_cst")


def npdt(dtype: str) -> Any:
    return NP.get(dtype, dtype)


def contended(dtype: str, n: int, threads: int, order: Any) -> tsir.PrimFunc:
    """Every element of X (4 blocks x n) updates C[0] (max), C[1] (min), C[2] (add); each also
    reads back the previous value of its own element of D (return_prev) into P."""
    with T.prim_func("contended") as f:
        X = T.param("X", (4, n), dtype)
        C = T.param("C", (3,), dtype)
        D = T.param("D", (4, n), dtype)
        P = T.param("P", (4, n), dtype)
        with T.Kernel(4, threads=threads) as bx:
            for i in T.Parallel(n):
                T.atomic_max(C[0], X[bx, i], memory_order=order)
                T.atomic_min(C[1], X[bx, i], memory_order=order)
                T.atomic_add(C[2], X[bx, i], memory_order=order)
                P[bx, i] = T.atomic_max(D[bx, i], X[bx, i], memory_order=order, return_prev=True)
    return f.func


def _contended_inputs(dtype: str, n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(2)
    hi = 2 if dtype == "bfloat16" else 8  # sums stay exact (bfloat16: integers up to 256)
    x = rng.integers(0, hi, (4, n)).astype(npdt(dtype))
    c = np.array([0, 100, 1], npdt(dtype))
    d = rng.integers(0, 8, (4, n)).astype(npdt(dtype))
    return [x, c, d, np.zeros((4, n), npdt(dtype))]


@pytest.mark.parametrize("dtype", DTYPES)
def test_element_atomics_at_every_stage(dtype: str) -> None:
    n, threads = 37, 32 if dtype in ("int64", "uint64") else 64
    func = contended(dtype, n, threads, "acq_rel")
    args = _contended_inputs(dtype, n)
    report = check_stages(func, args)
    assert report.ok, str(report)
    x, d = args[0].astype(np.float64), args[2].astype(np.float64)
    c = report.reference[1].astype(np.float64)
    assert c[0] == x.max() and c[1] == x.min() and c[2] == 1 + x.sum()
    np.testing.assert_array_equal(report.reference[2].astype(np.float64), np.maximum(d, x))
    np.testing.assert_array_equal(report.reference[3].astype(np.float64), d)


@pytest.mark.parametrize("order", ORDERS)
def test_every_memory_order(order: Any) -> None:
    func = contended("float32", 50, 96, order)
    args = _contended_inputs("float32", 50)
    report = check_stages(func, args)
    assert report.ok, str(report)
    source = tsir.compile(func, target="sm_80").cuda_source
    oid = ORDERS.index(order) - 1 if order is not None else 0
    assert f"tsir::atomic_max<{oid}>(" in source
    assert ("atomicAdd(&C[2]" in source) == (oid == 0)


def region_kernel(
    kind: str, scope: str, dtype: str, n: int, tile: int, threads: int, order: Any = None
) -> tsir.PrimFunc:
    """C[b*tile : (b+1)*tile] op= X[b*tile : ...] for ceil(n / tile) blocks over a ragged n, the
    source staged in a fragment or a shared tile (or read from global memory)."""
    op = {"add": T.atomic_add, "max": T.atomic_max, "min": T.atomic_min}[kind]
    blocks = -(-n // tile)
    with T.prim_func("region") as f:
        X = T.param("X", (n,), dtype)
        C = T.param("C", (n,), dtype)
        with T.Kernel(blocks, threads=threads) as bx:
            if scope == "global":
                op(
                    C[bx * tile : (bx + 1) * tile],
                    X[bx * tile : (bx + 1) * tile],
                    memory_order=order,
                )
            else:
                alloc = T.alloc_fragment if scope == "fragment" else T.alloc_shared
                S = alloc((tile,), dtype)
                T.copy(X[bx * tile], S)
                op(C[bx * tile], S, memory_order=order)
    return f.func


@pytest.mark.parametrize("kind", ["add", "max", "min"])
@pytest.mark.parametrize("scope", ["fragment", "shared", "global"])
@pytest.mark.parametrize(("dtype", "threads"), [("float32", 64), ("int32", 128), ("bfloat16", 96)])
def test_region_atomics_on_ragged_shapes(kind: str, scope: str, dtype: str, threads: int) -> None:
    n, tile = 200, 64  # the last block's region ends past C: its atomics are guarded
    func = region_kernel(kind, scope, dtype, n, tile, threads, "release")
    rng = np.random.default_rng(4)
    x = rng.integers(-8, 8, n).astype(npdt(dtype))
    c = rng.integers(-8, 8, n).astype(npdt(dtype))
    report = check_stages(func, [x, c.copy()])
    assert report.ok, str(report)
    want = {"add": c.astype(np.float64) + x, "max": np.maximum(c, x), "min": np.minimum(c, x)}[kind]
    np.testing.assert_array_equal(
        report.reference[1].astype(np.float64), np.asarray(want, np.float64)
    )


def test_region_atomic_prints_and_rebuilds() -> None:
    func = region_kernel("max", "fragment", "float32", 128, 64, 64, "seq_cst")
    text = print_func(func)
    assert 'T.atomic_max(C[bx * 64], S, memory_order="seq_cst")' in text
    tsir.assert_structural_equal(rebuild(text), func)


def vector_kernel(
    n_vec: int, dtype: str, scope: str, n: int = 64, threads: int = 32
) -> tsir.PrimFunc:
    """C[2b .. 2b+n_vec) += X[b, ...] for every block b through one vector atomic per thread."""
    op = T.atomic_addx2 if n_vec == 2 else T.atomic_addx4
    with T.prim_func("vec") as f:
        X = T.param("X", (4, n), dtype)
        C = T.param("C", (n,), dtype)
        with T.Kernel(4, threads=threads) as bx:
            if scope == "shared":
                S = T.alloc_shared((n,), dtype)
                T.fill(S, 0)
                for i in T.Parallel(n // n_vec):
                    op(S[i * n_vec], X[bx, i * n_vec])
                T.atomic_add(C[0], S)
            else:
                for i in T.Parallel(n // n_vec):
                    op(C[i * n_vec : (i + 1) * n_vec], X[bx, i * n_vec : (i + 1) * n_vec])
    return f.func


@pytest.mark.parametrize(
    ("n_vec", "dtype", "scope"),
    [
        (2, "float16", "global"),
        (2, "bfloat16", "global"),
        (2, "float16", "shared"),
        (2, "float32", "global"),
        (4, "float32", "global"),
    ],
)
def test_vector_atomics(n_vec: int, dtype: str, scope: str) -> None:
    func = vector_kernel(n_vec, dtype, scope, threads=64 if scope == "shared" else 32)
    rng = np.random.default_rng(6)
    x = rng.integers(-4, 4, (4, 64)).astype(npdt(dtype))
    c = rng.integers(-4, 4, 64).astype(npdt(dtype))
    report = check_stages(func, [x, c.copy()], target="sm_90a")
    assert report.ok, str(report)
    np.testing.assert_array_equal(
        report.reference[1].astype(np.float64), c.astype(np.float64) + x.astype(np.float64).sum(0)
    )
    targets = ("sm_90a",) if dtype == "float32" else ("sm_80", "sm_90a")
    for target in targets:
        assert tsir.compile(func, target=target).cubin[:4] == b"\x7fELF"


def test_float32_vector_atomics_are_refused_before_sm90() -> None:
    func = vector_kernel(4, "float32", "global")
    with pytest.raises(
        UnsupportedError,
        match=r"float2/float4 atomicAdd \(sm_90 and later\) is not available on sm_80",
    ) as e:
        tsir.lower(func, "sm_80")
    assert e.value.loc is not None and e.value.loc.filename == __file__
    assert "op(C[i * n_vec" in e.value.loc.line


def test_a_misaligned_vector_atomic_is_reported() -> None:
    with T.prim_func("mis") as f:
        C = T.param("C", (64,), "float16")
        with T.Kernel(1, threads=32):
            tx = T.get_thread_binding()
            T.atomic_addx2(C[tx * 2 + 1], C[0])
    with pytest.raises(MisalignedAccessError, match="not a multiple of 4"):
        interpret(f.func, np.zeros(64, np.float16))


@pytest.mark.parametrize("target", ["sm_80", "sm_90a"])
def test_atomics_compile(target: str) -> None:
    for dtype in DTYPES:
        kernel = tsir.compile(contended(dtype, 40, 64, "seq_cst"), target=target)
        assert kernel.cubin[:4] == b"\x7fELF", dtype
    for kind in ("add", "max", "min"):
        assert tsir.compile(
            region_kernel(kind, "fragment", "float16", 100, 64, 64, "acquire"), target=target
        ).cubin


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        (
            lambda C, B, S, F: T.atomic_add(B[0], 1),
            DTypeError,
            r"`B` is int8; atomics update int32",
        ),
        (
            lambda C, B, S, F: T.atomic_max(F[0], 1.0),
            BuildError,
            r"`F` is local.fragment; atomics need global or shared",
        ),
        (
            lambda C, B, S, F: T.atomic_add(C, 1.0),
            BuildError,
            r"adding one value to every element of a region",
        ),
        (
            lambda C, B, S, F: T.atomic_min(C[0], S, return_prev=True),
            BuildError,
            r"needs one element, not a region",
        ),
        (
            lambda C, B, S, F: T.atomic_max(C[0], 1.0, memory_order="strong"),
            BuildError,
            r"memory_order must be one of 'relaxed'",
        ),
        (
            lambda C, B, S, F: T.atomic_add(C[0], S, use_tma=True),
            UnsupportedError,
            r"TMA reductions",
        ),
        (
            lambda C, B, S, F: T.atomic_addx4(S[0], C[0]),
            BuildError,
            r"`S` is shared.dyn; float32 vector atomics exist in global memory only",
        ),
        (
            lambda C, B, S, F: T.atomic_addx2(C[0], C[0], return_prev=True),
            BuildError,
            r"the previous values form a vector",
        ),
        (
            lambda C, B, S, F: T.atomic_addx2(B[0], B[0]),
            DTypeError,
            r"T.atomic_addx2 updates float16, bfloat16 or float32",
        ),
        (
            lambda C, B, S, F: T.atomic_addx2(C[0:3], C[0:3]),
            BuildError,
            r"must hold 2 consecutive elements",
        ),
    ],
)
def test_misuse_names_the_line(build: Callable[..., Any], error: type, message: str) -> None:
    with T.prim_func("f"):
        C = T.param("C", (64,), "float32")
        B = T.param("B", (64,), "int8")
        with T.Kernel(1, threads=32):
            S = T.alloc_shared((64,), "float32")
            F = T.alloc_fragment((64,), "float32")
            with pytest.raises(error, match=message) as e:
                build(C, B, S, F)
    assert e.value.loc is not None and "lambda C, B, S, F:" in e.value.loc.line


def test_an_odd_last_dimension_is_refused_for_vector_atomics() -> None:
    with T.prim_func("f"):
        C = T.param("C", (7,), "float16")
        with T.Kernel(1, threads=32):
            with pytest.raises(
                BuildError, match=r"last dimension of `C` \(7\) is not a multiple of 2"
            ):
                T.atomic_addx2(C[0], C[2])


@pytest.mark.gpu
@pytest.mark.parametrize(
    "dtype", [d for d in DTYPES if not d.startswith("uint")]
)  # torch: no uint arithmetic
def test_element_atomics_on_the_gpu(dtype: str) -> None:
    torch = pytest.importorskip("torch")
    narrow = dtype in ("float16", "bfloat16")
    n = 50 if narrow else 1000  # 16-bit sums stay exact (bfloat16: integers up to 256)
    kernel = tsir.compile(contended(dtype, n, 128, "seq_cst"))
    tdt = getattr(torch, dtype)
    x = torch.randint(0, 2 if narrow else 8, (4, n), device="cuda").to(tdt)
    c = torch.tensor([0, 100, 1], device="cuda").to(tdt)
    d = torch.randint(0, 8, (4, n), device="cuda").to(tdt)
    p = torch.zeros_like(d)
    d0 = d.clone()
    kernel(x, c, d, p)
    xd = x.double()
    assert c[0].item() == xd.max().item() and c[1].item() == xd.min().item()
    assert c[2].item() == 1 + xd.sum().item()
    assert torch.equal(d, torch.maximum(d0, x)) and torch.equal(p, d0)


@pytest.mark.gpu
@pytest.mark.parametrize("kind", ["add", "max", "min"])
@pytest.mark.parametrize("scope", ["fragment", "shared", "global"])
def test_region_atomics_on_the_gpu(kind: str, scope: str) -> None:
    torch = pytest.importorskip("torch")
    n = 1000
    kernel = tsir.compile(region_kernel(kind, scope, "float32", n, 128, 128, "release"))
    x = torch.randn(n, device="cuda")
    c = torch.randn(n, device="cuda")
    want = {"add": c + x, "max": torch.maximum(c, x), "min": torch.minimum(c, x)}[kind]
    kernel(x, c)
    torch.testing.assert_close(c, want)


@pytest.mark.gpu
@pytest.mark.parametrize(
    ("n_vec", "dtype", "scope"),
    [
        (2, "float16", "global"),
        (2, "bfloat16", "shared"),
        (2, "float32", "global"),
        (4, "float32", "global"),
    ],
)
def test_vector_atomics_on_the_gpu(n_vec: int, dtype: str, scope: str) -> None:
    torch = pytest.importorskip("torch")
    kernel = tsir.compile(vector_kernel(n_vec, dtype, scope, threads=64))
    tdt = getattr(torch, dtype)
    x = torch.randint(-4, 4, (4, 64), device="cuda").to(tdt)
    c = torch.randint(-4, 4, (64,), device="cuda").to(tdt)
    want = c.double() + x.double().sum(0)
    kernel(x, c)
    assert torch.equal(c.double(), want)


def test_a_one_element_region_is_updated_once() -> None:
    """Regression: an op on a one-element region of memory ran in every thread (64 atomic adds
    instead of one; a race for a copy into shared memory); now thread 0 does it."""
    with T.prim_func("one") as f:
        A = T.param("A", (1,), "float32")
        C = T.param("C", (1,), "float32")
        with T.Kernel(1, threads=64):
            S = T.alloc_shared((1,), "float32")
            T.copy(A, S)
            T.atomic_add(C[0:1], S)
    report = check_stages(f.func, [np.ones(1, np.float32), np.zeros(1, np.float32)])
    assert report.ok, str(report)
    assert report.reference[1][0] == 1.0
