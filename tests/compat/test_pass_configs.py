"""TileLang's pass configs that tsir honours: `tl.disable_tma_lower` and
`tl.disable_warp_specialized` turn into the `T.Pipelined` options of the same meaning on every
pipelined loop that does not choose for itself; `tl.enable_fast_math` compiles with NVRTC's
`--use_fast_math` (unless `tl.disable_fast_math`). Each is a line of the kernel's report."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import tsir
import tsir.compat.tilelang as tilelang
from tsir import T, knobs
from tsir.compat.tilelang.kernel import apply_pass_configs
from tsir.stmt import For
from tsir.visitor import collect

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
from gemm import matmul  # noqa: E402  (examples/ on sys.path first)


def pipelined_loops(func: tsir.PrimFunc) -> list[For]:
    return [f for f in collect(func.body, For) if f.annotation("num_stages") is not None]


def test_the_loop_options_go_on_every_pipelined_loop_that_does_not_choose() -> None:
    with T.prim_func("two") as f:
        A = T.param("A", (256, 64), "float16")
        with T.Kernel(1, threads=128):
            S = T.alloc_shared((32, 64), "float16")
            for k in T.Pipelined(8, num_stages=2):
                T.copy(A[k * 32, 0], S)
            for k in T.Pipelined(8, num_stages=2, tma=True):
                T.copy(A[k * 32, 0], S)
    out, nvrtc = apply_pass_configs(
        f.func, {"tl.disable_tma_lower": True, "tl.disable_warp_specialized": True}
    )
    first, second = pipelined_loops(out)
    assert first.annotation("tma") is False and first.annotation("warp_specialize") is False
    assert second.annotation("tma") is True  # the program's own choice stays
    assert nvrtc == ()
    same, _ = apply_pass_configs(f.func, {"tl.disable_tma_lower": False})
    assert same is f.func


def test_disable_tma_lower_compiles_the_gemm_on_cp_async(monkeypatch) -> None:
    monkeypatch.setenv("TSIR_TILELANG_TARGET", "sm_90a")
    func = matmul(256, 256, 256)
    plain = tilelang.compile(func, out_idx=[-1])
    assert "tma_load" in plain.get_kernel_source()
    k = tilelang.compile(func, out_idx=[-1], pass_configs={"tl.disable_tma_lower": True})
    source = k.get_kernel_source()
    assert "tma_load" not in source and "cp_async" in source
    assert any(
        "tl.disable_tma_lower=True: T.Pipelined loops copy with cp.async" in r for r in k.report
    )


def test_disable_warp_specialized_keeps_the_kernels_threads(monkeypatch) -> None:
    monkeypatch.setenv("TSIR_TILELANG_TARGET", "sm_90a")
    func = matmul(256, 256, 256)
    assert "setmaxnreg" in tilelang.compile(func, out_idx=[-1]).get_kernel_source()
    k = tilelang.compile(func, out_idx=[-1], pass_configs={"tl.disable_warp_specialized": True})
    assert "setmaxnreg" not in k.get_kernel_source()


def test_fast_math_reaches_nvrtc(monkeypatch) -> None:
    monkeypatch.setenv("TSIR_TILELANG_TARGET", "sm_90a")
    seen: list[tuple[str, ...]] = []
    real = tsir.compile

    def spy(func, target=None):  # records the NVRTC options each compile runs under
        seen.append(tuple(knobs.nvrtc_options))
        return real(func, target=target)

    monkeypatch.setattr(tsir, "compile", spy)
    func = matmul(128, 128, 64)
    k = tilelang.compile(func, out_idx=[-1], pass_configs={"tl.enable_fast_math": True})
    tilelang.compile(
        func, out_idx=[-1], pass_configs={"tl.enable_fast_math": True, "tl.disable_fast_math": True}
    )
    assert seen == [("--use_fast_math",), ()]
    assert any("compiled with NVRTC's --use_fast_math" in r for r in k.report)


def test_an_unknown_config_names_the_accepted_ones() -> None:
    with pytest.raises(tsir.UnsupportedError, match="honoured: .*tl.disable_tma_lower"):
        tilelang.compile(matmul(128, 128, 64), out_idx=[-1], pass_configs={"tl.bogus": 1})
