"""What shared memory a statement touches, as ThreadSync plans with it: reads, writes, atomics,
asynchronous writes (cp.async) and async-proxy reads (wgmma operands, TMA-store sources), each
tagged with the unit (tile op instance) that made it; the deferred TMA-store waits; and what is
ordered within warpgroups only (after a warpgroup's own barrier). Split from thread_sync.py, which
plans the barriers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from tsir.buffer import Buffer
from tsir.dtype import int32
from tsir.errors import UnsupportedError
from tsir.expr import BufferLoad, Call, PrimExpr
from tsir.intrin import Access, device_function
from tsir.stmt import BufferStore, DeclBuffer, Evaluate, Stmt
from tsir.visitor import Visitor, collect

from .footprint import Footprint

__all__ = [
    "SHARED_SCOPES",
    "PER_THREAD_SCOPES",
    "PIPELINE_BUFFERS_ATTR",
    "TILE_OP_ATTR",
    "Tag",
    "Wait",
    "Accesses",
    "make_barrier",
    "make_proxy_fence",
    "is_proxy_fence",
    "is_barrier",
    "wait_stmts",
    "merge_footprints",
    "shared_accesses",
    "written_buffers",
    "shared_views",
    "select",
]

SHARED_SCOPES = ("shared", "shared.dyn")
PER_THREAD_SCOPES = ("local", "local.var", "local.fragment")
PIPELINE_BUFFERS_ATTR = "pipeline_buffers"
TILE_OP_ATTR = "tile_op"  # LowerTileOp's marker around one op's thread-level code


def make_barrier() -> Stmt:
    return Evaluate(Call(int32, "sync_threads", ()))


def make_proxy_fence() -> Stmt:
    return Evaluate(Call(int32, "tsir.mbarrier.fence_proxy_async_shared", ()))


def is_proxy_fence(s: Stmt) -> bool:
    return (
        isinstance(s, Evaluate)
        and isinstance(s.value, Call)
        and s.value.op == "tsir.mbarrier.fence_proxy_async_shared"
    )


def is_barrier(s: Stmt) -> bool:
    return isinstance(s, Evaluate) and isinstance(s.value, Call) and s.value.op == "sync_threads"


Tag = tuple[int, int]  # (unit, generation): which tile op instance made an access


class Wait(NamedTuple):
    """A deferred TMA-store wait: `if (storing thread) tma_store_wait_read<0>()`, and the shared
    tiles its stores read."""

    stmt: Stmt
    tiles: frozenset[Buffer]


def wait_stmts(pending: dict[int, Wait]) -> list[Stmt]:
    return [w.stmt for w in pending.values()]


@dataclass
class Accesses:
    """The shared buffers a statement (or a stretch of statements) reads, writes, updates
    atomically, and writes asynchronously, each with the tags of the units that did so."""

    reads: dict[Buffer, set[Tag]] = field(default_factory=dict)
    writes: dict[Buffer, set[Tag]] = field(default_factory=dict)
    atomics: dict[Buffer, set[Tag]] = field(default_factory=dict)
    async_writes: dict[Buffer, set[Tag]] = field(default_factory=dict)
    # Reads by the async proxy (wgmma operands, TMA store sources), also in `reads`: ordinary
    # writes before them need a proxy fence as well as the barrier.
    async_reads: dict[Buffer, set[Tag]] = field(default_factory=dict)
    # TMA stores whose wait this pass deferred, by id: each is placed before the next barrier (or
    # mbarrier arrival, or write of the stores' tile) that might order a rewrite of the tile, or at
    # the end of the scope that planned it.
    pending: dict[int, Wait] = field(default_factory=dict)
    # Accesses before a warpgroup's own barrier: ordered within each warpgroup, not across them.
    # Per buffer, which warpgroups read and wrote each element (passes/footprint.py).
    wg: dict[Buffer, Footprint] = field(default_factory=dict)

    def union(self, o: Accesses) -> Accesses:
        def merge(a: dict[Buffer, set[Tag]], b: dict[Buffer, set[Tag]]) -> dict[Buffer, set[Tag]]:
            out = {k: set(v) for k, v in a.items()}
            for k, v in b.items():
                out.setdefault(k, set()).update(v)
            return out

        return Accesses(
            merge(self.reads, o.reads),
            merge(self.writes, o.writes),
            merge(self.atomics, o.atomics),
            merge(self.async_writes, o.async_writes),
            merge(self.async_reads, o.async_reads),
            {**self.pending, **o.pending},
            merge_footprints(self.wg, o.wg),
        )

    def retag(self, tag: Tag) -> Accesses:
        def one(a: dict[Buffer, set[Tag]]) -> dict[Buffer, set[Tag]]:
            return {k: {tag} for k in a}

        return Accesses(
            one(self.reads),
            one(self.writes),
            one(self.atomics),
            one(self.async_writes),
            one(self.async_reads),
        )

    def needs_proxy_fence(self, later: Accesses) -> bool:
        """Do these ordinary writes feed `later`'s async-proxy reads (wgmma, TMA store)?"""
        return any(b in later.async_reads for b in self.generic_writes())

    def generic_writes(self) -> set[Buffer]:
        """The buffers written by ordinary (generic-proxy) stores, atomics and cp.async."""
        return {*self.writes, *self.atomics, *self.async_writes}

    def conflicts(self, later: Accesses) -> bool:
        """Does `later` conflict with these earlier accesses? Accesses of one unit (one tile op's
        lowering, in one iteration of the loops around it) never conflict with each other: an
        op writes each element from one thread and orders its own phases."""
        return bool(self.conflict_buffers(later))

    def conflict_buffers(self, later: Accesses) -> set[Buffer]:
        """The buffers on which `later` conflicts with these earlier accesses (see `conflicts`)."""

        def clash(a: dict[Buffer, set[Tag]], b: dict[Buffer, set[Tag]]) -> set[Buffer]:
            out = set()
            for buf, tags in b.items():
                old = a.get(buf)
                if old and (len(old | tags) > 1):
                    out.add(buf)
            return out

        written = (self.writes, self.async_writes)
        later_written = (later.writes, later.async_writes)
        out: set[Buffer] = set()
        for e in (*written, self.atomics):
            out |= clash(e, later.reads)
        for e in (self.reads, *written, self.atomics):
            for lw in later_written:
                out |= clash(e, lw)
        for e in (self.reads, *written):
            out |= clash(e, later.atomics)
        return out

    def touched(self) -> set[Buffer]:
        return {*self.reads, *self.writes, *self.atomics, *self.async_writes}

    def tags_of(self, buf: Buffer) -> set[Tag]:
        out: set[Tag] = set()
        for a in (self.reads, self.writes, self.atomics, self.async_writes):
            out |= a.get(buf, set())
        return out

    def without(self, bufs: set[Buffer]) -> Accesses:
        """These accesses less those of `bufs` (pending waits and warpgroup-ordered ones kept)."""

        def one(a: dict[Buffer, set[Tag]]) -> dict[Buffer, set[Tag]]:
            return {b: t for b, t in a.items() if b not in bufs}

        return Accesses(
            one(self.reads),
            one(self.writes),
            one(self.atomics),
            one(self.async_writes),
            one(self.async_reads),
            dict(self.pending),
            dict(self.wg),
        )


