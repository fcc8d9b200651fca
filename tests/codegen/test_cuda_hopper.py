"""CUDA for the sm_90a GEMM path: tensor maps as `__grid_constant__` parameters, the register
cap setmaxnreg needs, and register arrays passed to the wgmma header as array references
(CHECK lines, CONVENTIONS 18); the whole source compiles under NVRTC."""

from __future__ import annotations

import sys
from pathlib import Path

from filecheck_util import filecheck
from tsir.codegen.cuda import generate_cuda
from tsir.runtime.nvrtc import compile_cuda

import tsir

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
from gemm import matmul


def test_the_sm90a_gemm_kernel_signature_and_header_calls() -> None:
    src = generate_cuda(tsir.lower(matmul(256, 256, 128, bm=128, bn=128, bk=64), "sm_90a").module)
    filecheck(
        src,
        r"""
CHECK: #include "tsir/mbarrier.h"
CHECK: #include "tsir/tma.h"
CHECK: #include "tsir/wgmma.h"
CHECK: extern "C" __global__ void __launch_bounds__(256, 1) matmul_kernel(
CHECK-NEXT: half* __restrict__ C,
CHECK-NEXT: const __grid_constant__ tsir::TmaDescriptor [[TA:A_tmap]],
CHECK-NEXT: const __grid_constant__ tsir::TmaDescriptor [[TB:B_tmap]]) {
CHECK: tsir::setmaxnreg_dec<40>();
CHECK: tsir::tma_load_2d({{.*}}, [[TA]], tsir::shared_u32(&mbar_full[
CHECK: tsir::tma_load_2d({{.*}}, [[TB]], tsir::shared_u32(&mbar_full[
CHECK: tsir::setmaxnreg_inc<240>();
CHECK: tsir::wgmma_fence_operands<128>(*reinterpret_cast<float(*)[128]>(&[[ACC:[A-Za-z_0-9]+]][0]));
CHECK: tsir::wgmma_ss<tsir::kWgmmaF16, 128, 0, 1>(*reinterpret_cast<float(*)[64]>(&[[ACC]][0]), tsir::wgmma_desc(
CHECK: tsir::wgmma_commit();
CHECK-NEXT: tsir::wgmma_wait<1>();
""",
    )
    compile_cuda(src, "sm_90a", use_cache=False)


def test_kernels_without_setmaxnreg_keep_their_launch_bounds() -> None:
    src = generate_cuda(tsir.lower(matmul(256, 256, 128, bm=128, bn=128, bk=64), "sm_80").module)
    assert "__launch_bounds__(128) matmul_kernel(" in src and "TmaDescriptor" not in src
