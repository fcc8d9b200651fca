"""Lowering over fragments: each thread loops over its own registers of a fragment layout.

`iterate_fragment(F, ...)` emits `for lo: for v in vectorized(V):` over the registers of the calling
thread, recovering each register's logical coordinates from F's inverse. V > 1 when V consecutive
registers hold V consecutive elements of the last dimension (checked exhaustively), so accesses to
global or shared memory through those coordinates can become vector accesses.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np

from ..buffer import Buffer, make_buffer
from ..dtype import int32
from ..errors import UnsupportedError
from ..expr import EQ, Call, IntImm, PrimExpr, Var
from ..intrin import INTRINSICS
from ..layout import Fragment, Layout
from ..layout.numeric import evaluate_grid, grid
from ..stmt import BufferStore, Evaluate, For, ForKind, IfThenElse, Stmt
from ..visitor import Mutator, collect, substitute


def intrinsic_is_pure(op: str) -> bool:
    """Device-header functions (`tsir.<header>.<fn>`) are treated as side-effecting."""
    entry = INTRINSICS.get(op)
    return entry is not None and entry.pure


__all__ = [
    "iterate_fragment",
    "fragment_local_buffer",
    "fragment_vector_width",
    "guard_memory_writes",
]

PER_THREAD = ("local", "local.var", "local.fragment")


class _GuardMemoryWrites(Mutator):
    def __init__(self, cond: PrimExpr):
        super().__init__()
        self.cond = cond

    def visit_BufferStore(self, s: BufferStore) -> Stmt:
        if s.buffer.scope in PER_THREAD:
            return s
        return IfThenElse(self.cond, s)

    def visit_Evaluate(self, s: Evaluate) -> Stmt:
        # Side-effecting calls (atomics, remote stores) write memory; pure ones are values.
        if any(not intrinsic_is_pure(c.op) for c in collect(s, Call)):
            return IfThenElse(self.cond, s)
        return s


def guard_memory_writes(body: Stmt, cond: PrimExpr) -> Stmt:
    """`body` with every write to shared/global memory (stores, side-effecting calls) under `cond`;
    register writes stay unconditional."""
    return _GuardMemoryWrites(cond).visit(body)


def fragment_local_buffer(frag_buf: Buffer, layout: Fragment) -> Buffer:
    """The per-thread register array that stands for a fragment buffer."""
    return make_buffer(frag_buf.name, (layout.local_size,), frag_buf.dtype, "local")


@lru_cache(maxsize=256)
def _inverse(layout: Fragment) -> tuple[Layout, PrimExpr]:
    """(inverse, guard): the guard holds at the (register, thread) slots that hold an element
    (not all do when the tile does not fill whole row groups: 3 rows over 2 groups, say)."""
    return layout.inverse_with_guard()


@lru_cache(maxsize=256)
def fragment_vector_width(layout: Fragment, max_lanes: int) -> int:
    """The widest V <= max_lanes such that registers l..l+V-1 (l % V == 0) of every thread hold
    consecutive elements of the last dimension (and are all held, or all empty)."""
    inv, guard = _inverse(layout)
    n_local, n_thread = layout.local_size, layout.thread_extent
    local, thread = grid((n_local, n_thread), "fragment")
    env = dict(zip(inv.vars, (local, thread)))
    held = (
        np.broadcast_to(evaluate_grid(guard, env), local.shape)
        .reshape(n_local, n_thread)
        .astype(bool)
    )
    coords = [
        np.broadcast_to(evaluate_grid(e, env), local.shape).reshape(n_local, n_thread)
        for e in inv.forward_index
    ]
    v = max_lanes
    while v > 1:
        if n_local % v == 0:
            ok = True
            for lane in range(1, v):
                base = slice(0, n_local, v)
                shifted = slice(lane, n_local, v)
                if not np.array_equal(held[shifted], held[base]):
                    ok = False
                    break
                for d, c in enumerate(coords):
                    expect = c[base] + (lane if d == len(layout.input_shape) - 1 else 0)
                    if not np.array_equal(c[shifted][held[base]], expect[held[base]]):
                        ok = False
                        break
                if not ok:
                    break
            if ok:
                return v
        v //= 2
    return 1


def iterate_fragment(
    layout: Fragment,
    thread: PrimExpr,
    num_threads: int,
    make_body: Callable[[list[PrimExpr], PrimExpr], Stmt],
    *,
    max_lanes: int = 1,
    only_replica_zero: bool | str = False,
    name: str = "l",
) -> Stmt:
    """Loops over the calling thread's registers of `layout`; `make_body(coords, local)` builds the
    body for the register `local` holding logical element `coords`.

    With replicated layouts several threads hold each element. `only_replica_zero=True` runs the
    whole body in the first holder only; `only_replica_zero="memory"` runs every register update
    in all holders (each keeps its copy current) but the stores to shared or global memory and the
    atomics in the first holder only (one write per element, no duplicate atomics, no race)."""
    if layout.thread_range is not None:
        raise UnsupportedError("fragments bound to a thread sub-range are not supported yet")
    inv, guard = _inverse(layout)
    lanes = fragment_vector_width(layout, max_lanes) if max_lanes > 1 else 1
    lo = Var(f"{name}_o", int32)
    v = Var(f"{name}_v", int32)
    base = lo * lanes if lanes > 1 else lo
    mapping = {inv.vars[0]: base, inv.vars[1]: thread}
    out = inv.forward((base, thread))
    ndim = len(layout.input_shape)
    coords = list(out[:ndim])
    if lanes > 1:
        coords[-1] = coords[-1] + v
    local = base + v if lanes > 1 else base
    body = make_body(coords, local)
    if not (isinstance(guard, IntImm) and guard.value):
        # Register slots past the tile: no element, nothing to do (vectors are held whole).
        body = IfThenElse(substitute(guard, {inv.vars[0]: base, inv.vars[1]: thread}), body)
    if only_replica_zero and layout.replicate_size > 1:
        first = EQ(out[ndim], IntImm(0, out[ndim].dtype))
        body = (
            guard_memory_writes(body, first)
            if only_replica_zero == "memory"
            else IfThenElse(first, body)
        )
    if lanes > 1:
        body = For(v, IntImm(0, int32), IntImm(lanes, int32), ForKind.VECTORIZED, body)
    trips = layout.local_size // lanes
    stmt: Stmt = For(lo, IntImm(0, int32), IntImm(trips, int32), ForKind.UNROLLED, body)
    if layout.thread_extent < num_threads:
        stmt = IfThenElse(thread < layout.thread_extent, stmt)
    _ = mapping
    return stmt


_ = Any
