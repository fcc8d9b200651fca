"""The Hopper headers and the generated GEMM compile under NVRTC for sm_90a, and their SASS is the
Hopper path: HGMMA/QGMMA of the expected shapes, TMA loads (UTMALDG), setmaxnreg, and no local
memory (no LDL/STL, no stack frame)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sass_tools import count, opcodes, sass
from tsir.codegen.hopper_gemm import GemmConfig, generate
from tsir.runtime.nvrtc import compile_cuda

from tsir.errors import UnsupportedError
from tsir.layout import SwizzleMode
from tsir.layout.wgmma_layouts import instruction_k, tma_boxes

ROOT = Path(__file__).resolve().parents[2]
PTXAS_V = ["--ptxas-options=-v"]


def test_generated_wgmma_header_is_current() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_wgmma_ops.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def _forms_source(forms: list[tuple[str, str, int]]) -> str:
    body = []
    for i, (form, kind, n) in enumerate(forms):
        call = (
            f"tsir::wgmma_ss<tsir::{kind}, {n}, 0, {1 if 'F16' in kind or 'BF16' in kind else 0}>"
            f"(d{i}, da, db, s)"
            if form == "ss"
            else f"tsir::wgmma_rs<tsir::{kind}, {n}>(d{i}, a, db, s)"
        )
        body.append(f"  float d{i}[{n // 2}];\n  tsir::wgmma_fence();\n  {call};")
        body.append(
            f"  tsir::wgmma_commit();\n  tsir::wgmma_wait<0>();\n  o[{i}] = d{i}[{n // 2 - 1}];"
        )
    return (
        '#include "tsir/wgmma.h"\n'
        'extern "C" __global__ void forms(float* o, unsigned long long da, unsigned long long db,'
        " unsigned a0, int s) {\n  const unsigned a[4] = {a0, a0 + 1, a0 + 2, a0 + 3};\n"
        + "\n".join(body)
        + "\n}\n"
    )


def test_every_n_of_the_16_bit_forms_assembles(tmp_path: Path) -> None:
    """f16 from shared memory and bf16 from registers at every N = 8..256."""
    forms = [("ss", "kWgmmaF16", n) for n in range(8, 257, 8)]
    forms += [("rs", "kWgmmaBF16", n) for n in range(8, 257, 8)]
    binary = compile_cuda(_forms_source(forms), "sm_90a", use_cache=False)
    ops = opcodes(sass(binary.cubin, tmp_path))
    for n in range(8, 257, 8):
        assert ops[f"HGMMA.64x{n}x16.F32"] >= 1, n
        assert ops[f"HGMMA.64x{n}x16.F32.BF16"] >= 1, n


def test_fp8_forms_assemble(tmp_path: Path) -> None:
    kinds = ["kWgmmaE4M3E4M3", "kWgmmaE4M3E5M2", "kWgmmaE5M2E4M3", "kWgmmaE5M2E5M2"]
    forms = [("ss", k, n) for k in kinds for n in (8, 128, 256)]
    forms += [("rs", k, n) for k in kinds for n in (16, 256)]
    binary = compile_cuda(_forms_source(forms), "sm_90a", use_cache=False)
    ops = opcodes(sass(binary.cubin, tmp_path))
    for pair in ("E4M3.E4M3", "E4M3.E5M2", "E5M2.E4M3", "E5M2.E5M2"):
        for n in (8, 128, 256):
            assert ops[f"QGMMA.64x{n}x32.F32.{pair}"] >= 1, (pair, n)


def test_fp8_transposed_operand_is_a_compile_error() -> None:
    src = _forms_source([("ss", "kWgmmaE4M3E4M3", 64)]).replace(
        "tsir::wgmma_ss<tsir::kWgmmaE4M3E4M3, 64, 0, 0>",
        "tsir::wgmma_ss<tsir::kWgmmaE4M3E4M3, 64, 0, 1>",
    )
    with pytest.raises(Exception, match="8-bit wgmma operands must be K-major"):
        compile_cuda(src, "sm_90a", use_cache=False)


VARIANTS = [
    GemmConfig(),
    GemmConfig(a_dtype="bfloat16", b_dtype="bfloat16", out_dtype="bfloat16", stages=3),
    GemmConfig(block_n=128, stages=6),
    GemmConfig(block_m=256, block_n=128, stages=4),
    GemmConfig(cluster_m=2),
    GemmConfig(stages=3, tma_store=True),
    GemmConfig(a_dtype="float8_e4m3", b_dtype="float8_e4m3", out_dtype="bfloat16", block_k=128),
    GemmConfig(a_dtype="float8_e5m2", b_dtype="float8_e4m3", out_dtype="bfloat16", block_k=128),
]


@pytest.mark.parametrize("cfg", VARIANTS, ids=lambda c: c.name)
def test_generated_gemm_is_on_the_hopper_path(cfg: GemmConfig, tmp_path: Path) -> None:
    binary = compile_cuda(generate(cfg), "sm_90a", extra_options=PTXAS_V, use_cache=False)
    assert "0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads" in binary.log
    assert "serialized" not in binary.log  # ptxas's "wgmma ... serialized" performance warning
    assert "C7508" not in binary.log  # setmaxnreg ignored
    ops = opcodes(sass(binary.cubin, tmp_path))
    mma = "QGMMA" if cfg.fp8 else "HGMMA"
    per_k_block = cfg.wg_m // 64 * (cfg.block_k // instruction_k(cfg.a_dtype))
    assert count(ops, mma) == per_k_block
    assert all(op.startswith(f"{mma}.64x{cfg.block_n}x") for op in ops if op.startswith(mma))
    a_boxes = len(tma_boxes(cfg.a_shape, cfg.a_dtype, SwizzleMode.B128))
    b_boxes = len(tma_boxes(cfg.b_shape, cfg.b_dtype, SwizzleMode.B128))
    if cfg.cluster_m == 1:
        assert ops["UTMALDG.2D"] == a_boxes + b_boxes
    else:  # B's boxes multicast to the pair (each CTA issues its share: one branch per box)
        assert ops["UTMALDG.2D"] == a_boxes and ops["UTMALDG.2D.MULTICAST"] == b_boxes
        assert count(ops, "MEMBAR.ALL.GPU") == 2  # the cluster barriers at start and exit only
    assert count(ops, "LDL") == 0 and count(ops, "STL") == 0
    assert count(ops, "USETMAXREG") == 2
    if cfg.tma_store:  # one store per 64-column panel, and no global stores from registers
        assert ops["UTMASTG.2D"] == cfg.block_n // 64 and count(ops, "STG") == 0
    assert count(ops, "WARPGROUP.DEPBAR") >= 2  # wait_group 1 in the loop, 0 after it


def test_trans_b_for_16_bit_b_stored_k_by_n(tmp_path: Path) -> None:
    binary = compile_cuda(generate(GemmConfig()), "sm_90a", use_cache=False)
    text = sass(binary.cubin, tmp_path)
    assert text.count("tnspB") == 4 and "tnspA" not in text


@pytest.mark.parametrize(
    "cfg,message",
    [
        (GemmConfig(block_m=96), "multiple of 64 rows"),
        (GemmConfig(block_n=264), "N = 8..256"),
        (GemmConfig(stages=5), "shared memory"),
        (GemmConfig(block_m=256, block_n=256), "accumulator registers"),
        (GemmConfig(block_k=32), "128B swizzle"),
        (GemmConfig(a_dtype="float32", b_dtype="float32"), "no wgmma for float32"),
    ],
)
def test_bad_variants_are_refused(cfg: GemmConfig, message: str) -> None:
    with pytest.raises(UnsupportedError, match=message):
        generate(cfg)


def test_every_benchmark_variant_is_valid() -> None:
    """benchmarks/hopper_gemm.py's variants all pass the generator's checks (the GPU run compiles
    and times each; a refused variant would only show up there)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import hopper_gemm
    finally:
        sys.path.pop(0)
    names = hopper_gemm.cases()
    assert len(names) == len(set(names))
    for problem in hopper_gemm.PROBLEMS.values():
        for cfg in hopper_gemm.variants(problem):
            cfg.check()


def test_the_interleaved_benchmark_defaults_name_existing_variants() -> None:
    """benchmarks/gemm_interleaved.py's default tsir configurations and hand variants exist for
    the 8192^3 problems it is meant for (a typo would only show on the GPU)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import gemm_hopper
        import gemm_interleaved
        import hopper_gemm
    finally:
        sys.path.pop(0)
    for pname in ("f16_8192", "bf16_8192"):
        p = hopper_gemm.PROBLEMS[pname]
        assert set(gemm_interleaved.DEFAULT_TSIR.split(",")) <= set(gemm_hopper.configs(p, pname))
        names = [c.name for c in hopper_gemm.variants(p)]
        for suffix in gemm_interleaved.DEFAULT_HAND.split(","):
            assert sum(n.endswith(suffix) for n in names) == 1, (pname, suffix)
