"""A block's Hopper state with its units (mbarriers, TMA, wgmma queues): their modules build on
`hopper` (its helpers and HopperState), so the state is put together here, above them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .hopper import HopperState
from .mbarrier import Mbarriers
from .tma import TmaUnit
from .wgmma_calls import WgmmaQueues

if TYPE_CHECKING:
    from .thread import ThreadExecutor

__all__ = ["make_hopper_state"]


def make_hopper_state(ex: ThreadExecutor) -> HopperState:
    return HopperState(ex, Mbarriers(ex), TmaUnit(ex), WgmmaQueues(ex))