def merge_footprints(
    a: dict[Buffer, Footprint], b: dict[Buffer, Footprint]
) -> dict[Buffer, Footprint]:
    out = dict(a)
    for k, v in b.items():
        out[k] = out[k].union(v) if k in out else v
    return out


class _Collect(Visitor):
    """Shared-memory accesses of one statement, with calls' declared pointer effects."""

    def __init__(
        self, tag: Tag, aliases: dict[Buffer, Buffer] | None = None, tma_writes: bool = False
    ) -> None:
        super().__init__()
        self.acc = Accesses()
        self.tag = tag
        self.aliases = aliases or {}
        # Record writes that complete on an mbarrier (TMA loads) as async writes too.
        self.tma_writes = tma_writes

    def _record(self, buf: Buffer, mode: Access) -> None:
        if buf.scope not in SHARED_SCOPES:
            return
        buf = self.aliases.get(buf, buf)  # a view (T.view) accesses its base's memory
        kinds = {
            Access.READ: (self.acc.reads,),
            Access.WRITE: (self.acc.writes,),
            Access.READ_WRITE: (self.acc.reads, self.acc.writes),
            Access.ATOMIC: (self.acc.atomics,),
            Access.ASYNC_WRITE: (self.acc.async_writes,),
            # Async readers (wgmma operands, TMA store sources) read it from their issue on: ordered
            # after earlier writes here; their retirement is the Hopper passes' concern.
            Access.ASYNC_READ: (self.acc.reads, self.acc.async_reads),
            Access.ASYNC_READ_WRITE: (self.acc.reads, self.acc.writes),
        }[mode]
        for k in kinds:
            k.setdefault(buf, set()).add(self.tag)

    def visit_BufferLoad(self, e: BufferLoad) -> None:
        self._record(e.buffer, Access.READ)
        self.generic_visit(e)

    def visit_BufferStore(self, s: BufferStore) -> None:
        self._record(s.buffer, Access.WRITE)
        self.generic_visit(s)

    def visit_Call(self, c: Call) -> None:
        if c.op == "address_of":
            # A pointer that escapes to something without declared effects: assume the worst.
            self._pointee(c, Access.READ_WRITE)
            return
        fn = device_function(c.op)
        if fn is None:
            self.generic_visit(c)
            return
        if len(c.args) > len(fn.effects) and not fn.variadic_values:
            raise UnsupportedError(
                f"device function `{c.op}` is called with {len(c.args)} arguments but declares "
                f"effects for {len(fn.effects)}",
                where="ThreadSync",
            )
        # A write that completes on an mbarrier (a TMA load) is ordered by that barrier's
        # protocol, which the code placing it owns; only cp.async writes are planned here.
        completes_on_mbarrier = Access.MBARRIER in fn.effects
        for i, arg in enumerate(c.args):
            mode = fn.effects[i] if i < len(fn.effects) else None
            if mode is Access.ASYNC_WRITE and completes_on_mbarrier and not self.tma_writes:
                mode = Access.MBARRIER  # not data for this pass
            if mode is None:
                self.visit(arg)
            else:
                self._pointee(arg, mode)

    def _pointee(self, arg: PrimExpr, mode: Access) -> None:
        """The memory `arg` points to is accessed as `mode`; its index expressions are read.

        A pointer argument is `&buf[i]`, possibly converted (`remote_ptr(&x, pe)`, a shared-window
        address `shared_u32(&buf[i])`) and offset: every `address_of` inside it names the buffer."""
        targets = [c for c in collect(arg, Call) if c.op == "address_of"]
        if not targets:
            self.visit(arg)
            return
        inner = {id(c) for c in targets}
        for c in collect(arg, Call):
            if id(c) in inner and isinstance(c.args[0], BufferLoad):
                if mode is not Access.MBARRIER:  # a barrier object's bytes are not data
                    self._record(c.args[0].buffer, mode)
                for idx in c.args[0].indices:
                    self.visit(idx)
        # Offsets and other operands of the conversion are ordinary reads.
        for x in collect(arg, BufferLoad):
            if not any(x is c.args[0] for c in targets):
                self._record(x.buffer, Access.READ)


