"""The ordinary tile program (examples/gemm.py's `matmul`) compiled for the GPU present (sm_90a:
wgmma, TMA into an mbarrier ring, a producer warpgroup) against torch: fp16, bf16, float8 with
scales against `torch._scaled_mm`, ragged shapes (TMA's zero fill; an odd row pitch on cp.async),
M = 1000, a dynamic M, persistent and unspecialized variants. Outputs are poisoned (NaN) before each
launch. Run with `pytest -m gpu tests/hopper/test_gemm_wgmma_gpu.py` (scripts/gpu_hopper_gemm.sh)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from sass_tools import count, opcodes, sass

import tsir

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))

from gemm import matmul  # noqa: E402

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def torch() -> Any:
    torch = pytest.importorskip("torch")
    if torch.cuda.get_device_capability() != (9, 0):
        pytest.skip("needs a Hopper GPU (sm_90a)")
    # An mbarrier wait that sees no progress for ~1 s traps (prints the barrier and parity): a
    # protocol bug is a failed test, not a hang that eats the run.
    with tsir.knobs.override(nvrtc_options=("-DTSIR_MBARRIER_TIMEOUT_CYCLES=2000000000",)):
        yield torch


def _run(torch: Any, func: tsir.PrimFunc, *args: Any) -> Any:
    kernel = tsir.compile(func, target="cuda")
    assert kernel.target.arch == "sm_90a"
    out = args[-1]
    out.fill_(float("nan"))
    kernel(*args)
    torch.cuda.synchronize()
    assert not torch.isnan(out.float()).any(), "elements left unwritten (still NaN)"
    return kernel


def _inputs(
    torch: Any, m: int, n: int, k: int, dtype: Any, out: Any = None
) -> tuple[Any, Any, Any]:
    g = torch.Generator(device="cuda").manual_seed(0)
    a = torch.randn(m, k, device="cuda", generator=g).to(dtype)
    b = torch.randn(k, n, device="cuda", generator=g).to(dtype)
    return a, b, torch.empty(m, n, device="cuda", dtype=out or dtype)


def _close(torch: Any, c: Any, ref: Any, tol: float) -> None:
    err = ((c.float() - ref).abs().max() / ref.abs().max()).item()
    assert err <= tol, f"relative error {err:.2e} > {tol:.0e}"


@pytest.mark.parametrize(
    "m, n, k, kw",
    [
        (1024, 1024, 1024, {}),  # the example's defaults: 128x128x32, one consumer warpgroup
        (4096, 4096, 4096, dict(bm=128, bn=256, bk=64, threads=256, num_stages=4, swizzle=8)),
        (4096, 4096, 4096, dict(bm=128, bn=256, bk=64, threads=256, num_stages=4, persistent=True)),
        (1000, 4096, 4096, dict(bm=128, bn=256, bk=64, threads=256, num_stages=4, persistent=True)),
        (
            2048,
            2048,
            2048,
            dict(
                bm=128, bn=256, bk=64, threads=256, num_stages=3, persistent=True, epilogue="smem"
            ),
        ),
        (
            520,
            264,
            200,
            dict(bm=128, bn=128, bk=64, threads=256, num_stages=3, warp_specialize=False),
        ),
    ],
)
def test_fp16_against_torch(
    torch: Any, m: int, n: int, k: int, kw: dict[str, Any], tmp_path: Path
) -> None:
    a, b, c = _inputs(torch, m, n, k, torch.float16)
    kernel = _run(torch, matmul(m, n, k, **kw), a, b, c)
    _close(torch, c, a.float() @ b.float(), 1e-2)
    ops = opcodes(sass(kernel.cubin, tmp_path))
    assert count(ops, "HGMMA") > 0 and count(ops, "UTMALDG") > 0


def test_bf16_with_float32_output(torch: Any) -> None:
    a, b, c = _inputs(torch, 2048, 2048, 2048, torch.bfloat16, torch.float32)
    f = matmul(
        2048,
        2048,
        2048,
        bm=128,
        bn=256,
        bk=64,
        threads=256,
        num_stages=4,
        dtype="bfloat16",
        out_dtype="float32",
        persistent=True,
    )
    _run(torch, f, a, b, c)
    _close(torch, c, a.float() @ b.float(), 1e-3)


def test_a_dynamic_m_runs_every_size(torch: Any) -> None:
    kernel = tsir.compile(matmul(None, 512, 512, bm=128, bn=128, bk=64, threads=256), target="cuda")
    for m in (1, 127, 300, 1024):
        a, b, c = _inputs(torch, m, 512, 512, torch.float16)
        c.fill_(float("nan"))
        kernel(a, b, c)
        torch.cuda.synchronize()
        _close(torch, c, a.float() @ b.float(), 1e-2)


def test_ragged_4095x4097x4096_on_cp_async_where_tma_cannot(torch: Any) -> None:
    """B's and C's rows are 8194 bytes apart: no tensor map for B, cp.async (and wgmma) instead."""
    m, n, k = 4095, 4097, 4096
    a, b, c = _inputs(torch, m, n, k, torch.float16)
    f = matmul(m, n, k, bm=128, bn=128, bk=64, threads=256, num_stages=3)
    kernel = _run(torch, f, a, b, c)
    assert any("stays on cp.async" in r for r in kernel.report)
    _close(torch, c, a.float() @ b.float(), 1e-2)


def test_ragged_edges_through_tma(torch: Any) -> None:
    """M, N, K not multiples of the tile, strides 16-byte multiples: TMA fills the edges with 0."""
    m, n, k = 1000, 1000, 1000
    a, b, c = _inputs(torch, m, n, k, torch.float16)
    kernel = _run(torch, matmul(m, n, k, bm=128, bn=128, bk=64, threads=256, num_stages=4), a, b, c)
    assert not kernel.report
    _close(torch, c, a.float() @ b.float(), 1e-2)


@pytest.mark.parametrize("fp8", ["float8_e4m3", "float8_e5m2"])
def test_fp8_with_scales_against_scaled_mm(torch: Any, fp8: str) -> None:
    m = n = k = 4096
    tdt = torch.float8_e4m3fn if fp8 == "float8_e4m3" else torch.float8_e5m2
    g = torch.Generator(device="cuda").manual_seed(0)
    a = torch.randn(m, k, device="cuda", generator=g).to(tdt)
    b = torch.randn(n, k, device="cuda", generator=g).to(tdt)  # N x K: K-major, as wgmma wants
    sa = torch.tensor([0.5], device="cuda")
    sb = torch.tensor([0.25], device="cuda")
    c = torch.empty(m, n, device="cuda", dtype=torch.bfloat16)
    f = matmul(
        m,
        n,
        k,
        bm=128,
        bn=256,
        bk=128,
        threads=256,
        num_stages=4,
        dtype=fp8,
        out_dtype="bfloat16",
        transpose_B=True,
        epilogue="scale",
        persistent=True,
    )
    kernel = _run(torch, f, a, b, sa, sb, c)
    ref = (a.float() @ b.float().t()) * 0.125
    _close(torch, c, ref, 2e-2)  # bf16 output; wgmma's fp8 accumulation is not quite fp32
    if fp8 == "float8_e4m3":
        cublas = torch._scaled_mm(a, b.t(), sa[0], sb[0], out_dtype=torch.bfloat16)
        _close(torch, c, cublas.float(), 2e-2)
    assert "QGMMA" in " ".join(opcodes(sass(kernel.cubin, Path("/tmp"))))


@pytest.mark.parametrize(
    "m, n, k, persistent",
    [(2048, 2048, 2048, True), (1000, 1000, 1000, True), (77, 136, 64, False)],
)
def test_tma_store_epilogue(
    torch: Any, m: int, n: int, k: int, persistent: bool, tmp_path: Path
) -> None:
    """examples/gemm.py's `shared` epilogue (TileLang's unpadded tile): a swizzled tile stored by
    TMA (UTMASTG), clipped at ragged edges, no global stores from registers."""
    a, b, c = _inputs(torch, m, n, k, torch.float16)
    f = matmul(
        m, n, k, bm=128, bn=256, bk=64, threads=256, num_stages=3, persistent=persistent,
        epilogue="shared",
    )  # fmt: skip
    kernel = _run(torch, f, a, b, c)
    _close(torch, c, a.float() @ b.float(), 1e-2)
    ops = opcodes(sass(kernel.cubin, tmp_path))
    assert count(ops, "UTMASTG") == 4 and count(ops, "STG") == 0
