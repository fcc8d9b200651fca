"""The printer round trip (CONVENTIONS 10) over every example kernel (examples/catalog.py): the
printed builder text of the input and of each tile-level stage rebuilds, with `tsir.printer.rebuild`,
a function structurally equal to it.

Rebuildable stages: the input, Verify and InjectSoftwarePipeline (pipelined copies print as
`T.tile_op(...)`, unsimplified constants spelled out). From LayoutInference on, the kernel body
carries attributes (`layout_map`, `shared_layout_map`) that name buffers allocated inside them,
which builder text cannot write before the allocation; those stages print, but do not rebuild.
"""

from __future__ import annotations

import os
import sys

import pytest
from tsir.passes import get, run_pipeline

import tsir
from tsir.printer import print_func, rebuild

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))

from catalog import KERNELS  # noqa: E402

REBUILDABLE_PASSES = ("Verify", "InjectSoftwarePipeline")


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_example_prints_and_rebuilds_at_every_tile_level_stage(name: str) -> None:
    func = KERNELS[name]()
    lowered = run_pipeline(func, tsir.Target.parse("sm_90a"), [get(p) for p in REBUILDABLE_PASSES])
    assert [n for n, _ in lowered.stages] == ["input", *REBUILDABLE_PASSES]
    for stage, ir in lowered.stages:
        text = print_func(ir)
        try:
            rebuilt = rebuild(text)
        except Exception as e:  # noqa: BLE001  (reported with the stage and the text)
            pytest.fail(f"{name} at {stage}: the printed text does not rebuild: {e}\n{text}")
        tsir.assert_structural_equal(rebuilt, ir)


# Thread-level IR rebuilds too where each variable is bound once and no attribute names buffers
# before their allocation (after LowerSharedLayout): the final PrimFunc stage of kernels that use
# the lowered forms (a planned shared pool of views, vector accesses, cp.async calls, barriers).
# Not every kernel qualifies: VectorizeLoop may bind one loop variable in its vector path and its
# scalar fallback, which builder text makes two variables.
LOWERED_FORMS = (
    "gemm_fp16",
    "softmax",
    "layer_norm",
    "transpose_static",
    "histogram",
    "split_roles",
)


@pytest.mark.parametrize("name", LOWERED_FORMS)
def test_planned_kernels_rebuild(name: str) -> None:
    ir = tsir.lower(KERNELS[name](), "sm_90a")["PlanSharedMemory"]
    tsir.assert_structural_equal(rebuild(print_func(ir)), ir)


def test_the_lowered_forms_rebuild() -> None:
    """T.func_attr, T.Kernel(dyn_shared_bytes=, name=), T.thread_binding, T.scope, T.alloc_buffer,
    T.decl_buffer, T.Ramp and T.Broadcast: what lowered IR prints rebuilds the same nodes."""
    from tsir import T

    with T.prim_func("f") as f:
        T.func_attr({"fast_math": "ftz", "global_symbol": "f", "tir.noalias": True})
        A = T.param("A", (64,), "float32")
        with T.Kernel(1, threads=32, dyn_shared_bytes=256, name="k"):
            pool = T.alloc_buffer((256,), "uint8", scope="shared.dyn", align=1024)
            S = T.decl_buffer((32,), "float32", scope="shared.dyn", data=pool, byte_offset=128)
            for t in T.thread_binding(8, thread="threadIdx.x"):
                with T.scope():
                    v = T.alloc_local((4,), "float32")
                    v[T.Ramp(0, 1, 4)] = T.Broadcast(T.float32(1.0), 4)
                    S[T.Ramp(t * 4, 1, 4)] = v[T.Ramp(0, 1, 4)]
                A[T.Ramp(t * 4, 1, 4)] = S[T.Ramp(t * 4, 1, 4)]
    text = print_func(f.func)
    for form in (
        "T.func_attr(",
        "dyn_shared_bytes=256",
        'name="k"',
        "T.thread_binding(",
        "T.scope()",
        "T.decl_buffer(",
        "T.alloc_buffer(",
        "T.Broadcast(",
    ):
        assert form in text, form
    tsir.assert_structural_equal(rebuild(text), f.func)
