"""TileLang names tsir does not implement: using one raises `MissingFeature` naming it.

Every name of `tilelang_names.txt` that language.py does not define is here; the messages below
say more where there is more to say (which work will bring it, or what to write instead).
"""

from __future__ import annotations

from pathlib import Path

from ...errors import UnsupportedError

__all__ = ["MissingFeature", "MISSING", "HOPPER", "tilelang_names", "missing_messages"]

HOPPER = "{what} belongs to the Hopper work (warp specialization, TMA, wgmma, fp8) and is not in tsir yet"


class MissingFeature(UnsupportedError, AttributeError):
    """A TileLang name or argument tsir does not implement (an AttributeError too, so that
    `hasattr(T, name)` is False)."""


def tilelang_names() -> list[str]:
    text = (Path(__file__).parent / "tilelang_names.txt").read_text()
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]


_WS = [
    "tma_load",
    "tma_store_arrive",
    "tma_store_wait",
    "create_tma_descriptor",
    "no_set_max_nreg",
    "annotate_producer_reg_dealloc",
    "annotate_consumer_reg_alloc",
    "disable_warp_group_reg_alloc",
    "warpgroup_arrive",
    "warpgroup_commit_batch",
    "warpgroup_wait",
    "warpgroup_fence_operand",
    "wait_wgmma",
    "alloc_tmem",
    "deallocate_tmem",
    "alloc_descriptor",
    "alloc_wgmma_desc",
    "alloc_tcgen05_smem_desc",
    "alloc_tcgen05_instr_desc",
    "initialize_wgmma_descriptor",
    "initialize_tcgen05_descriptor",
    "increase_descriptor_offset",
    "tcgen05_mma_arrive",
    "cp_async_barrier_noinc",
    "ptx_wgmma_ss",
    "ptx_wgmma_rs",
]

# Ops the ported TileLang programs need; issue 12 (item 4) plans them.
_PLANNED = {
    "loop_break": "T.loop_break",
}

_TVM = [
    "attr",
    "comm_reducer",
    "evaluate",
    "tvm_thread_allreduce",
    "call_intrin",
    "call_pure_extern",
    "tvm_warp_shuffle",
    "tvm_warp_shuffle_up",
    "tvm_warp_shuffle_down",
    "ptx_mma",
    "ptx_ldmatrix",
    "ptx_cp_async",
    "ptx_wait_group",
    "ptx_commit_group",
    "allocate",
    "access_ptr",
]


def missing_messages(defined: set[str]) -> dict[str, str]:
    """For each TileLang name not in `defined` (what language.py implements), why it raises."""
    out: dict[str, str] = {}
    for name in tilelang_names():
        if name in defined:
            continue
        if name in _WS:
            out[name] = HOPPER.format(what=f"TileLang's `T.{name}`")
        elif name in _PLANNED:
            out[name] = (
                f"TileLang's `T.{name}`: {_PLANNED[name]} is not supported by tsir yet (planned with issue 12's op work)"
            )
        elif name in _TVM:
            out[name] = (
                f"TileLang's `T.{name}` is a TVM TIR intrinsic; tsir has no TVM IR (use tile ops, or T.reduce_* for reductions)"
            )
        else:
            out[name] = f"TileLang's `T.{name}` is not supported by tsir"
    return out


# Filled by language.py once it has defined its names (the messages depend on what it defines;
# importing this package imports language.py).
MISSING: dict[str, str] = {}
