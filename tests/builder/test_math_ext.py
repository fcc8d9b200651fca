"""Element math: T.sigmoid, T.erf, T.pow, T.fma, T.clamp, T.isnan/T.isinf, T.reinterpret, T.tan,
T.exp10, T.log10 and the fast-math intrinsics (T.__exp, ...). Every pipeline stage agrees with the
interpreter (numpy semantics) for each float dtype, on ragged shapes and several thread counts;
the CUDA compiles with NVRTC for sm_80 and sm_90a; misuse names the user's line; a GPU test
compares with torch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ml_dtypes
import numpy as np
import pytest

import tsir
from tsir import T
from tsir.errors import DTypeError
from tsir.interpret import check_stages

NP = {
    "float16": np.float16,
    "bfloat16": ml_dtypes.bfloat16,
    "float32": np.float32,
    "float64": np.float64,
}
FLOATS = tuple(NP)

# name -> (builder expression of x, numpy reference in float64)
UNARY: dict[str, tuple[Callable[[Any], Any], Callable[[np.ndarray], np.ndarray]]] = {
    "sigmoid": (lambda x: T.sigmoid(x), lambda x: 1 / (1 + np.exp(-x))),
    "erf": (lambda x: T.erf(x), lambda x: np.vectorize(__import__("math").erf)(x)),
    "pow": (lambda x: T.pow(T.abs(x), 1.5), lambda x: np.abs(x) ** 1.5),
    "fma": (lambda x: T.fma(x, x, 0.5), lambda x: x * x + 0.5),
    "clamp": (lambda x: T.clamp(x, -0.5, 0.5), lambda x: np.clip(x, -0.5, 0.5)),
    "tan": (lambda x: T.tan(x), np.tan),
    "exp10": (lambda x: T.exp10(x), lambda x: 10.0**x),
    "log10": (lambda x: T.log10(T.abs(x) + 1), lambda x: np.log10(np.abs(x) + 1)),
    "__exp": (lambda x: T.__exp(x), np.exp),
    "__exp10": (lambda x: T.__exp10(x), lambda x: 10.0**x),
    "__log": (lambda x: T.__log(T.abs(x) + 1), lambda x: np.log(np.abs(x) + 1)),
    "__log2": (lambda x: T.__log2(T.abs(x) + 1), lambda x: np.log2(np.abs(x) + 1)),
    "__log10": (lambda x: T.__log10(T.abs(x) + 1), lambda x: np.log10(np.abs(x) + 1)),
    "__tan": (lambda x: T.__tan(x), np.tan),
    "__cos": (lambda x: T.__cos(x), np.cos),
    "__sin": (lambda x: T.__sin(x), np.sin),
}
NAMES = tuple(UNARY)


def math_kernel(n: int, dtype: str, threads: int) -> tsir.PrimFunc:
    """Y[k, i] = UNARY[k](X[i]); F[0, i] = isnan(X[i]), F[1, i] = isinf(X[i]), over a ragged n."""
    with T.prim_func("math") as f:
        X = T.param("X", (n,), dtype)
        Y = T.param("Y", (len(NAMES), n), dtype)
        F = T.param("F", (2, n), "bool")
        with T.Kernel(1, threads=threads):
            for i in T.Parallel(n):
                for k, name in enumerate(NAMES):
                    Y[k, i] = UNARY[name][0](X[i])
                F[0, i] = T.isnan(X[i])
                F[1, i] = T.isinf(X[i])
    return f.func


def _inputs(n: int, dtype: str) -> list[np.ndarray]:
    x = np.random.default_rng(3).uniform(-1.5, 1.5, n).astype(NP[dtype])
    x[1], x[2], x[4] = np.nan, np.inf, -np.inf
    return [x, np.zeros((len(NAMES), n), NP[dtype]), np.zeros((2, n), bool)]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize(("n", "threads"), [(100, 64), (37, 96)])
def test_every_stage_computes_the_math(dtype: str, n: int, threads: int) -> None:
    func = math_kernel(n, dtype, threads)
    args = _inputs(n, dtype)
    report = check_stages(func, args)
    assert report.ok, str(report)
    x = args[0].astype(np.float64)
    y, flags = report.reference[1], report.reference[2]
    tol = {"float16": 2e-3, "bfloat16": 1.6e-2, "float32": 1e-5, "float64": 1e-12}[dtype]
    finite = np.isfinite(x)
    with np.errstate(all="ignore"):
        for k, name in enumerate(NAMES):
            want = UNARY[name][1](x).astype(NP[dtype]).astype(np.float64)
            got = y[k].astype(np.float64)
            np.testing.assert_allclose(got[finite], want[finite], rtol=tol, atol=tol, err_msg=name)
    np.testing.assert_array_equal(flags[0], np.isnan(x))
    np.testing.assert_array_equal(flags[1], np.isinf(x))


@pytest.mark.parametrize("target", ["sm_80", "sm_90a"])
@pytest.mark.parametrize("dtype", FLOATS)
def test_math_compiles(dtype: str, target: str) -> None:
    kernel = tsir.compile(math_kernel(64, dtype, 64), target=target)
    assert kernel.cubin[:4] == b"\x7fELF"
    if dtype == "float32":
        for fn in ("__expf", "__exp10f", "__logf", "__sinf", "erff", "tsir::is_nan"):
            assert fn in kernel.cuda_source, fn


def reinterpret_kernel(pairs: list[tuple[str, str]], n: int) -> tsir.PrimFunc:
    with T.prim_func("bits") as f:
        ins = [T.param(f"X{k}", (n,), a) for k, (a, _) in enumerate(pairs)]
        outs = [T.param(f"Y{k}", (n,), b) for k, (_, b) in enumerate(pairs)]
        with T.Kernel(1, threads=32):
            for i in T.Parallel(n):
                for x, y in zip(ins, outs):
                    y[i] = T.reinterpret(y.dtype, x[i])
    return f.func


PAIRS = [
    ("float32", "int32"),
    ("int32", "float32"),
    ("float32", "uint32"),
    ("float16", "int16"),
    ("uint16", "bfloat16"),
    ("float64", "int64"),
    ("int64", "float64"),
]


# Random bits include NaN patterns, which the stage comparison casts: numpy warns, harmlessly.
@pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning")
def test_reinterpret_keeps_the_bits() -> None:
    func = reinterpret_kernel(PAIRS, 45)
    rng = np.random.default_rng(1)
    xs = []
    for a, _ in PAIRS:
        dt = np.dtype(NP.get(a, a))
        xs.append(rng.integers(0, 255, 45 * dt.itemsize, dtype=np.uint8).view(dt).copy())
    ys = [np.zeros(45, NP.get(b, b)) for _, b in PAIRS]
    report = check_stages(func, [*xs, *ys])
    assert report.ok, str(report)
    for x, y in zip(xs, report.reference[len(xs) :]):
        np.testing.assert_array_equal(y.view(np.uint8), x.view(np.uint8))
    for target in ("sm_80", "sm_90a"):
        assert tsir.compile(func, target=target).cubin[:4] == b"\x7fELF"


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda F, I: T.pow(F[0], I[0]), r"T.pow mixes float32 .* and int32"),
        (lambda F, I: T.fma(I[0], I[0], 1), r"T.fma needs floating-point operands, got int32"),
        (lambda F, I: T.sigmoid(I[0]), r"T.sigmoid needs floating-point operands"),
        (
            lambda F, I: T.reinterpret("float16", F[0]),
            r"`F\[0\]` is float32 \(32 bits\), float16 has 16",
        ),
        (lambda F, I: T.reinterpret("bool", I[0]), r"must be a scalar number type, got bool"),
        (lambda F, I: T.erf(I[0]), r"T.erf needs a floating-point operand"),
        (lambda F, I: T.__exp(I[0]), r"T.__exp needs a floating-point operand"),
    ],
)
def test_misuse_names_the_line(build: Callable[[Any, Any], Any], message: str) -> None:
    with T.prim_func("f"):
        F = T.param("F", (4,), "float32")
        I = T.param("I", (4,), "int32")  # noqa: E741
        with T.Kernel(1, threads=32):
            with pytest.raises(DTypeError, match=message) as e:
                build(F, I)
    # The user's line is the lambda in the parameter list above, which made the call.
    assert e.value.loc is not None and e.value.loc.filename == __file__
    assert "lambda F, I:" in e.value.loc.line


def test_integers_are_never_nan_or_inf() -> None:
    with T.prim_func("f"):
        I = T.param("I", (4,), "int32")  # noqa: E741
        with T.Kernel(1, threads=32):
            assert tsir.expr.const_value(T.isnan(I[0])) == 0
            assert tsir.expr.const_value(T.isinf(I[1])) == 0


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_math_on_the_gpu(dtype: str) -> None:
    torch = pytest.importorskip("torch")
    n = 1000
    kernel = tsir.compile(math_kernel(n, dtype, 128))
    tdt = getattr(torch, dtype)
    x = (torch.rand(n, device="cuda", dtype=torch.float64) * 3 - 1.5).to(tdt)
    x[1], x[2], x[4] = float("nan"), float("inf"), float("-inf")
    y = torch.full((len(NAMES), n), float("nan"), device="cuda", dtype=tdt)
    flags = torch.zeros((2, n), device="cuda", dtype=torch.bool)
    kernel(x, y, flags)
    xd = x.double()
    ref = {
        "sigmoid": torch.sigmoid(xd),
        "erf": torch.erf(xd),
        "pow": xd.abs() ** 1.5,
        "fma": xd * xd + 0.5,
        "clamp": xd.clamp(-0.5, 0.5),
        "tan": torch.tan(xd),
        "exp10": 10**xd,
        "log10": torch.log10(xd.abs() + 1),
        "__exp": torch.exp(xd),
        "__exp10": 10**xd,
        "__log": torch.log(xd.abs() + 1),
        "__log2": torch.log2(xd.abs() + 1),
        "__log10": torch.log10(xd.abs() + 1),
        "__tan": torch.tan(xd),
        "__cos": torch.cos(xd),
        "__sin": torch.sin(xd),
    }
    tol = {"float16": 4e-3, "bfloat16": 3e-2, "float32": 2e-5, "float64": 1e-12}[dtype]
    finite = torch.isfinite(xd)
    for k, name in enumerate(NAMES):
        # CUDA documents the fast-math intrinsics' error as 2 + 1.16 * |x| ulp and the like.
        t = tol if not name.startswith("__") or dtype != "float32" else 4e-5
        torch.testing.assert_close(
            y[k].double()[finite], ref[name].to(tdt).double()[finite], rtol=t, atol=t, msg=name
        )
    assert torch.equal(flags[0], torch.isnan(x))
    assert torch.equal(flags[1], torch.isinf(x))
