"""Every example kernel compiles with NVRTC for sm_80, sm_90a and sm_100a (no GPU needed)."""

from __future__ import annotations

import pytest
from filecheck.finput import FInput  # noqa: F401  (the dependency must be importable)

import tsir
from elementwise_2d import fused_exp_scale_bias
from transpose import transpose
from vector_add import vector_add

EXAMPLES = {
    "vector_add": lambda: vector_add(),
    "vector_add_fp16": lambda: vector_add("float16"),
    "fused_exp_scale_bias": lambda: fused_exp_scale_bias(1024),
    "fused_exp_scale_bias_bf16": lambda: fused_exp_scale_bias(1024, "bfloat16"),
    "transpose_dynamic": lambda: transpose(N=4096),
    "transpose_static": lambda: transpose(M=4096, N=4096),
}


@pytest.mark.parametrize("target", ["sm_80", "sm_90a", "sm_100a"])
@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_compiles(name: str, target: str) -> None:
    kernel = tsir.compile(EXAMPLES[name](), target=target)
    assert kernel.cubin[:4] == b"\x7fELF"
    assert 'extern "C" __global__' in kernel.cuda_source
    assert kernel.target.arch == target
