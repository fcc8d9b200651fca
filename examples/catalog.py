"""Every example kernel in `examples/` (and `examples/distributed/`), by name, built at a fixed
shape: what the CPU tests compile, what the printer round trip rebuilds, and the corpus that
`scripts/corpus_diff.py` regenerates CUDA for (CONVENTIONS 20). Building a kernel needs no GPU.

    from catalog import KERNELS     # with examples/ on sys.path
    func = KERNELS["gemm_fp16"]()
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

_HERE = os.path.dirname(os.path.abspath(__file__))
for _path in (_HERE, os.path.join(_HERE, "distributed")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from elementwise_2d import fused_exp_scale_bias  # noqa: E402
from flash_attention import flash_attention  # noqa: E402
from gemm import matmul  # noqa: E402
from softmax import (  # noqa: E402
    column_sum,
    column_sum_atomic,
    layer_norm,
    prefix_sum_rows,
    softmax,
    tile_sum_and_max,
)
from tilelang_forms import gemm_loop, gemm_scaled_a, histogram, layer_norm_rows, split_roles  # noqa: E402
from transpose import transpose  # noqa: E402
from vector_add import vector_add  # noqa: E402

__all__ = ["SINGLE_GPU", "DISTRIBUTED", "HOPPER", "KERNELS"]

# The single-GPU examples (tests/examples/test_examples_compile.py compiles each for three targets).
SINGLE_GPU: dict[str, Callable[[], Any]] = {
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


def _distributed() -> dict[str, Callable[[], Any]]:
    import ag_gemm
    import barrier_stress
    import collectives
    import cpengine_allgather
    import gemm_rs
    import nvshmem_examples
    import put_get
    import ring_shift

    out: dict[str, Callable[[], Any]] = {}
    for module in (barrier_stress, collectives, put_get, ring_shift):
        for name, func in module.kernels().items():
            out[f"dist_{name}"] = lambda func=func: func
    out.update(
        {
            "dist_ag_push": lambda: ag_gemm.ag_push(256, 512, 2, 2),
            "dist_gemm_after_flags": lambda: ag_gemm.gemm_after_flags(512, 256, 512, 256, 2),
            "dist_gemm_partial": lambda: gemm_rs.gemm_partial(512, 256, 256, 2),
            "dist_reduce_scatter": lambda: gemm_rs.reduce_scatter(512, 256, 2),
            "dist_cp_all_gather": lambda: cpengine_allgather.cp_all_gather(4096, 2),
            "dist_cp_ag_gemm": lambda: cpengine_allgather.ag_gemm(256, 256, 256, 2),
            "dist_nvshmem_put_get": lambda: nvshmem_examples.put_get(4096),
            "dist_nvshmem_ring_shift": lambda: nvshmem_examples.ring_shift(4096),
            "dist_nvshmem_all_gather": lambda: nvshmem_examples.all_gather(4096, 2),
            "dist_ipc_put": lambda: nvshmem_examples.ipc_put(1 << 16, 4),
            "dist_nvshmem_put": lambda: nvshmem_examples.nvshmem_put(1 << 16, 4),
        }
    )
    return out


# The distributed examples' kernels (built for a fixed world size; no process group needed).
DISTRIBUTED: dict[str, Callable[[], Any]] = _distributed()


def _hopper() -> dict[str, Callable[[], Any]]:
    import hopper_ws_gemm
    import tilelang_ws_gemm

    out = dict(hopper_ws_gemm.EXAMPLES)
    out.update({f"tilelang_{k}": v for k, v in tilelang_ws_gemm.PROGRAMS.items()})
    return out


# Hand-specialized Hopper kernels (warp roles, mbarriers, TMA): sm_90a only (elsewhere the
# corpus records their refusal).
HOPPER: dict[str, Callable[[], Any]] = _hopper()

KERNELS: dict[str, Callable[[], Any]] = {**SINGLE_GPU, **DISTRIBUTED, **HOPPER}
