"""Per-function fast math: `T.func_attr({"fast_math": mode})` with mode False (IEEE float32, the
default), "ftz" (float32 subnormals flushed, NVRTC -ftz=true) or True (NVRTC --use_fast_math)
compiles that function's kernels so and nothing else; a value that is not a mode is an error.

Why "ftz" exists: T.exp2 on float32 is CUDA's exp2f, PTX `ex2.approx.f32` (2 ulp, subnormal
results kept). MUFU.EX2 flushes subnormal results, so ptxas wraps it in a test of the argument
against -126 and two predicated multiplies (halve the argument, square the result): four
instructions where `ex2.approx.ftz.f32` is one, the same MUFU.EX2 for arguments >= -126. A
softmax that can afford results below 2^-126 becoming 0 asks for "ftz" and keeps exact division.
The GPU test at the end measures both modes' exp2 against numpy over the whole float32 range."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tsir
from tsir import T

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "hopper"))

from sass_tools import opcodes, sass  # noqa: E402  (tests/hopper on sys.path first)


def exp2_over(n: int, mode: Any = None) -> tsir.PrimFunc:
    """Y[i] = exp2(X[i]) / Z[i]: one exp2 and one division per element."""
    with T.prim_func("exp2_div") as f:
        X = T.param("X", (n,), "float32")
        Z = T.param("Z", (n,), "float32")
        Y = T.param("Y", (n,), "float32")
        if mode is not None:
            T.func_attr({"fast_math": mode})
        with T.Kernel(T.ceildiv(n, 128), threads=128) as bx:
            tx = T.get_thread_binding(0)
            with T.If(bx * 128 + tx < n):
                Y[bx * 128 + tx] = T.exp2(X[bx * 128 + tx]) / Z[bx * 128 + tx]
    return f.func


def ptx_ops(kernel: Any) -> set[str]:
    return set(re.findall(r"^\s+((?:ex2|div|rcp)\.[.\w]+)", kernel.asm["ptx"], re.M))


@pytest.mark.parametrize(
    "mode, ops, option",
    [
        (None, {"ex2.approx.f32", "div.rn.f32"}, None),
        (False, {"ex2.approx.f32", "div.rn.f32"}, None),
        ("ftz", {"ex2.approx.ftz.f32", "div.rn.ftz.f32"}, "-ftz=true"),
        (True, {"ex2.approx.ftz.f32", "div.approx.ftz.f32"}, "--use_fast_math"),
    ],
)
def test_each_mode_compiles_exp2_and_division_as_asked(
    mode: Any, ops: set[str], option: str | None
) -> None:
    """The PTX of T.exp2 and `/` on float32 in each mode: "ftz" keeps the correctly rounded
    division, only --use_fast_math makes it approximate."""
    kernel = tsir.compile(exp2_over(256, mode), "sm_90a")
    assert ptx_ops(kernel) == ops
    flags = {"-ftz=true", "--use_fast_math"}
    assert flags & set(kernel.binary.options) == ({option} if option else set())


def test_ieee_exp2_pays_three_instructions_for_subnormal_results(tmp_path: Path) -> None:
    """SASS per exp2: IEEE is a test against -126, a predicated halving, MUFU.EX2 and a predicated
    squaring; "ftz" the MUFU.EX2 alone (what FlashAttention's softmax loses without it)."""
    ieee = opcodes(sass(tsir.compile(exp2_over(256), "sm_90a").cubin, tmp_path))
    ftz = opcodes(sass(tsir.compile(exp2_over(256, "ftz"), "sm_90a").cubin, tmp_path))
    assert ieee["MUFU.EX2"] == ftz["MUFU.EX2"] == 1
    assert ieee["FSETP.GEU.AND"] == 1 and ftz["FSETP.GEU.AND"] == 0
    text = sass(tsir.compile(exp2_over(256), "sm_90a").cubin, tmp_path)
    assert re.search(r"FSETP\.GEU\.AND P\d, PT, R\d+, -126", text)
    assert len(re.findall(r"@!?P\d FMUL(\.FTZ)? R\d+, R\d+, (0\.5|R\d+)", text)) == 2


def test_the_mode_is_part_of_the_function_and_of_the_cache_key() -> None:
    """Printed as T.func_attr and rebuilt equal; two modes are two cubins; the knob's options
    still apply beside the function's."""
    from tsir.printer import print_func, rebuild

    func = exp2_over(256, "ftz")
    tsir.assert_structural_equal(rebuild(print_func(func)), func)
    with tsir.knobs.override(nvrtc_options=("-lineinfo",)):
        a = tsir.compile(func, "sm_90a")
    b = tsir.compile(exp2_over(256), "sm_90a")
    assert {"-lineinfo", "-ftz=true"} <= set(a.binary.options)
    assert a.binary.key != b.binary.key and a.cubin != b.cubin


def test_a_value_that_is_not_a_mode_names_the_modes() -> None:
    """At the user's T.func_attr line (1 is not True: modes are exact), or at tsir.compile for a
    function built without the builder."""
    with pytest.raises(tsir.BuildError) as err:
        exp2_over(256, 1)
    text = str(err.value)
    assert "fast_math=1 is not a mode: use False (IEEE float32, the default), 'ftz'" in text
    assert 'T.func_attr({"fast_math": mode})' in text and "test_fast_math.py" in text
    func = exp2_over(256).with_attr("fast_math", "fast")
    with pytest.raises(tsir.UnsupportedError, match=r"`exp2_div`: fast_math='fast' is not a mode"):
        tsir.compile(func, "sm_90a")


# -- accuracy ---------------------------------------------------------------------------------------


def ulps(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """Distance in float32 steps (NaN against NaN: 0)."""

    def ordered(x: np.ndarray) -> np.ndarray:
        i = x.astype(np.float32).view(np.int32).astype(np.int64)
        return np.where(i < 0, -(i & 0x7FFFFFFF), i)

    d = np.abs(ordered(got) - ordered(want))
    both_nan = np.isnan(got) & np.isnan(want)
    return np.where(both_nan, 0, np.where(np.isnan(got) | np.isnan(want), 1 << 40, d))


def exp2_inputs() -> np.ndarray:
    """The whole float32 range of exp2's argument: normal, subnormal and zero results (-150 to
    -126 gives subnormals), overflow, subnormal arguments, the special values."""
    rng = np.random.default_rng(7)
    dense = np.linspace(-160.0, 130.0, 200_001, dtype=np.float32)
    near = rng.uniform(-1.0, 1.0, 50_000).astype(np.float32)
    sub = (rng.uniform(-1.0, 1.0, 1000) * 1e-39).astype(np.float32)
    special = np.array(
        [0.0, -0.0, np.inf, -np.inf, np.nan, -126.0, -127.0, -149.0, -150.0, 127.99, 128.0],
        np.float32,
    )
    return np.concatenate([dense, near, sub, special])


def exact_exp2(x: np.ndarray) -> np.ndarray:
    """exp2 correctly rounded to float32 (float64 has 29 more bits; subnormals round there too)."""
    with np.errstate(over="ignore"):
        return np.exp2(x.astype(np.float64)).astype(np.float32)


def test_the_interpreter_exp2_is_within_two_ulp_over_the_whole_range() -> None:
    """The oracle that kernels are checked against: T.exp2 in the interpreter on float32 (numpy's
    float32 exp2) keeps exp2f's bound, 2 ulp (numpy reaches it near overflow and near 2^-126),
    subnormal results, +-inf and NaN included."""
    x = exp2_inputs()
    n = x.size
    y = np.zeros_like(x)
    with np.errstate(over="ignore"):
        tsir.interpret(exp2_over(n), x, np.ones_like(x), y)
    want = exact_exp2(x)
    assert ulps(y, want).max() <= 2
    assert y[np.isneginf(x)].tolist() == [0.0] and np.isnan(y[np.isnan(x)]).all()
    assert np.isposinf(y[x >= 128]).all() and (y[(x < -126) & (x > -149)] > 0).all()


@pytest.mark.gpu
def test_gpu_exp2_accuracy_of_each_mode() -> None:
    """On the GPU: IEEE T.exp2 is within 2 ulp of the correctly rounded result everywhere
    (subnormal results included, exp2f's documented bound); "ftz" and --use_fast_math give the
    very same bits for arguments of -126 and above, and results below 2^-126 that stay below it
    (flushed to +0 or not: an H100 returned a few subnormals for arguments <= -127, 2026-12-07)."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a GPU")
    x = exp2_inputs()
    want = exact_exp2(x)
    got = {}
    for mode in (False, "ftz", True):
        kernel = tsir.compile(exp2_over(x.size, mode), "cuda")
        xs = torch.from_numpy(x).cuda()
        y = torch.full_like(xs, float("nan"))
        kernel(xs, torch.ones_like(xs), y)
        got[mode] = y.cpu().numpy()
    assert ulps(got[False], want).max() <= 2
    assert (got[False][(x < -126) & (x > -149)] > 0).all()  # subnormal results kept
    same = ~(x < -126)  # (NaN included) where the IEEE sequence is MUFU.EX2 alone
    for mode in ("ftz", True):
        np.testing.assert_array_equal(got[mode][same], got[False][same])
        assert (got[mode][x < -126] <= np.float32(2.0**-126)).all()
        assert (got[mode][x < -126] >= 0).all()