def shared_accesses(
    s: Stmt | PrimExpr, tag: Tag = (0, 0), aliases: dict[Buffer, Buffer] | None = None
) -> Accesses:
    """What `s` does to shared memory (reads, writes, atomics, async writes), from its loads,
    stores and calls' declared effects, tagged with `tag`; an access to a view counts as one to
    the buffer it views (`aliases`: view -> base)."""
    c = _Collect(tag, aliases)
    c.visit(s)
    return c.acc


def written_buffers(s: Stmt, aliases: dict[Buffer, Buffer]) -> set[Buffer]:
    """The shared buffers `s` writes in any way: stores, cp.async, and TMA loads."""
    c = _Collect((0, 0), aliases, tma_writes=True)
    c.visit(s)
    return set(c.acc.writes) | set(c.acc.async_writes) | set(c.acc.atomics)


def shared_views(body: Stmt) -> dict[Buffer, Buffer]:
    """Views of shared buffers declared in `body` (T.view: a DeclBuffer of a shared base), each
    mapped to the buffer whose memory it is (through views of views)."""
    out: dict[Buffer, Buffer] = {}
    for d in collect(body, DeclBuffer):
        if d.buffer.scope in SHARED_SCOPES and d.base.scope in SHARED_SCOPES:
            out[d.buffer] = d.base
    for v, base in list(out.items()):
        while base in out:
            base = out[base]
        out[v] = base
    return out


def select(acc: Accesses, keep: Callable[[Tag], bool]) -> Accesses:
    """The accesses whose tags `keep` accepts."""

    def one(a: dict[Buffer, set[Tag]]) -> dict[Buffer, set[Tag]]:
        out = {b: {t for t in tags if keep(t)} for b, tags in a.items()}
        return {b: tags for b, tags in out.items() if tags}

    return Accesses(
        one(acc.reads),
        one(acc.writes),
        one(acc.atomics),
        one(acc.async_writes),
        one(acc.async_reads),
    )
