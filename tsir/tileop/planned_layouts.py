"""The fragment layouts tsir chooses itself when nothing fixes one (LayoutInference's FREE stage).

A row-group layout spreads an R x N register tile over T threads: groups of G consecutive threads
(G a power of two) share a row, each thread holding V-element vectors of it round-robin, and the
T / G groups take rows round-robin:

    thread(i, j) = (i % NG) * G + (j // V) % G            NG = T / G groups
    local(i, j)  = (i // NG) * (N / (V*G)) * V + (j // (V*G)) * V + j % V

So a warp reads V*G consecutive elements of a row per step (coalesced, V-wide vectors), a row's
reduction is a reduction over G consecutive lanes (shuffles, plus shared memory past one warp),
and the per-row results (`row_reduced_fragment`) live in register slot i // NG of every thread of
row i's group. 1-D tiles are the R = 1 case.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from ..layout import Fragment

__all__ = [
    "RowGroup",
    "MmaTile",
    "FragmentPlan",
    "plan_row_group",
    "row_group_fragment",
    "reduced_fragment",
    "row_fragment",
]


@dataclass(frozen=True)
class RowGroup:
    rows: int
    cols: int
    threads: int
    group: int  # G: threads per row
    vector: int  # V: elements per vector

    def print_form(self, p: Any) -> str:
        return _dataclass_form(self)

    @property
    def groups(self) -> int:
        return self.threads // self.group

    @property
    def row_slots(self) -> int:
        """Rows per thread (the last slot may be past the tile when rows % groups != 0)."""
        return -(-self.rows // self.groups)

    @property
    def col_slots(self) -> int:
        return self.cols // (self.vector * self.group)

    @property
    def local_size(self) -> int:
        return self.row_slots * self.col_slots * self.vector


def _dataclass_form(x: Any) -> str:
    """The printer's form of a plan: `tsir.tileop.planned_layouts.RowGroup(rows=8, ...)`."""
    args = ", ".join(f"{f.name}={getattr(x, f.name)!r}" for f in fields(x))
    return f"tsir.tileop.planned_layouts.{type(x).__name__}({args})"


def _pow2_at_most(n: int) -> int:
    p = 1
    while p * 2 <= n:
        p *= 2
    return p


def plan_row_group(shape: tuple[int, ...], threads: int, elem_bytes: int) -> RowGroup:
    """The row-group parameters for a tile (2-D (R, N) or 1-D (N,)), V up to 16 bytes.

    The tile is spread over the largest power of two of the block's threads (all of them in the
    usual 2**k-thread blocks): thread and register indices are then digit maps that invert
    exactly; in a 96-thread block, threads 64..95 hold none of this fragment."""
    threads = _pow2_at_most(threads)
    rows, cols = (1, shape[0]) if len(shape) == 1 else (shape[0], shape[1])
    vector = max(1, 16 // elem_bytes)
    while vector > 1 and cols % vector:
        vector //= 2

    def group_for(v: int) -> int:
        g = 1
        while g * 2 <= threads and (cols // v) % (g * 2) == 0:
            g *= 2
        return g

    group = group_for(vector)
    # Few rows: narrower vectors let more threads share a row instead of idling whole groups.
    while vector > 1 and threads // group > rows:
        vector //= 2
        group = group_for(vector)
    return RowGroup(rows, cols, threads, group, vector)


def row_group_fragment(p: RowGroup, ndim: int = 2) -> Fragment:
    ng, g, v, cs = p.groups, p.group, p.vector, p.col_slots
    if ndim == 1:
        return Fragment.from_fn(
            (p.cols,), lambda j: (j // v) % g, lambda j: (j // (v * g)) * v + j % v
        )
    return Fragment.from_fn(
        (p.rows, p.cols),
        lambda i, j: (i % ng) * g + (j // v) % g,
        lambda i, j: (i // ng) * cs * v + (j // (v * g)) * v + j % v,
    )


def reduced_fragment(p: RowGroup, dim: int) -> Fragment:
    """The layout of a reduction of a row-group tile along `dim` (1: per row, 0: per column)."""
    ng, g, v = p.groups, p.group, p.vector
    if dim == 1:
        # Row i's result is held by the G threads of its group, in slot i // NG.
        return Fragment.from_fn((p.rows,), lambda i, rep: (i % ng) * g + rep, lambda i: i // ng, g)
    # Column j's result: every group's thread (j // V) % G, in its column slot.
    return Fragment.from_fn(
        (p.cols,), lambda j, rep: rep * g + (j // v) % g, lambda j: (j // (v * g)) * v + j % v, ng
    )


@dataclass(frozen=True)
class MmaTile:
    """A gemm accumulator's tiling: an M x N tile over warps_m x warps_n warps (mma m16n8)."""

    m: int
    n: int
    warps_m: int
    warps_n: int

    def print_form(self, p: Any) -> str:
        return _dataclass_form(self)

    def row_fragment(self) -> Fragment:
        """One value per row, held by the 4 lanes of the warp that owns the row (warps_n == 1):
        lane (i % 8) * 4 + rep of warp i // (m / warps_m), in slot (i % warp_m) // 16 * 2 + i % 16 // 8."""
        wm = self.m // self.warps_m
        return Fragment.from_fn(
            (self.m,),
            lambda i, rep: (i // wm) * 32 + (i % 8) * 4 + rep,
            lambda i: (i % wm) // 16 * 2 + (i % 16) // 8,
            4,
        )


def row_fragment(plan: Any) -> Fragment | None:
    """The per-row layout matching a 2-D tile's plan, or None when tsir has none for it."""
    if isinstance(plan, RowGroup) and plan.rows > 1:
        return reduced_fragment(plan, 1)
    if isinstance(plan, MmaTile) and plan.warps_n == 1:
        return plan.row_fragment()
    return None


# What LayoutInference records beside a fragment's layout, for the ops that lower over it.
FragmentPlan = RowGroup | MmaTile
