"""Distribute an element-wise loop nest over the threads of a block, vector lanes innermost.

Used by `T.Parallel` on shared/global buffers and by `T.copy`/`T.fill`: element `flat` of the nest
(row-major) is handled by thread `(flat // V) % T` as lane `flat % V` of a V-wide vector, so each
thread touches V consecutive elements of the innermost dimension (16-byte accesses when aligned) and
a warp touches consecutive vectors (coalesced).
"""

from __future__ import annotations

from collections.abc import Callable

from ..dtype import DataType
from ..expr import IntImm, PrimExpr, Var, const_value
from ..stmt import For, ForKind, IfThenElse, Stmt

__all__ = ["partition_loop", "pick_vector_width"]


def pick_vector_width(extents: list[PrimExpr], elem_bytes: int, num_threads: int) -> int:
    """The widest V <= 16 bytes / elem_bytes that divides the innermost extent, keeping threads busy."""
    last = const_value(extents[-1])
    if last is None:
        return 1
    total = 1
    for e in extents:
        c = const_value(e)
        if c is None:
            total = None
            break
        total *= c
    v = max(1, 16 // max(1, elem_bytes))
    while v > 1 and (last % v != 0 or (total is not None and total // v < num_threads and v > 1)):
        v //= 2
    return v


def partition_loop(
    extents: list[PrimExpr],
    make_body: Callable[[list[PrimExpr]], Stmt],
    thread_var: Var,
    num_threads: int,
    vector: int,
    index_dtype: DataType,
    name: str = "i",
) -> Stmt:
    """Loops that cover the nest `extents` with `num_threads` threads and `vector` lanes each.

    `make_body(coords)` builds the body for one element given its coordinates.
    """
    zero = IntImm(0, index_dtype)
    total: PrimExpr = IntImm(1, index_dtype)
    for e in extents:
        total = total * e
    groups = total // vector if vector > 1 else total
    it = Var(f"{name}_o", index_dtype)
    lane = Var(f"{name}_v", index_dtype)
    gt = const_value(groups)
    if gt is not None and gt % num_threads == 0:
        trips: PrimExpr = IntImm(gt // num_threads, index_dtype)
        guarded = False
    else:
        trips = (groups + (num_threads - 1)) // num_threads
        guarded = True
    single = const_value(trips) == 1
    # With one trip the loop disappears and the group index is the thread index.
    base: PrimExpr = zero if single else it
    g = base * num_threads + thread_var if num_threads > 1 else base

    # Decompose the group index into coordinates; the innermost dimension takes the lane.
    coords: list[PrimExpr] = []
    rem = g
    last_groups = extents[-1] // vector if vector > 1 else extents[-1]
    for d in range(len(extents) - 1, -1, -1):
        ext = last_groups if d == len(extents) - 1 else extents[d]
        if d == 0:
            c = rem
        else:
            c = rem % ext
            rem = rem // ext
        if d == len(extents) - 1 and vector > 1:
            c = c * vector + lane
        coords.append(c)
    coords.reverse()
    body = make_body(coords)

    if guarded:
        body = IfThenElse(g < groups, body)
    if vector > 1:
        body = For(lane, zero, IntImm(vector, index_dtype), ForKind.VECTORIZED, body)
    if single:
        return body
    kind = (
        ForKind.UNROLLED
        if (const_value(trips) or 0) and (const_value(trips) or 0) <= 8
        else ForKind.SERIAL
    )
    return For(it, zero, trips, kind, body)
