"""The host program of an sm_90a TMA kernel: each tensor map the kernel takes is a `TensorMapArg`
(tensor, box outermost first, swizzle) in its launch, built from SplitHostDevice's host-side
bindings, and it survives the lowering cache's JSON round trip."""

from __future__ import annotations

import sys
from pathlib import Path

from tsir.runtime.host_program import KernelArg, TensorMapArg
from tsir.runtime.kernel import _program_from_json, _program_to_json, host_program

import tsir

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
from gemm import matmul


def test_tensor_maps_are_launch_arguments() -> None:
    module = tsir.lower(matmul(512, 256, 256, bm=128, bn=128, bk=64), "sm_90a").module
    program = host_program(module)
    (step,) = program.steps
    assert step.args == (
        KernelArg("C", "ptr"),
        TensorMapArg("A", (128, 64), 128),  # a 128 x 64 half tile: one 128-byte swizzle span
        TensorMapArg("B", (64, 64), 128),  # 64 x 128 half tile: two spans, one map
    )
    assert step.block == (256, 1, 1)
    assert _program_from_json(_program_to_json(program)) == program


def test_sm80_launches_pass_pointers() -> None:
    (step,) = host_program(tsir.lower(matmul(512, 256, 256), "sm_80").module).steps
    assert [a.name for a in step.args] == ["A", "B", "C"]  # type: ignore[union-attr]
