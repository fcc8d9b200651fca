"""Every example kernel compiles with NVRTC for sm_80, sm_90a and sm_100a (no GPU needed)."""

from __future__ import annotations

import pytest
from elementwise_2d import fused_exp_scale_bias
from filecheck.finput import FInput  # noqa: F401  (the dependency must be importable)
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
from tilelang_forms import gemm_loop, gemm_scaled_a, histogram, layer_norm_rows, split_roles
from transpose import transpose
from vector_add import vector_add

import tsir

EXAMPLES = {
    "vector_add": lambda: vector_add(),
    "vector_add_fp16": lambda: vector_add("float16"),
    "fused_exp_scale_bias": lambda: fused_exp_scale_bias(1024),
    "fused_exp_scale_bias_bf16": lambda: fused_exp_scale_bias(1024, "bfloat16"),
    "transpose_dynamic": lambda: transpose(N=4096),
    "transpose_static": lambda: transpose(M=4096, N=4096),
    "gemm_fp16": lambda: matmul(4096, 4096, 4096, swizzle=8),
    "gemm_bf16_dynamic_bias_relu": lambda: matmul(
        None, 256, 512, dtype="bfloat16", epilogue="bias_relu", out_dtype="float32"
    ),
    "gemm_transposed": lambda: matmul(512, 384, 256, transpose_A=True, transpose_B=True),
    "softmax": lambda: softmax(4096, 1),
    "layer_norm": lambda: layer_norm(1024, 2),
    "column_sum": lambda: column_sum(1024),
    "column_sum_atomic": lambda: column_sum_atomic(1024),
    "prefix_sum_rows": lambda: prefix_sum_rows(256),
    "tile_sum_and_max": lambda: tile_sum_and_max(),
    "flash_attention_d128": lambda: flash_attention(8, 1000, 128),
    "layer_norm_rows_blk1": lambda: layer_norm_rows(100, 512, 1),
    "layer_norm_rows_blk2_fp16": lambda: layer_norm_rows(100, 512, 2, 96, "float16"),
    "gemm_serial_loop": lambda: gemm_loop(200, 136, 100),
    "gemm_pipelined_1": lambda: gemm_loop(200, 136, 100, num_stages=1),
    "gemm_scaled_a": lambda: gemm_scaled_a(200, 136, 100),
    "histogram": lambda: histogram(10000),
    "split_roles": lambda: split_roles(256),
}


@pytest.mark.parametrize("target", ["sm_80", "sm_90a", "sm_100a"])
@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_compiles(name: str, target: str) -> None:
    kernel = tsir.compile(EXAMPLES[name](), target=target)
    assert kernel.cubin[:4] == b"\x7fELF"
    assert 'extern "C" __global__' in kernel.cuda_source
    assert kernel.target.arch == target


# Hand-specialized Hopper programs (warp roles, mbarriers, TMA, setmaxnreg: sm_90a only), in the
# builder (hopper_ws_gemm.py) and in TileLang's form (tilelang_ws_gemm.py).
import hopper_ws_gemm  # noqa: E402
import tilelang_ws_gemm  # noqa: E402

HOPPER_ONLY = {
    **hopper_ws_gemm.EXAMPLES,
    **{f"tilelang_{k}": v for k, v in tilelang_ws_gemm.PROGRAMS.items()},
}


@pytest.mark.parametrize("name", sorted(HOPPER_ONLY))
def test_hopper_example_compiles(name: str) -> None:
    kernel = tsir.compile(HOPPER_ONLY[name](), target="sm_90a")
    assert kernel.cubin[:4] == b"\x7fELF"
    assert "mbarrier" in kernel.cuda_source or "tma_load" in kernel.cuda_source
