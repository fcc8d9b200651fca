"""T.reduce_* derived from the fragment layout itself (tsir/tileop/reduce_plan.py,
reduce_lowering.py): gemm accumulators of every warp policy along rows and columns, row-group
tiles into destinations of another layout, shared tiles as source and/or destination, clear=False
on every kind, and the integer bit reductions. Every pipeline stage agrees with the interpreter
and numpy, for several dtypes, ragged shapes and thread counts; the CUDA compiles for sm_80 and
sm_90a; misuse is refused; a GPU test compares with torch."""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np
import pytest

import tsir
from tsir import T
from tsir.errors import BuildError
from tsir.interpret import check_stages
from tsir.layout import Fragment
from tsir.tileop.reduce_plan import plan_line_reduction

NP: dict[str, Any] = {"float16": np.float16, "bfloat16": ml_dtypes.bfloat16}
KINDS = ("sum", "max", "min", "absmax", "abssum")


def npdt(dtype: str) -> Any:
    return NP.get(dtype, dtype)


def reference(x: np.ndarray, kind: str, axis: int, init: np.ndarray | None) -> np.ndarray:
    w = x.astype(np.float64) if x.dtype.kind in "fV" else x.astype(np.int64)
    if kind in ("absmax", "abssum"):
        w = np.abs(w)
    fn = {
        "sum": np.sum,
        "abssum": np.sum,
        "max": np.max,
        "absmax": np.max,
        "min": np.min,
        "bitand": np.bitwise_and.reduce,
        "bitor": np.bitwise_or.reduce,
        "bitxor": np.bitwise_xor.reduce,
    }[kind]
    r = fn(w, axis=axis)
    if init is not None:
        i = init.astype(w.dtype)
        combine = {
            "sum": np.add,
            "abssum": np.add,
            "max": np.maximum,
            "absmax": np.maximum,
            "min": np.minimum,
            "bitand": np.bitwise_and,
            "bitor": np.bitwise_or,
            "bitxor": np.bitwise_xor,
        }[kind]
        r = combine(i, r)
    return r


def gemm_reduce(
    m: int, n: int, policy: str, threads: int, kind: str, dim: int, clear: bool
) -> tsir.PrimFunc:
    """R = reduce(A @ B, dim) on a gemm accumulator (R starts from Init when clear=False)."""
    k = 32
    out = n if dim == 0 else m
    with T.prim_func("gemm_reduce") as f:
        A = T.param("A", (m, k), "float16")
        B = T.param("B", (k, n), "float16")
        Init = T.param("Init", (out,), "float32")
        R = T.param("R", (out,), "float32")
        with T.Kernel(1, threads=threads):
            A_s = T.alloc_shared((m, k), "float16")
            B_s = T.alloc_shared((k, n), "float16")
            C_f = T.alloc_fragment((m, n), "float32")
            r = T.alloc_fragment((out,), "float32")
            T.copy(A, A_s)
            T.copy(B, B_s)
            T.gemm(A_s, B_s, C_f, clear_accum=True, policy=policy)
            if not clear:
                T.copy(Init, r)
            T.reduce(C_f, r, dim, kind, clear)
            T.copy(r, R)
    return f.func


GEMMS = [
    # (m, n, policy, threads)
    (64, 64, "square", 128),
    (64, 64, "full_row", 128),
    (64, 128, "square", 256),
    (32, 64, "square", 64),
    (128, 32, "full_row", 256),
]


@pytest.mark.parametrize(("m", "n", "policy", "threads"), GEMMS)
@pytest.mark.parametrize("dim", [1, 0])
def test_gemm_accumulators_reduce_along_rows_and_columns(
    m: int, n: int, policy: str, threads: int, dim: int
) -> None:
    rng = np.random.default_rng(m + n + dim)
    a = rng.standard_normal((m, 32)).astype(np.float16)
    b = rng.standard_normal((32, n)).astype(np.float16)
    out = n if dim == 0 else m
    for kind, clear in (
        ("sum", True),
        ("max", False),
        ("absmax", True),
        ("min", False),
        ("abssum", False),
    ):
        init = rng.standard_normal(out).astype(np.float32)
        func = gemm_reduce(m, n, policy, threads, kind, dim, clear)
        report = check_stages(func, [a, b, init, np.zeros(out, np.float32)])
        assert report.ok, f"{kind} clear={clear}\n{report}"
        c = a.astype(np.float64) @ b.astype(np.float64)
        want = reference(c, kind, dim, None if clear else init)
        np.testing.assert_allclose(report.reference[3], want, rtol=1e-4, atol=1e-3, err_msg=kind)


