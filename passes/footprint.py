"""Which warpgroups touch which elements of a shared buffer: a statement's accesses, enumerated.

ThreadSync asks, for two conflicting stretches of code, whether every element that both touch is
touched by the threads of one warpgroup only (threads [128 w, 128 w + 128) of the block): then the
warpgroup's own named barrier orders the hazard, and the other warpgroups need not wait. The answer
comes from the code: every load, store and declared pointer effect of the statement is evaluated
for every thread of the range and every iteration of the loops inside the statement (numpy arrays
over that grid, C semantics), under the conditions of the `if`s around it.

A footprint is exact or absent. Anything that cannot be enumerated -- a loop whose bounds vary or
are not known inside the statement, an index that reads memory or a variable bound outside it (a
loop counter of an enclosing loop), a view, a pointer effect whose extent the call does not state
(a wgmma descriptor), an index outside the buffer, a grid too large -- gives None, and the caller
falls back to a barrier across all threads. TMA stores state their extent: the box of the
`tma_descriptor` they name, read from the shared address they are given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from tsir.buffer import Buffer
from tsir.expr import (
    EQ,
    GE,
    GT,
    LE,
    LT,
    NE,
    Add,
    And,
    Broadcast,
    BufferLoad,
    Call,
    Cast,
    Div,
    FloorDiv,
    FloorMod,
    IntImm,
    Let,
    Max,
    Min,
    Mul,
    Not,
    Or,
    PrimExpr,
    Ramp,
    Select,
    Sub,
    Var,
    const_value,
)
from tsir.intrin import Access, device_function
from tsir.stmt import (
    Allocate,
    AttrStmt,
    BufferStore,
    DeclBuffer,
    Evaluate,
    For,
    IfThenElse,
    LetStmt,
    SeqStmt,
    Stmt,
)

__all__ = ["WARPGROUP", "Footprint", "footprints", "thread_values"]

WARPGROUP = 128
_MAX_LOOPS = 6  # loop axes of the grid, after the thread axis
_MAX_POINTS = 1 << 21  # threads x iterations enumerated at most
_INT32_LIMIT = 1 << 31


@dataclass(frozen=True, slots=True)
class Footprint:
    """Per element of a buffer (flat, row-major), the bit set of the warpgroups (bit w: threads
    [128 w, 128 w + 128) of the block) that read it and that write it (stores, atomics, TMA-store
    reads), and the lowest and highest thread that touches it (equal: one thread only)."""

    reads: np.ndarray
    writes: np.ndarray
    tmin: np.ndarray
    tmax: np.ndarray

    def union(self, o: Footprint) -> Footprint:
        return Footprint(
            self.reads | o.reads,
            self.writes | o.writes,
            np.minimum(self.tmin, o.tmin),
            np.maximum(self.tmax, o.tmax),
        )

    def _hazards(self, later: Footprint) -> np.ndarray:
        """The elements where an access here and a later one conflict (one of them writes)."""
        return ((self.writes != 0) & ((later.reads | later.writes) != 0)) | (
            (self.reads != 0) & (later.writes != 0)
        )

    def crosses(self, later: Footprint) -> bool:
        """Is there an element where an access here and a later one conflict (one writes) and
        the two come from different warpgroups, or either from more than one?"""
        both = self._hazards(later)
        if not both.any():
            return False
        u = (self.reads | self.writes | later.reads | later.writes)[both]
        return bool((u & (u - 1)).any())  # more than one bit set

    def one_thread(self, later: Footprint) -> bool:
        """Is every element where an access here and a later one conflict touched, here and
        later, by one and the same thread (whose program order orders them)?"""
        both = self._hazards(later)
        lo = np.minimum(self.tmin, later.tmin)[both]
        hi = np.maximum(self.tmax, later.tmax)[both]
        return bool((lo == hi).all())

    def partitioned(self) -> bool:
        """Does one warpgroup at most touch each element?"""
        u = self.reads | self.writes
        return not (u & (u - 1)).any()


class _Unknown(Exception):
    """The statement's accesses to the buffer cannot be enumerated."""


