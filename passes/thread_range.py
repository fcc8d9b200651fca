"""Tile ops inside a thread-dependent `T.If`: the range of threads that runs them.

A tile op (or T.Parallel nest) under `with T.If(tx < 128):` runs in threads [0, 128) only, so its
work must be spread over those threads, and a barrier inside it must be one those threads alone
can pass (a named barrier, `bar.sync id, count`). This module recognizes conditions that select a
contiguous range of a 1-D block's threads and rewrites an op's block barriers into the range's
named barrier. Conditions that select threads any other way are refused where a tile op sits
under them (no silent spreading over threads that never run the op).
"""

from __future__ import annotations

from dataclasses import dataclass

from tsir.dtype import int32
from tsir.errors import UnsupportedError
from tsir.expr import GE, GT, LE, LT, And, BufferLoad, Call, IntImm, PrimExpr, Var
from tsir.intrin import device_function
from tsir.stmt import AttrStmt, Evaluate, For, ForKind, KernelLaunch, Stmt, TileOpStmt
from tsir.visitor import Mutator, collect

from .footprint import thread_values

__all__ = [
    "ThreadRange",
    "thread_range_of",
    "complement",
    "has_tile_work",
    "varies_across_threads",
    "NamedBarriers",
    "named_barrier",
    "THREAD_RANGE_ATTR",
    "NAMED_BARRIER_OPS",
    "MAX_BARRIER_ID",
    "used_barrier_ids",
]

THREAD_RANGE_ATTR = "thread_range"
# The calls that take a named barrier id first (bar.sync / bar.arrive); ids are 0..15.
NAMED_BARRIER_OPS = (
    "tsir.sync.named_barrier",
    "tsir.mbarrier.named_barrier_sync",
    "tsir.mbarrier.named_barrier_arrive",
)
MAX_BARRIER_ID = 15

PER_THREAD_SCOPES = ("local", "local.var", "local.fragment")


@dataclass(frozen=True, slots=True)
class ThreadRange:
    """Threads [lo, hi) of the block; `barrier` is the named barrier id they synchronize on."""

    lo: int
    hi: int
    barrier: int = 0

    @property
    def count(self) -> int:
        return self.hi - self.lo


def varies_across_threads(cond: PrimExpr, thread_vars: set[Var]) -> bool:
    if any(v in thread_vars for v in collect(cond, Var)):
        return True
    return any(ld.buffer.scope in PER_THREAD_SCOPES for ld in collect(cond, BufferLoad))


def has_tile_work(s: Stmt | None) -> bool:
    """Does `s` hold a tile op or a T.Parallel nest whose work is spread over a block's threads?
    (Per-thread ops such as `T.st` and warp-collective ones run in whichever threads call them.)"""
    if s is None:
        return False
    if any(t.op.spread() == "block" for t in collect(s, TileOpStmt)):
        return True
    return any(f.kind is ForKind.PARALLEL for f in collect(s, For))


def thread_range_of(cond: PrimExpr, tid: Var, outer: ThreadRange) -> ThreadRange | None:
    """The threads of `outer` for which `cond` holds, when that is a contiguous range of `tid`
    (`tid < c`, `tid >= c`, and conjunctions of such); None otherwise."""
    lo, hi = outer.lo, outer.hi
    for part in _conjuncts(cond):
        bound = _bound(part, tid)
        if bound is None:
            return None
        lo, hi = max(lo, bound[0]), min(hi, bound[1])
    return ThreadRange(lo, max(lo, hi))


def complement(inner: ThreadRange, outer: ThreadRange) -> ThreadRange | None:
    """The threads of `outer` not in `inner`, when they are contiguous."""
    if inner.lo <= outer.lo:
        return ThreadRange(max(inner.hi, outer.lo), outer.hi)
    if inner.hi >= outer.hi:
        return ThreadRange(outer.lo, min(inner.lo, outer.hi))
    return None


def _conjuncts(cond: PrimExpr) -> list[PrimExpr]:
    if isinstance(cond, And):
        return _conjuncts(cond.a) + _conjuncts(cond.b)
    return [cond]


def _bound(c: PrimExpr, tid: Var) -> tuple[int, int] | None:
    big = 1 << 30
    if not isinstance(c, (LT, LE, GT, GE)):
        return None
    a, b = c.a, c.b
    if a is tid and isinstance(b, IntImm):
        v = b.value
        return {LT: (0, v), LE: (0, v + 1), GT: (v + 1, big), GE: (v, big)}[type(c)]
    if b is tid and isinstance(a, IntImm):
        v = a.value  # `v < tid` is `tid > v`
        return {LT: (v + 1, big), LE: (v, big), GT: (0, v), GE: (0, v + 1)}[type(c)]
    return None


class NamedBarriers(Mutator):
    """An op lowered for a thread range: its block barriers become the range's named barrier."""

    def __init__(self, rng: ThreadRange, what: str):
        super().__init__()
        self.rng = rng
        self.what = what

    def visit_Evaluate(self, s: Evaluate) -> Stmt:
        if isinstance(s.value, Call) and s.value.op == "sync_threads":
            return named_barrier(self.rng, self.what)
        for c in collect(s, Call):
            fn = device_function(c.op)
            if fn is not None and fn.collective == "block":
                raise UnsupportedError(
                    f"{self.what} calls `{c.op}`, which every thread of the block must reach, but "
                    f"it runs in threads [{self.rng.lo}, {self.rng.hi}) only; move it out of the T.If",
                    where="LowerTileOp",
                )
        return s


def named_barrier(rng: ThreadRange, what: str) -> Stmt:
    if rng.lo % 32 or rng.count % 32 or rng.count <= 0:
        raise UnsupportedError(
            f"{what} synchronizes threads [{rng.lo}, {rng.hi}) among themselves, which needs a "
            f"range of whole warps (multiples of 32)",
            where="LowerTileOp",
        )
    return Evaluate(
        Call(
            int32, "tsir.sync.named_barrier", (IntImm(rng.barrier, int32), IntImm(rng.count, int32))
        )
    )


def used_barrier_ids(body: Stmt, k: KernelLaunch) -> set[int]:
    """The named barrier ids `body` (of kernel `k`) uses: those its barrier calls name -- a
    constant, or an expression of the thread index (ThreadSync's warpgroup barriers), evaluated
    in every thread -- and its thread ranges' (whose barriers ThreadSync places). An id that
    depends on anything else may be any of them."""
    out: set[int] = set()
    for c in collect(body, Call):
        if c.op.split("<", 1)[0] not in NAMED_BARRIER_OPS or not c.args:
            continue
        bid = c.args[0]
        if isinstance(bid, IntImm):
            out.add(bid.value)
            continue
        vals = (
            None if len(k.threads) != 1 else thread_values(bid, k.thread_vars[0], 0, k.threads[0])
        )
        out |= set(range(MAX_BARRIER_ID + 1)) if vals is None else {int(v) for v in vals}
    for a in collect(body, AttrStmt):
        if a.key == THREAD_RANGE_ATTR:
            out.add(int(a.value[2]))
    return out