def fragment_reduce(
    shape: tuple[int, ...],
    dtype: str,
    threads: int,
    kind: str,
    dim: int,
    clear: bool,
    src: str,
    dst: str,
    dst_layout: str = "free",
) -> tsir.PrimFunc:
    """R = reduce(X, dim): the source in a fragment or a shared tile, the result into a fragment
    (its free layout, or pinned fully replicated) or a shared tile."""
    out_shape = tuple(d for k, d in enumerate(shape) if k != dim) or (1,)
    with T.prim_func("reduce") as f:
        X = T.param("X", shape, dtype)
        Init = T.param("Init", out_shape, dtype)
        R = T.param("R", out_shape, dtype)
        with T.Kernel(1, threads=threads):
            x = (
                T.alloc_fragment(shape, dtype)
                if src == "fragment"
                else T.alloc_shared(shape, dtype)
            )
            r = (
                T.alloc_fragment(out_shape, dtype)
                if dst == "fragment"
                else T.alloc_shared(out_shape, dtype)
            )
            if dst_layout == "replicated":
                T.annotate_layout({r: Fragment.fully_replicated(out_shape, threads)})
            T.copy(X, x)
            if not clear:
                T.copy(Init, r)
            T.reduce(x, r, dim, kind, clear)
            T.copy(r, R)
    return f.func


CASES = [
    # (shape, dtype, threads, src, dst, dst_layout)
    ((8, 64), "float32", 128, "fragment", "fragment", "replicated"),
    ((3, 40), "float32", 64, "fragment", "shared", "free"),
    ((5, 37), "float16", 96, "shared", "shared", "free"),
    ((6, 33), "bfloat16", 128, "shared", "fragment", "free"),
    ((200,), "float32", 64, "shared", "fragment", "replicated"),
    ((96,), "float32", 128, "fragment", "shared", "free"),
    ((16, 8), "float32", 32, "fragment", "fragment", "free"),
    ((40, 3), "float16", 64, "shared", "shared", "free"),
]


@pytest.mark.parametrize(("shape", "dtype", "threads", "src", "dst", "layout"), CASES)
def test_every_source_and_destination(
    shape: tuple[int, ...], dtype: str, threads: int, src: str, dst: str, layout: str
) -> None:
    rng = np.random.default_rng(sum(shape) + threads)
    x = rng.integers(-9, 9, shape).astype(npdt(dtype))  # sums stay exact in every dtype
    dims = (1, 0) if len(shape) == 2 else (0,)
    for dim in dims:
        out_shape = tuple(d for k, d in enumerate(shape) if k != dim) or (1,)
        for kind, clear in (("sum", True), ("max", False), ("min", True), ("abssum", False)):
            init = rng.integers(-9, 9, out_shape).astype(npdt(dtype))
            func = fragment_reduce(shape, dtype, threads, kind, dim, clear, src, dst, layout)
            report = check_stages(func, [x, init, np.zeros(out_shape, npdt(dtype))])
            assert report.ok, f"{kind} dim={dim} clear={clear}\n{report}"
            want = reference(x, kind, dim if len(shape) == 2 else 0, None if clear else init)
            got = report.reference[2].astype(np.float64).reshape(np.shape(want))
            np.testing.assert_array_equal(got, want, err_msg=f"{kind} dim={dim}")


@pytest.mark.parametrize("kind", ["bitand", "bitor", "bitxor"])
@pytest.mark.parametrize(
    ("dtype", "src", "dst"),
    [
        ("int32", "fragment", "fragment"),
        ("uint32", "shared", "fragment"),
        ("int64", "fragment", "shared"),
        ("int32", "shared", "shared"),
    ],
)
def test_bit_reductions(kind: str, dtype: str, src: str, dst: str) -> None:
    rng = np.random.default_rng(9)
    x = rng.integers(0, 2**30, (8, 48)).astype(dtype)
    for dim in (1, 0):
        out = (48,) if dim == 0 else (8,)
        for clear in (True, False):
            init = rng.integers(0, 2**30, out).astype(dtype)
            func = fragment_reduce((8, 48), dtype, 64, kind, dim, clear, src, dst)
            report = check_stages(func, [x, init, np.zeros(out, dtype)])
            assert report.ok, str(report)
            np.testing.assert_array_equal(
                report.reference[2], reference(x, kind, dim, None if clear else init).astype(dtype)
            )


@pytest.mark.parametrize("target", ["sm_80", "sm_90a"])
def test_reductions_compile(target: str) -> None:
    funcs = [
        gemm_reduce(64, 64, "square", 128, "max", 0, False),
        gemm_reduce(64, 128, "square", 256, "sum", 1, True),
        fragment_reduce(
            (8, 64), "float16", 128, "sum", 1, False, "fragment", "fragment", "replicated"
        ),
        fragment_reduce((5, 37), "bfloat16", 96, "absmax", 0, True, "shared", "fragment"),
        fragment_reduce((8, 48), "int64", 64, "bitxor", 1, False, "fragment", "shared"),
    ]
    for func in funcs:
        assert tsir.compile(func, target=target).cubin[:4] == b"\x7fELF"


