"""PlanSharedMemory: shared buffers become aligned slices of one dynamic pool, within the limit."""

from __future__ import annotations

import pytest
from tsir.passes import PassContext, get

import tsir
from tsir import T
from tsir.stmt import DeclBuffer, KernelLaunch
from tsir.visitor import collect


def two_tiles(a: int, b: int) -> tsir.PrimFunc:
    with T.prim_func("f") as f:
        A = T.param("A", (a,), "float16")
        with T.Kernel(1, threads=32):
            tx = T.get_thread_binding(0)
            S = T.alloc_shared((a,), "float16")
            R = T.alloc_shared((b,), "float32")
            S[tx] = A[tx]
            R[tx] = T.cast(S[tx], "float32")
    return f.func


def test_offsets_are_aligned_and_the_pool_size_is_recorded() -> None:
    out = get("PlanSharedMemory")(two_tiles(33, 40), PassContext(tsir.Target.parse("sm_90a")))
    decls = collect(out, DeclBuffer)
    assert [(d.buffer.name, d.byte_offset) for d in decls] == [("S", 0), ("R", 80)]  # 66 -> 80
    (k,) = collect(out, KernelLaunch)
    assert k.dyn_shared_bytes == 80 + 40 * 4


def test_over_the_limit_names_the_buffers_and_the_limit() -> None:
    with pytest.raises(tsir.UnsupportedError) as e:
        get("PlanSharedMemory")(two_tiles(60000, 20000), PassContext(tsir.Target.parse("sm_86")))
    msg = str(e.value)
    assert "PlanSharedMemory" in msg and "S: 120000 B" in msg and "R: 80000 B" in msg
    assert "sm_86 allows 101376" in msg
