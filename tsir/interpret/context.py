"""The run context shared by the executor, memory and device calls: what runs now, who runs it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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

    def __init__(
        self,
        lanes: LaneMap,
        *,
        check: bool = True,
        global_guard: bool = False,
        races: bool = True,
        origin: Callable[[Any], str | None] | None = None,
        rank: int | None = None,
        implicit_sync: bool = False,
    ):
        self.lanes = lanes
        self.check = check
        self.races = races and check
        # Barriers are implicit (before ThreadSync): each tile op's code completes in all the
        # threads that run it before the next begins, also across warpgroups run as strands.
        self.implicit_sync = implicit_sync
        self.global_guard = global_guard
        self.origin = origin
        self.rank = rank
        self.stmt: Any = None
        self.runtime: Any = None  # the multi-rank runtime, when several ranks run
        self.grid_dims: tuple[int, ...] = ()  # the launch's whole grid (blocks may run in sweeps)
        self._ids: dict[Any, int] = {}
        self._stmts: list[Any] = []
        # Barrier epochs: block epoch per block, warp epoch per warp (a barrier orders the accesses
        # before it against those after it, see hazards.py).
        self.block_epoch = np.zeros(max(1, len(lanes.blocks)), dtype=np.int64)
        self.warp_epoch = np.zeros(max(1, lanes.num_warps), dtype=np.int64)
        # Vector clocks, one per warp over the warps of its block: vc[w, j] is the latest epoch of
        # warp j that warp w is ordered after (vc[w, w] is w's own epoch). __syncthreads joins
        # every warp of a block; mbarriers, named barriers and TMA completions join some
        # (release / acquire), see hazards.py.
        self.warps_per_block = max(1, -(-lanes.per_block // 32))
        nw = max(1, lanes.num_warps)
        self.vc = np.zeros((nw, self.warps_per_block), dtype=np.int64)
        self.vc[np.arange(nw), np.arange(nw) % self.warps_per_block] = 1
        # Per lane: fence.proxy.async and wgmma.fence executed so far (hazards.py, wgmma_calls.py).
        self.proxy_fences = np.zeros(max(1, lanes.n), dtype=np.int64)
        self.wgmma_fences = np.zeros(max(1, lanes.n), dtype=np.int64)

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

    # -- happens-before between warps ----------------------------------------------------------
    def local_warp(self, warps: np.ndarray) -> np.ndarray:
        return warps % self.warps_per_block

    def release(self, warps: np.ndarray) -> np.ndarray:
        """The warps release (arrive on a barrier): their joined clock, to store in the barrier;
        their own epochs move on, so their later accesses are not covered by it."""
        warps = np.unique(warps)
        snap = self.vc[warps].max(axis=0)
        self.vc[warps, self.local_warp(warps)] += 1
        return snap

    def acquire(self, warps: np.ndarray, clock: np.ndarray) -> None:
        """The warps acquire `clock` (a barrier's released clock): ordered after what it covers.
        Their lanes are also ordered after their own warp's earlier accesses (a warp's lanes are
        told apart only by warp epochs: a release by one lane, acquired by another, must order
        them; the price is that two lanes of a warp are not checked across such a wait)."""
        warps = np.unique(warps)
        self.vc[warps] = np.maximum(self.vc[warps], clock[None, :])
        self.warp_epoch[warps] += 1

    def join(self, warps: np.ndarray) -> None:
        """A barrier among `warps` (all of one block): each is ordered after all the others'
        earlier accesses, and their warp epochs move on (lanes of one warp are ordered too)."""
        warps = np.unique(warps)
        self.vc[warps] = self.vc[warps].max(axis=0)[None, :]
        self.vc[warps, self.local_warp(warps)] += 1
        self.warp_epoch[warps] += 1

    def join_blocks(self, reached: np.ndarray) -> None:
        """`__syncthreads()` in the blocks where `reached` (per block of the sweep) is true."""
        nb, wpb = reached.shape[0], self.warps_per_block
        vc = self.vc.reshape(nb, wpb, wpb)
        sub = vc[reached]
        sub[:] = sub.max(axis=1, keepdims=True)
        sub[:, np.arange(wpb), np.arange(wpb)] += 1
        vc[reached] = sub
        self.block_epoch[reached] += 1
        self.warp_epoch[np.repeat(reached, wpb)] += 1