def test_the_square_accumulator_exchanges_across_warps_through_shared_memory() -> None:
    """A 2 x 2-warp accumulator: each row sits in 4 lanes of 2 warps (butterflies over lane bits
    1 and 2, then thread bit 32 through shared memory)."""
    from tsir.layout import make_mma_c_fragment

    plan = plan_line_reduction(make_mma_c_fragment(64, 64, 32, 32), 1, 128)
    assert plan.lane_masks == (1, 2) and plan.warp_bits == (32,)
    assert plan.layout.replicate_size == 8 and len(plan.classes) == 4


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda F, S, L, I: T.reduce_bitand(F, S),
            r"T.reduce_bitand takes integers; `S` is float32",
        ),
        (
            lambda F, S, L, I: T.reduce_sum(F, L),
            r"must be a fragment \(T.alloc_fragment\) or a shared tile",
        ),
        (lambda F, S, L, I: T.reduce_max(F[0:2, :], S), r"the source must be a whole buffer"),
        (lambda F, S, L, I: T.reduce_sum(F, I, dim=0), r"gives shape \(8,\), but `I` is \(4,\)"),
    ],
)
def test_misuse_names_the_line(build: Any, message: str) -> None:
    with T.prim_func("f"):
        with T.Kernel(1, threads=32):
            F = T.alloc_fragment((4, 8), "float32")
            S = T.alloc_shared((4,), "float32")
            L = T.alloc_local((4,), "float32")
            I = T.alloc_fragment((4,), "int32")  # noqa: E741
            with pytest.raises(BuildError, match=message) as e:
                build(F, S, L, I)
    assert e.value.loc is not None and "lambda F, S, L, I:" in e.value.loc.line


@pytest.mark.gpu
@pytest.mark.parametrize(("m", "n", "policy", "threads"), GEMMS)
@pytest.mark.parametrize("dim", [1, 0])
def test_gemm_reductions_on_the_gpu(m: int, n: int, policy: str, threads: int, dim: int) -> None:
    torch = pytest.importorskip("torch")
    a = torch.randn(m, 32, device="cuda", dtype=torch.float16)
    b = torch.randn(32, n, device="cuda", dtype=torch.float16)
    c = a.double() @ b.double()
    out = n if dim == 0 else m
    for kind, clear in (("sum", True), ("max", False), ("absmax", True), ("min", False)):
        init = torch.randn(out, device="cuda")
        r = torch.full((out,), float("nan"), device="cuda")
        tsir.compile(gemm_reduce(m, n, policy, threads, kind, dim, clear))(a, b, init, r)
        ref = {
            "sum": c.sum(dim),
            "max": c.amax(dim),
            "absmax": c.abs().amax(dim),
            "min": c.amin(dim),
        }[kind]
        if not clear:
            ref = (
                torch.maximum(init.double(), ref)
                if kind == "max"
                else torch.minimum(init.double(), ref)
            )
        torch.testing.assert_close(r.double(), ref, rtol=1e-3, atol=1e-2)


@pytest.mark.gpu
@pytest.mark.parametrize(("shape", "dtype", "threads", "src", "dst", "layout"), CASES)
def test_shared_and_fragment_reductions_on_the_gpu(
    shape: tuple[int, ...], dtype: str, threads: int, src: str, dst: str, layout: str
) -> None:
    torch = pytest.importorskip("torch")
    tdt = getattr(torch, dtype)
    hi = 3 if dtype in ("float16", "bfloat16") else 9  # sums stay exact whatever their order
    x = torch.randint(-hi, hi, shape, device="cuda").to(tdt)
    for dim in (1, 0) if len(shape) == 2 else (0,):
        out_shape = tuple(d for k, d in enumerate(shape) if k != dim) or (1,)
        init = torch.randint(-hi, hi, out_shape, device="cuda").to(tdt)
        r = torch.zeros(out_shape, device="cuda", dtype=tdt)
        tsir.compile(fragment_reduce(shape, dtype, threads, "sum", dim, False, src, dst, layout))(
            x, init, r
        )
        want = init.double() + x.double().sum(dim if len(shape) == 2 else 0)
        assert torch.equal(r.double().reshape(want.shape), want)


@pytest.mark.parametrize(("bm", "bn", "wm", "wn"), [(64, 64, 64, 64), (128, 256, 64, 128)])
def test_a_wgmma_accumulator_layout_reduces_too(bm: int, bn: int, wm: int, wn: int) -> None:
    """The Hopper wgmma accumulator is a Fragment like any other: a tile laid out as one (here
    filled by a copy, so it runs on any target) reduces along rows and columns."""
    from tsir.layout.wgmma_layouts import make_wgmma_c_fragment

    layout = make_wgmma_c_fragment(bm, bn, wm, wn)
    threads = layout.thread_extent
    x = np.random.default_rng(bm + bn).integers(-9, 9, (bm, bn)).astype(np.float32)
    for dim in (1, 0):
        out = bn if dim == 0 else bm
        with T.prim_func("wg") as f:
            X = T.param("X", (bm, bn), "float32")
            R = T.param("R", (out,), "float32")
            with T.Kernel(1, threads=threads):
                acc = T.alloc_fragment((bm, bn), "float32")
                r = T.alloc_fragment((out,), "float32")
                T.annotate_layout({acc: layout})
                T.copy(X, acc)
                T.reduce_sum(acc, r, dim=dim)
                T.copy(r, R)
        report = check_stages(f.func, [x, np.zeros(out, np.float32)])
        assert report.ok, str(report)
        np.testing.assert_array_equal(report.reference[1], x.sum(axis=dim))
