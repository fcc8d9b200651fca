"""The run context shared by the executor, memory and device calls: what runs now, who runs it."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .errors import Access
from .lanes import LaneMap

__all__ = ["RunContext"]


class RunContext:
    """Per-kernel-run state that reports need: the statement executing, the lanes, the stages.

    `check`: detectors on. `global_guard`: out-of-bounds global accesses read zero / are skipped
    (the IR's meaning until LegalizeSafeMemoryAccess makes the guards explicit) instead of being
    reported. `races`: the race detector is on (off where the IR still means "every statement
    completes in all threads before the next", before ThreadSync inserts barriers).
    `origin`: statement -> the pass that produced it (None when unknown).
    """

    def __init__(self, lanes: LaneMap, *, check: bool = True, global_guard: bool = False,
                 races: bool = True, origin: Callable[[Any], str | None] | None = None,
                 rank: int | None = None):
        self.lanes = lanes
        self.check = check
        self.races = races and check
        self.global_guard = global_guard
        self.origin = origin
        self.rank = rank
        self.stmt: Any = None
        self.runtime: Any = None  # the multi-rank runtime, when several ranks run
        self._ids: dict[Any, int] = {}
        self._stmts: list[Any] = []
        # Barrier epochs: block epoch per block, warp epoch per warp (a barrier orders the accesses
        # before it against those after it, see hazards.py).
        self.block_epoch = np.zeros(max(1, len(lanes.blocks)), dtype=np.int64)
        self.warp_epoch = np.zeros(max(1, lanes.num_warps), dtype=np.int64)

    def stmt_id(self, stmt: Any = None) -> int:
        s = self.stmt if stmt is None else stmt
        i = self._ids.get(s)
        if i is None:
            i = self._ids[s] = len(self._stmts)
            self._stmts.append(s)
        return i

    def stmt_of(self, i: int) -> Any:
        return self._stmts[i] if 0 <= i < len(self._stmts) else None

    def access(self, what: str, lanes: Any, stmt: Any = None) -> Access:
        s = self.stmt if stmt is None else stmt
        threads = self.lanes.describe(np.atleast_1d(np.asarray(lanes))) if lanes is not None else []
        origin = self.origin(s) if self.origin is not None and s is not None else None
        return Access(what, s, threads, origin)

    def where(self) -> str:
        return "" if self.rank is None else f" on rank {self.rank}"
