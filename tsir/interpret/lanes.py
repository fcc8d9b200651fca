"""Lanes and masks: who executes (a lane per (block, thread) at thread level) and which lanes are "
"on."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["Mask", "LaneMap"]


class Mask:
    """The active lanes of a statement: a bool array plus cached facts (all on, the indices on)."""

    __slots__ = ("arr", "all", "_idx", "_any")

    def __init__(self, arr: np.ndarray, all_on: bool | None = None):
        self.arr = arr
        self.all = bool(arr.all()) if all_on is None else all_on
        self._idx: np.ndarray | None = None
        self._any: bool | None = True if self.all and arr.size else None

    @staticmethod
    def full(n: int) -> Mask:
        return Mask(np.ones(n, dtype=bool), True)

    @property
    def n(self) -> int:
        return self.arr.shape[0]

    @property
    def any(self) -> bool:
        if self._any is None:
            self._any = bool(self.arr.any())
        return self._any

    @property
    def idx(self) -> np.ndarray:
        """The indices of the active lanes."""
        if self._idx is None:
            self._idx = np.flatnonzero(self.arr)
        return self._idx

    def __and__(self, cond: np.ndarray) -> Mask:
        """This mask narrowed by a per-lane (shape (n,)) or uniform (shape (1,)) condition."""
        if cond.shape[0] == 1:
            return self if bool(cond[0]) else Mask(np.zeros(self.n, dtype=bool), False)
        return Mask(self.arr & cond)

    def without(self, cond: np.ndarray) -> Mask:
        """The lanes of this mask where `cond` is false."""
        if cond.shape[0] == 1:
            return Mask(np.zeros(self.n, dtype=bool), False) if bool(cond[0]) else self
        return Mask(self.arr & ~cond)


class LaneMap:
    """Who lane `l` is: its block (grid index tuple) and thread (block index tuple).

    Thread level: lanes are (block, thread) pairs of the blocks run in one sweep, block-major. Tile
    level: the lanes of one block's threads (or, inside T.Parallel, its iteration points).
    """

    def __init__(self, blocks: Sequence[tuple[int, ...]], threads: Sequence[int]):
        self.blocks = [tuple(b) for b in blocks]
        self.threads = tuple(threads)
        t = 1
        for x in self.threads:
            t *= x
        self.per_block = t
        self.n = len(self.blocks) * t
        lane = np.arange(self.n, dtype=np.int64)
        self.block_of_lane = lane // t
        self.thread_of_lane = lane % t
        warps_per_block = -(-t // 32)
        self.warp_of_lane = self.block_of_lane * warps_per_block + self.thread_of_lane // 32
        self.num_warps = len(self.blocks) * warps_per_block

    def thread_index(self, lane: int) -> tuple[int, ...]:
        t = int(self.thread_of_lane[lane])
        out = []
        for ext in self.threads:
            out.append(t % ext)
            t //= ext
        return tuple(out)

    def who(self, lane: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return self.blocks[int(self.block_of_lane[lane])], self.thread_index(lane)

    def describe(
        self, lanes: Sequence[int] | np.ndarray, limit: int = 8
    ) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
        seen: list[int] = []
        for x in np.asarray(lanes).reshape(-1).tolist():
            if x not in seen:
                seen.append(int(x))
            if len(seen) >= limit:
                break
        return [self.who(x) for x in seen]

    def thread_var_values(self) -> list[np.ndarray]:
        """threadIdx.x, .y, .z per lane (int32 arrays of shape (n,))."""
        out = []
        t = self.thread_of_lane
        for ext in self.threads:
            out.append((t % ext).astype(np.int32))
            t = t // ext
        return out

    def block_var_values(self) -> list[np.ndarray]:
        """blockIdx.x, .y, .z per lane."""
        b = np.array(self.blocks, dtype=np.int32).reshape(len(self.blocks), -1)
        return [b[:, d][self.block_of_lane] for d in range(b.shape[1])]