def footprints(
    s: Stmt,
    buffers: set[Buffer],
    tid: Var,
    lo: int,
    hi: int,
    lets: dict[Var, PrimExpr],
    aliases: dict[Buffer, Buffer] | None = None,
) -> dict[Buffer, Footprint | None]:
    """The footprint of `s` on each of `buffers` (None: not enumerable), for threads [lo, hi) of
    a block whose thread index is `tid`; `lets` gives the values of variables bound around `s`
    (a thread's warpgroup index, say), evaluated when `s` uses them; `aliases` maps each view
    (T.view) to the buffer whose memory it is: an access through a view of a buffer makes its
    footprint unknown."""
    out: dict[Buffer, Footprint | None] = {}
    for b in buffers:
        views = {v for v, base in (aliases or {}).items() if base is b and v is not b}
        try:
            out[b] = _Enumerate(b, tid, lo, hi, lets, views).run(s)
        except _Unknown:
            out[b] = None
    return out


def thread_values(e: PrimExpr, tid: Var, lo: int, hi: int) -> np.ndarray | None:
    """The value of `e` in each thread of [lo, hi) (an expression of the thread index alone), or
    None when it depends on anything else."""
    try:
        ev = _Enumerate(None, tid, lo, hi, {})
        v = np.broadcast_to(ev.eval(e), ev.shape)
    except _Unknown:
        return None
    return v.reshape(hi - lo, -1)[:, 0]


