"""T.fill / T.clear (tsir/tileop/fill.py) on fragments: checked at every stage against the
reference interpreter."""

from __future__ import annotations

import numpy as np
import pytest

from tsir import T
from tsir.interpret import check_stages


@pytest.mark.parametrize("region", ["rows", "columns", "element", "whole"])
def test_fill_of_part_of_a_fragment_writes_only_that_part(region: str) -> None:
    """T.fill on a region of a fragment stores into the registers holding that region only (it
    used to fill the whole fragment)."""
    with T.prim_func("f") as f:
        Y = T.param("Y", (4, 64), "float32")
        with T.Kernel(1, threads=64):
            F = T.alloc_fragment((4, 64), "float32")
            T.fill(F, 0.0)
            part = {"rows": F[0:2, :], "columns": F[:, 8:24], "element": F[3, 5], "whole": F}[
                region
            ]
            T.fill(part, 1.0)
            T.copy(F, Y)
    report = check_stages(f.func, [np.zeros((4, 64), np.float32)])
    assert report.ok, str(report)
    want = np.zeros((4, 64))
    want[
        {
            "rows": (slice(0, 2),),
            "columns": (slice(None), slice(8, 24)),
            "element": (3, 5),
            "whole": (slice(None),),
        }[region]
    ] = 1.0
    np.testing.assert_array_equal(report.reference[0], want)
