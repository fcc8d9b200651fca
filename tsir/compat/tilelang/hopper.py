"""TileLang's explicit Hopper names (warp roles, mbarriers, TMA loads, register budgets) with
TileLang's parameter names, over tsir's builder (tsir/builder/hopper_lang.py). language.py
re-exports them; `PRESENT` and `DIFFERENT` here join its coverage lists."""

from __future__ import annotations

from typing import Any

from ...builder import lang as _T
from ...builder.lang import (
    alloc_barrier,
    barrier_arrive,
    barrier_wait,
    create_list_of_mbarrier,
    dec_max_nreg,
    fence_proxy_async,
    get_mbarrier,
    inc_max_nreg,
    mbarrier_arrive,
    mbarrier_arrive_expect_tx,
    mbarrier_expect_tx,
    mbarrier_wait_parity,
    set_max_nreg,
    ws,
)
from ...errors import UnsupportedError, user_location

__all__ = [
    "alloc_barrier",
    "barrier_arrive",
    "barrier_wait",
    "copy",
    "create_list_of_mbarrier",
    "dec_max_nreg",
    "fence_proxy_async",
    "get_mbarrier",
    "inc_max_nreg",
    "mbarrier_arrive",
    "mbarrier_arrive_expect_tx",
    "mbarrier_expect_tx",
    "mbarrier_wait_parity",
    "set_max_nreg",
    "tma_copy",
    "ws",
]


def _refuse(what: str, **given: Any) -> None:
    names = [k for k, v in given.items() if v not in (None, False)]
    if names:
        raise UnsupportedError(
            f"{what}({', '.join(f'{n}=...' for n in names)}) is not supported by tsir",
            loc=user_location(),
        )


def tma_copy(
    src: Any,
    dst: Any,
    *,
    barrier: Any = None,
    cluster_mask: Any = None,
    leader_scope_threads: Any = None,
    eviction_policy: Any = None,
    annotations: Any = None,
) -> None:
    """TileLang's T.tma_copy load: expect_tx + TMA load by one thread, no arrival, no wait."""
    _refuse(
        "T.tma_copy",
        cluster_mask=cluster_mask,
        leader_scope_threads=leader_scope_threads,
        eviction_policy=eviction_policy,
        annotations=annotations,
    )
    _T.tma_copy(src, dst, barrier=barrier)


def copy(
    src: Any,
    dst: Any,
    *,
    barrier: Any = None,
    coalesced_width: Any = None,
    disable_tma: bool = False,
    eviction_policy: Any = None,
    annotations: Any = None,
    loop_layout: Any = None,
) -> None:
    """T.copy; with `barrier=` (TileLang's older spelling of an explicit TMA load), T.tma_copy."""
    _refuse(
        "T.copy",
        coalesced_width=coalesced_width,
        disable_tma=disable_tma,
        eviction_policy=eviction_policy,
        annotations=annotations,
        loop_layout=loop_layout,
    )
    if barrier is not None:
        _T.tma_copy(src, dst, barrier=barrier)
        return
    _T.copy(src, dst)


PRESENT = [
    "alloc_barrier",
    "create_list_of_mbarrier",
    "get_mbarrier",
    "barrier_arrive",
    "barrier_wait",
    "mbarrier_arrive",
    "mbarrier_wait_parity",
    "mbarrier_expect_tx",
    "mbarrier_arrive_expect_tx",
    "set_max_nreg",
    "inc_max_nreg",
    "dec_max_nreg",
]
DIFFERENT = {
    "ws": "contiguous warpgroups of a 1-D block, sm_90a; roles do not nest",
    "tma_copy": "global->shared loads only (no TMA store, multicast, eviction hints); sm_90a",
    "fence_proxy_async": "fence.proxy.async.shared::cta (shared memory only)",
}