class _Enumerate:
    def __init__(
        self,
        buf: Buffer | None,
        tid: Var,
        lo: int,
        hi: int,
        lets: dict[Var, PrimExpr],
        views: set[Buffer] | None = None,
    ) -> None:
        self.buf = buf
        self.views = views or set()
        self.lets = lets
        self.depth = 0
        self.shape = [hi - lo] + [1] * _MAX_LOOPS
        threads = np.arange(lo, hi, dtype=np.int64).reshape(self.shape)
        self.env: dict[Var, Any] = {tid: threads}
        self.threads = threads
        self.bit = (np.int64(1) << (threads // WARPGROUP)).astype(np.int64)
        if buf is not None:
            n = 1
            for d in buf.shape:
                if not isinstance(d, IntImm):
                    raise _Unknown
                n *= d.value
            self.size = n
            self.fp = Footprint(
                np.zeros(n, np.int64),
                np.zeros(n, np.int64),
                np.full(n, hi, np.int64),
                np.full(n, -1, np.int64),
            )

    def run(self, s: Stmt) -> Footprint:
        self.stmt(s, np.ones(self.shape[:1] + [1] * _MAX_LOOPS, bool))
        return self.fp

    # -- statements ---------------------------------------------------------------------------
    def stmt(self, s: Stmt, mask: np.ndarray) -> None:
        if isinstance(s, SeqStmt):
            for x in s.stmts:
                self.stmt(x, mask)
            return
        if self.buf is not None and isinstance(s, DeclBuffer):
            if s.base is self.buf or s.buffer is self.buf or s.buffer in self.views:
                raise _Unknown  # a view of the buffer: its offset is not enumerated here
        # Loads in the statement's own expressions (a condition, a bound, a let's value, a
        # store's value and indices), in the threads that reach it.
        for x in _children(s):
            if isinstance(x, PrimExpr):
                self.expr(x, mask)
        if isinstance(s, (AttrStmt, Allocate, DeclBuffer)):
            self.stmt(s.body, mask)
        elif isinstance(s, LetStmt):
            self.env[s.var] = self._try(s.value)
            self.stmt(s.body, mask)
        elif isinstance(s, IfThenElse):
            c = self._try(s.cond)
            if c is None:  # either branch may run in any thread: both, unconditionally
                self.stmt(s.then_case, mask)
                if s.else_case is not None:
                    self.stmt(s.else_case, mask)
                return
            self.stmt(s.then_case, mask & c)
            if s.else_case is not None:
                self.stmt(s.else_case, mask & ~c)
        elif isinstance(s, For):
            self.loop(s, mask)
        elif isinstance(s, BufferStore):
            if s.buffer in self.views:
                raise _Unknown  # through a view (T.view): not enumerated here
            if s.buffer is self.buf:
                self.record(self.fp.writes, s.indices, mask)
        elif isinstance(s, Evaluate):
            pass
        elif self.buf is not None and any(
            getattr(x, "buffer", None) is self.buf for x in _children(s)
        ):
            raise _Unknown
        else:
            for x in _children(s):
                if isinstance(x, Stmt):
                    self.stmt(x, mask)

    def loop(self, s: For, mask: np.ndarray) -> None:
        lo, ext = self._scalar(s.min), self._scalar(s.extent)
        if lo is None or ext is None:
            # Bounds not known here: the counter is unknown, so an access that depends on it is
            # not enumerable; the others are the same in every iteration.
            self.env[s.loop_var] = None
            try:
                self.stmt(s.body, mask)
            finally:
                del self.env[s.loop_var]
            return
        if self.depth >= _MAX_LOOPS or ext < 0:
            raise _Unknown
        if ext == 0:
            return
        points = math.prod(self.shape) * ext
        if points > _MAX_POINTS:
            raise _Unknown
        axis = 1 + self.depth
        shape = [1] * (1 + _MAX_LOOPS)
        shape[axis] = ext
        self.env[s.loop_var] = np.arange(lo, lo + ext, dtype=np.int64).reshape(shape)
        old = self.shape[axis]
        self.shape[axis] = ext
        self.depth += 1
        try:
            self.stmt(s.body, mask)
        finally:
            self.depth -= 1
            self.shape[axis] = old
            del self.env[s.loop_var]

    def _scalar(self, e: PrimExpr) -> int | None:
        v = self._try(e)
        if v is None:
            return None
        a = np.asarray(v)
        if a.size != 1:
            flat = a.reshape(-1)
            if not (flat == flat[0]).all():
                return None
            return int(flat[0])
        return int(a.reshape(-1)[0])

    # -- accesses -----------------------------------------------------------------------------
    def record(self, into: np.ndarray, indices: Any, mask: np.ndarray) -> None:
        flat = self.flat_index(indices)
        for lane_off in flat:
            idx, sel = np.broadcast_arrays(lane_off, mask)
            tids = np.broadcast_to(self.threads, idx.shape)[sel]
            self._mark(into, idx[sel], np.broadcast_to(self.bit, idx.shape)[sel], tids)

    def flat_index(self, indices: Any) -> list[np.ndarray]:
        """The flat element index of each lane of an access (a Ramp index has several)."""
        assert self.buf is not None
        dims = [const_value(d) for d in self.buf.shape]  # constants: checked in __init__
        lanes = 1
        parts: list[list[Any]] = []
        for i in indices:
            if isinstance(i, Ramp):
                base, stride = self.eval(i.base), self.eval(i.stride)
                lanes = max(lanes, i.lanes)
                parts.append([base + stride * k for k in range(i.lanes)])
            elif isinstance(i, Broadcast):
                parts.append([self.eval(i.value)])
            else:
                parts.append([self.eval(i)])
        out = []
        for k in range(lanes):
            flat: Any = 0
            for d, p in zip(dims, parts, strict=True):
                assert d is not None
                flat = flat * d + p[min(k, len(p) - 1)]
            out.append(np.asarray(flat, dtype=np.int64))
        return out

    def _mark(self, into: np.ndarray, idx: np.ndarray, bits: Any, tids: Any) -> None:
        if idx.size == 0:
            return
        if idx.min() < 0 or idx.max() >= self.size:
            raise _Unknown  # outside the buffer: not a plain access of it
        np.bitwise_or.at(into, idx, bits)
        np.minimum.at(self.fp.tmin, idx, tids)
        np.maximum.at(self.fp.tmax, idx, tids)

    def expr(self, e: PrimExpr, mask: np.ndarray) -> None:
        """Record the accesses to the buffer that evaluating `e` makes."""
        if self.buf is None:
            return
        if isinstance(e, BufferLoad):
            for i in e.indices:
                self.expr(i, mask)
            if e.buffer in self.views:
                raise _Unknown  # through a view (T.view): not enumerated here
            if e.buffer is self.buf:
                self.record(self.fp.reads, e.indices, mask)
            return
        if isinstance(e, Call):
            self.call(e, mask)
            return
        for x in _children(e):
            if isinstance(x, PrimExpr):
                self.expr(x, mask)

    def call(self, c: Call, mask: np.ndarray) -> None:
        fn = device_function(c.op)
        if c.op == "address_of":
            if self.names(c):
                raise _Unknown  # a pointer escaping to something without declared effects
            return
        if fn is None:
            for a in c.args:
                self.expr(a, mask)
            return
        for i, a in enumerate(c.args):
            mode = fn.effects[i] if i < len(fn.effects) else None
            if mode is None or mode is Access.MBARRIER or not self.names(a):
                if mode is None:
                    self.expr(a, mask)
                continue
            if not c.op.startswith("tsir.tma.tma_store_"):
                raise _Unknown  # the extent of the access is not stated in the call
            self.tma_store(c, a, mask)

    def tma_store(self, c: Call, ptr: PrimExpr, mask: np.ndarray) -> None:
        """A TMA store reads its box's bytes from the shared address `ptr`."""
        assert self.buf is not None
        desc = c.args[0]
        if not (isinstance(desc, Call) and desc.op == "tma_descriptor"):
            raise _Unknown
        box = [self._scalar(x) for x in desc.args[1:-1]]
        if any(x is None for x in box):
            raise _Unknown
        esize = self.buf.dtype.bytes
        start = self.byte_offset(ptr)
        n = math.prod(x for x in box if x is not None)
        starts, sel = np.broadcast_arrays(start, mask)
        bits = np.broadcast_to(self.bit, starts.shape)[sel]
        tids = np.broadcast_to(self.threads, starts.shape)[sel]
        for s0, b, t in zip(starts[sel].tolist(), bits.tolist(), tids.tolist(), strict=True):
            if s0 % esize:
                raise _Unknown
            e0 = s0 // esize
            self._mark(self.fp.reads, np.arange(e0, e0 + n, dtype=np.int64), np.int64(b), t)

    def byte_offset(self, e: PrimExpr) -> Any:
        """`e`, a shared address of this buffer, as a byte offset from its start."""
        assert self.buf is not None
        if isinstance(e, Call) and e.op == "tsir.mbarrier.shared_u32":
            inner = e.args[0]
            if (
                isinstance(inner, Call)
                and inner.op == "address_of"
                and isinstance(inner.args[0], BufferLoad)
                and inner.args[0].buffer is self.buf
            ):
                (flat,) = self.flat_index(inner.args[0].indices)
                return flat * self.buf.dtype.bytes
            raise _Unknown
        if isinstance(e, Add):
            if self.names(e.a):
                return self.byte_offset(e.a) + self.eval(e.b)
            return self.eval(e.a) + self.byte_offset(e.b)
        if isinstance(e, Cast):
            return self.byte_offset(e.value)
        raise _Unknown

    def names(self, e: Any) -> bool:
        """Does `e` mention the buffer (a load or an address of it)? Through a view: unknown."""
        if self.views and any(_names(e, v) for v in self.views):
            raise _Unknown
        return _names(e, self.buf)

    # -- values -------------------------------------------------------------------------------
    def _try(self, e: PrimExpr) -> Any:
        try:
            return self.eval(e)
        except _Unknown:
            return None

    def eval(self, e: PrimExpr) -> Any:
        if isinstance(e, IntImm):
            return np.int64(e.value)
        if isinstance(e, Var):
            if e in self.env:
                v = self.env[e]
                if v is None:
                    raise _Unknown
                return v
            if e in self.lets:
                v = self._try(self.lets[e])
                self.env[e] = v
                if v is None:
                    raise _Unknown
                return v
            raise _Unknown
        if isinstance(e, Cast):
            v = self.eval(e.value)
            if e.dtype.is_bool:
                return v != 0
            if not e.dtype.is_int:
                raise _Unknown
            return v
        if isinstance(e, (Add, Sub, Mul, Min, Max, FloorDiv, FloorMod, Div)):
            a, b = self.eval(e.a), self.eval(e.b)
            v = _arith(e, a, b)
            if np.any(np.abs(v) >= _INT32_LIMIT):
                raise _Unknown  # C would wrap (or leave it undefined): not modelled here
            return v
        if isinstance(e, (EQ, NE, LT, LE, GT, GE)):
            a, b = self.eval(e.a), self.eval(e.b)
            return _compare(e, a, b)
        if isinstance(e, And):
            return self.eval(e.a) & self.eval(e.b)
        if isinstance(e, Or):
            return self.eval(e.a) | self.eval(e.b)
        if isinstance(e, Not):
            return ~self.eval(e.a)
        if isinstance(e, Select):
            return np.where(self.eval(e.cond), self.eval(e.true_value), self.eval(e.false_value))
        if isinstance(e, Let):
            self.env[e.var] = self._try(e.value)
            return self.eval(e.body)
        if isinstance(e, Call) and len(e.args) == 2 and e.op in _BITWISE:
            return _BITWISE[e.op](self.eval(e.args[0]), self.eval(e.args[1]))
        raise _Unknown


def _arith(e: PrimExpr, a: Any, b: Any) -> Any:
    if isinstance(e, Add):
        return a + b
    if isinstance(e, Sub):
        return a - b
    if isinstance(e, Mul):
        return a * b
    if isinstance(e, Min):
        return np.minimum(a, b)
    if isinstance(e, Max):
        return np.maximum(a, b)
    if np.any(np.asarray(b) == 0):
        raise _Unknown  # a division by zero is undefined: nothing to enumerate
    if isinstance(e, FloorDiv):
        return np.floor_divide(a, b)
    if isinstance(e, FloorMod):
        return np.mod(a, b)
    # Div: C's truncating division of integers
    q = np.abs(a) // np.abs(b)
    return np.where((np.asarray(a) < 0) ^ (np.asarray(b) < 0), -q, q)


def _compare(e: PrimExpr, a: Any, b: Any) -> Any:
    if isinstance(e, EQ):
        return a == b
    if isinstance(e, NE):
        return a != b
    if isinstance(e, LT):
        return a < b
    if isinstance(e, LE):
        return a <= b
    if isinstance(e, GT):
        return a > b
    return a >= b


_BITWISE = {
    "bitwise_xor": np.bitwise_xor,
    "bitwise_and": np.bitwise_and,
    "bitwise_or": np.bitwise_or,
    "shift_left": np.left_shift,
    "shift_right": np.right_shift,
}


def _names(e: Any, buf: Buffer | None) -> bool:
    """Does expression `e` mention `buf` (a load or an address of it)?"""
    if buf is None or not isinstance(e, PrimExpr):
        return False
    if isinstance(e, BufferLoad) and e.buffer is buf:
        return True
    return any(_names(x, buf) for x in _children(e))


def _children(n: Any) -> list[Any]:
    """The direct child nodes and tuples of nodes of an IR node."""
    out: list[Any] = []
    for name in getattr(n, "__dataclass_fields__", ()):
        v = getattr(n, name)
        if isinstance(v, (tuple, list)):
            out.extend(v)
        else:
            out.append(v)
    return out
