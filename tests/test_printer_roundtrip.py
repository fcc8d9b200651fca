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

import tsir
from tsir.passes import get, run_pipeline
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
