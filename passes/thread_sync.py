"""ThreadSync: `__syncthreads()` between shared-memory accesses of different threads that conflict.

Requires: thread-level IR (after LowerTileOp), before PlanSharedMemory (buffers still distinct).
Guarantees: between two accesses of one shared buffer where at least one writes and not both are
atomic -- a write then a read (RAW), a read then a write (WAR), a write then a write (WAW), a
plain access then an atomic or back -- every thread passes a barrier, the next loop iteration
included. What a statement reads and writes is data: buffer loads and stores, and for calls the
memory effects that `tsir.intrin.DEVICE_FUNCTIONS` declares for each pointer argument (a gemm
reads its operand tiles, an atomic is a read-modify-write, cp.async writes late); a device call
without a declaration is refused. Barriers go only where a conflict exists, never inside an `if`
or loop whose condition or bounds differ across the threads of a block (that would deadlock: the
barrier goes before it), and an existing barrier is reused. Where the later access is a read
by the async proxy (a wgmma operand, a TMA store's source) of ordinary writes, the barrier is
preceded by `fence_proxy_async_shared()` (each writer's writes become visible to that proxy).

Accesses inside a software pipeline's async-copy regions (`async_copy` inside `pipeline_buffers`,
left in place by InjectAsyncCopy) are ordered by the pipeline's own wait + barrier at the top of
each iteration and are not planned here; everything else in the pipelined loop, including the
consumers' accesses to the staged tiles, is. A cp.async write outside such a region would need a
wait that this pass cannot place: it is refused. ThreadSync removes the `async_copy` markers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import NamedTuple

from tsir.buffer import Buffer
from tsir.dtype import int32
from tsir.errors import UnsupportedError
from tsir.expr import BufferLoad, Call, PrimExpr, Var
from tsir.function import PrimFunc
from tsir.intrin import Access, device_function
from tsir.stmt import (
    Allocate,
    AttrStmt,
    BufferStore,
    DeclBuffer,
    Evaluate,
    For,
    IfThenElse,
    KernelLaunch,
    LetStmt,
    SeqStmt,
    Stmt,
    seq,
)
from tsir.structural import structural_equal
from tsir.tileop.copy import ASYNC_COPY_ATTR
from tsir.visitor import Mutator, Visitor, collect
from tsir.warp_roles import WARP_ROLE_ATTR

from .infra import PassContext, register_pass
from .thread_range import THREAD_RANGE_ATTR, ThreadRange, named_barrier

__all__ = ["ThreadSync", "SHARED_SCOPES", "make_barrier", "is_barrier", "shared_accesses"]

SHARED_SCOPES = ("shared", "shared.dyn")
PER_THREAD_SCOPES = ("local", "local.var", "local.fragment")
PIPELINE_BUFFERS_ATTR = "pipeline_buffers"
TILE_OP_ATTR = "tile_op"  # LowerTileOp's marker around one op's thread-level code


def make_barrier() -> Stmt:
    return Evaluate(Call(int32, "sync_threads", ()))


def make_proxy_fence() -> Stmt:
    return Evaluate(Call(int32, "tsir.mbarrier.fence_proxy_async_shared", ()))


def _is_proxy_fence(s: Stmt) -> bool:
    return (
        isinstance(s, Evaluate)
        and isinstance(s.value, Call)
        and s.value.op == "tsir.mbarrier.fence_proxy_async_shared"
    )


def is_barrier(s: Stmt) -> bool:
    return isinstance(s, Evaluate) and isinstance(s.value, Call) and s.value.op == "sync_threads"


Tag = tuple[int, int]  # (unit, generation): which tile op instance made an access


class _Wait(NamedTuple):
    """A deferred TMA-store wait: `if (storing thread) tma_store_wait<0>()`, and the shared tiles
    its stores read."""

    stmt: Stmt
    tiles: frozenset[Buffer]


def _wait_stmts(pending: dict[int, _Wait]) -> list[Stmt]:
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
    pending: dict[int, _Wait] = field(default_factory=dict)

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

        def clash(a: dict[Buffer, set[Tag]], b: dict[Buffer, set[Tag]]) -> bool:
            for buf, tags in b.items():
                old = a.get(buf)
                if old and (len(old | tags) > 1):
                    return True
            return False

        written = (self.writes, self.async_writes)
        later_written = (later.writes, later.async_writes)
        return (
            any(clash(e, later.reads) for e in (*written, self.atomics))
            or any(
                clash(e, lw) for e in (self.reads, *written, self.atomics) for lw in later_written
            )
            or any(clash(e, later.atomics) for e in (self.reads, *written))
        )


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


def _written(s: Stmt, aliases: dict[Buffer, Buffer]) -> set[Buffer]:
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


class _Planner:
    def __init__(
        self,
        thread_vars: tuple[Var, ...] | set[Var],
        barrier: Stmt | None = None,
        aliases: dict[Buffer, Buffer] | None = None,
    ):
        self.thread_vars = set(thread_vars)
        self.aliases = aliases or {}
        # The barrier this planner places: __syncthreads, or a thread range's named barrier.
        self.barrier = barrier if barrier is not None else make_barrier()
        self.in_pipeline = 0
        # The tile op whose lowering is being planned (None: statements outside any), and how
        # many loop back-edges have been crossed outside units: a unit in the next iteration of
        # a loop is another instance, whose accesses may conflict with the previous one's.
        self.unit: int | None = None
        self.generation = 0
        # Warp roles (T.ws): the tags of each role's accesses (role -> tags), and, inside a role,
        # the shared buffers the async proxy reads anywhere in the kernel (`async_reads`) and
        # those this role wrote since its last proxy fence (`unfenced`).
        self.role_tags: dict[tuple[int, int], set[Tag]] = {}
        self.in_role = False
        self.async_reads: set[Buffer] = set()
        self.unfenced: set[Buffer] = set()
        # Global buffers the kernel accesses other than through TMA stores: a TMA store into
        # one of them keeps its wait where the store is (its data is read or overwritten here).
        self.direct_globals: set[Buffer] = set()
        # How many store statements (TMA-store groups) write each global buffer.
        self.store_sites: dict[Buffer, int] = {}
        # Records a TMA store that keeps its wait (TSIR_EXPLAIN), once per message.
        self.explain: Callable[[str], None] = lambda message: None
        # In a warp role (or a range of a producer/consumer split): the shared buffers the other
        # roles write.
        self.foreign: set[Buffer] = set()
        self.role_writes: dict[tuple[int, int], set[Buffer]] = {}

    def sub_planner(self, barrier: Stmt) -> _Planner:
        sub = _Planner(self.thread_vars, barrier, self.aliases)
        sub.async_reads = self.async_reads
        sub.direct_globals = self.direct_globals
        sub.store_sites = self.store_sites
        sub.explain = self.explain
        sub.role_writes = self.role_writes
        sub.generation = self.generation
        return sub

    @staticmethod
    def flush(st: Accesses, out: list[Stmt]) -> Accesses:
        """The deferred TMA-store waits of `st`, placed at the end of `out`."""
        if not st.pending:
            return st
        out.extend(_wait_stmts(st.pending))
        return replace(st, pending={})

    def tag(self, s: Stmt) -> Tag:
        return (self.unit if self.unit is not None else id(s), self.generation)

    def uniform(self, x: object) -> bool:
        """Same value in every thread of the block: no thread index, no per-thread register."""
        if any(v in self.thread_vars for v in collect(x, Var)):
            return False
        return not any(ld.buffer.scope in PER_THREAD_SCOPES for ld in collect(x, BufferLoad))

    def block(self, stmts: list[Stmt], st: Accesses) -> tuple[list[Stmt], Accesses]:
        out: list[Stmt] = []
        for i, s in enumerate(stmts):
            if (
                self.is_own_barrier(s)
                and st.generic_writes()
                and not (out and _is_proxy_fence(out[-1]))
            ):
                # A barrier already there: if the async proxy reads what was written before it
                # (later in this block, or anywhere in the kernel: the barrier may be the one that
                # orders the write before a read outside this block), each writer fences first.
                later = shared_accesses(seq(*stmts[i + 1 :]))
                if st.needs_proxy_fence(later) or st.generic_writes() & self.async_reads:
                    out.append(make_proxy_fence())
            if _is_role(s):
                if i == 0 or not _is_role(stmts[i - 1]):
                    st = self.enter_roles(stmts[i:], st, out)
                st = self.role(s, st, out)
                continue
            st = self.stmt(s, st, out)
        return out, st

    # -- warp roles ------------------------------------------------------------------------------
    def _role_tagged(self) -> set[Tag]:
        return {t for tags in self.role_tags.values() for t in tags}

    def enter_roles(self, rest: list[Stmt], st: Accesses, out: list[Stmt]) -> Accesses:
        """Before a run of consecutive warp-role blocks: one block barrier, when what the whole
        block did before conflicts with the run. None between the blocks: roles wait for each
        other on the program's mbarriers, and a barrier between two roles that do would
        deadlock."""
        run: list[Stmt] = []
        for x in rest:
            if not _is_role(x):
                break
            run.append(x)
        # A role may rewrite a tile that a TMA store before the roles still reads.
        st = self.flush(st, out)
        acc = shared_accesses(seq(*run), (id(run[0]), self.generation), self.aliases)
        shared = _select(st, lambda t: t not in self._role_tagged())
        if shared.conflicts(acc):
            self.barrier_if_conflict(acc, shared, out)
            return Accesses()
        return st

    def role(self, s: Stmt, st: Accesses, out: list[Stmt]) -> Accesses:
        """A warp role's body, planned with the role's named barrier, from what this role left
        pending (other roles' accesses are ordered by the program's mbarriers)."""
        assert isinstance(s, AttrStmt) and isinstance(s.body, IfThenElse)
        key: tuple[int, int] = tuple(s.value)  # type: ignore[assignment]
        rng = s.body.then_case
        assert _is_range(rng) and isinstance(rng, AttrStmt)
        lo, hi, barrier_id = rng.value
        sub = self.sub_planner(named_barrier(ThreadRange(lo, hi, barrier_id), "a warp role"))
        sub.in_role = True
        sub.foreign = set().union(*(w for k, w in self.role_writes.items() if k != key))
        mine = self.role_tags.setdefault(key, set())
        planned, end = sub.nested(rng.body, _select(st, lambda t: t in mine))
        planned = seq(planned, *_wait_stmts(end.pending))
        tag = (id(s), self.generation)
        mine.add(tag)
        out.append(s.replace(body=s.body.replace(then_case=rng.replace(body=planned))))
        return st.union(shared_accesses(s, tag, self.aliases))

    def is_own_barrier(self, s: Stmt) -> bool:
        return is_barrier(s) or (not is_barrier(self.barrier) and structural_equal(s, self.barrier))

    def stmt(self, s: Stmt, st: Accesses, out: list[Stmt]) -> Accesses:
        if self.is_own_barrier(s):
            self.flush(st, out)
            out.append(s)
            return Accesses()
        if isinstance(s, SeqStmt):
            new, st = self.block(list(s.stmts), st)
            out.extend(new)
            return st
        if isinstance(s, AttrStmt) and s.key == TILE_OP_ATTR:
            outer = self.unit
            if outer is None:
                self.unit = id(s)
            body, st = self.nested(s.body, st)
            self.unit = outer
            # Markers stay until the whole kernel is planned (a loop's body is planned twice).
            out.append(s.replace(body=body))
            return st
        if isinstance(s, AttrStmt) and s.key == ASYNC_COPY_ATTR:
            if self.in_pipeline:
                # The pipeline orders its own async copies (wait + barrier each iteration).
                st = self.flush_for_writes(s, st, out)
                out.append(s)
                return st
            return self.leaf(s, st, out)
        if isinstance(s, AttrStmt) and s.key == PIPELINE_BUFFERS_ATTR:
            # The pipeline's prologue writes its staged tiles before any barrier of its own: it
            # must come after every earlier access to them (the previous iteration of a loop
            # around the pipeline still reading the last stage, say). A pipeline that writes
            # none of them here (a consumer warp role: its producer role fills the stages, and
            # the ring's mbarriers order the two) is planned as the ordinary code it is.
            written = _written(s.body, self.aliases)
            if not any(self.aliases.get(b, b) in written for b in s.value):
                self.in_pipeline += 1
                body, st = self.nested(s.body, st)
                self.in_pipeline -= 1
                out.append(s.replace(body=body))
                return st
            staged = Accesses(writes={b: {(id(s), -1)} for b in s.value})
            st = self.barrier_if_conflict(staged, st, out)
            self.in_pipeline += 1
            body, st = self.nested(s.body, st)
            self.in_pipeline -= 1
            out.append(s.replace(body=body))
            # Its last copies landed at its final wait, each in its issuing thread only: a later
            # read of a staged tile by other threads needs a barrier.
            return st.union(Accesses(writes={b: {(id(s), -2)} for b in s.value}))
        if isinstance(s, (Allocate, DeclBuffer, LetStmt, AttrStmt)):
            if isinstance(s, LetStmt) and not self.uniform(s.value):
                self.thread_vars.add(s.var)  # a value that differs across threads
            body, st = self.nested(s.body, st)
            if isinstance(s, LetStmt):
                # A deferred wait whose storing thread is named through this variable stays in
                # its scope.
                scoped = {
                    k: w
                    for k, w in st.pending.items()
                    if any(v is s.var for v in collect(w.stmt, Var))
                }
                if scoped:
                    body = seq(body, *_wait_stmts(scoped))
                    st = replace(
                        st, pending={k: w for k, w in st.pending.items() if k not in scoped}
                    )
            out.append(s.replace(body=body))
            return st
        if isinstance(s, For) and self.uniform((s.min, s.extent)):
            # A conflict with what came before the loop is resolved once, before the loop.
            st = self.barrier_if_conflict(shared_accesses(s, self.tag(s), self.aliases), st, out)
            body, st_first = self.nested(s.body, st)
            # The next iteration sees what the previous one left pending.
            if self.unit is None:
                self.generation += 1
            body, st_second = self.nested(body, st_first)
            out.append(s.replace(body=body))
            return st.union(st_first).union(st_second)
        if isinstance(s, IfThenElse) and self.uniform(s.cond):
            then_case, st_then = self.nested(s.then_case, st)
            else_case, st_else = (None, st) if s.else_case is None else self.nested(s.else_case, st)
            out.append(IfThenElse(s.cond, then_case, else_case))
            return st_then.union(st_else)
        if isinstance(s, IfThenElse) and any(_is_range(b) for b in (s.then_case, s.else_case)):
            # Tile ops in a range of threads: ordered against the rest by a block barrier before
            # the `if`, among themselves by the range's named barrier.
            acc = shared_accesses(s, self.tag(s), self.aliases)
            st = self.flush_for_writes(s, st, out)
            st = self.barrier_if_conflict(acc, st, out)
            # Each branch's threads hand tiles to the other's through mbarriers (a producer and
            # its consumers): what the other writes is foreign to it.
            then_w = _written(s.then_case, self.aliases)
            else_w = set() if s.else_case is None else _written(s.else_case, self.aliases)
            out.append(
                s.replace(
                    then_case=self.plan_range(s.then_case, else_w),
                    else_case=None if s.else_case is None else self.plan_range(s.else_case, then_w),
                )
            )
            return st.union(acc)
        return self.leaf(s, st, out)

    def plan_range(self, body: Stmt, foreign: set[Buffer]) -> Stmt:
        if not _is_range(body):
            return body
        assert isinstance(body, AttrStmt)
        lo, hi, barrier_id = body.value
        sub = self.sub_planner(named_barrier(ThreadRange(lo, hi, barrier_id), "a tile op"))
        sub.foreign = self.foreign | foreign
        planned, end = sub.nested(body.body, Accesses())
        return body.replace(body=seq(planned, *_wait_stmts(end.pending)))

    def leaf(self, s: Stmt, st: Accesses, out: list[Stmt]) -> Accesses:
        """A statement planned as a whole (no barrier can go inside it)."""
        if st.pending and self.foreign and _synchronizes(s):
            # Another warp role may rewrite a tile after this arrival or barrier (roles order
            # each other through the program's mbarriers, not this pass's barriers): the
            # stores that read it are waited for first.
            if any(w.tiles & self.foreign for w in st.pending.values()):
                st = self.flush(st, out)
        st = self.flush_for_writes(s, st, out)
        s, deferred = self.defer_store_wait(s)
        acc = shared_accesses(s, self.tag(s), self.aliases)
        if acc.async_writes and not self.in_pipeline:
            raise UnsupportedError(
                f"cp.async into shared `{sorted(b.name for b in acc.async_writes)[0]}` outside a "
                "software pipeline: no pass places the wait its readers need",
                where="ThreadSync",
            )
        st = self.barrier_if_conflict(acc, st, out)
        if self.in_role:
            if _is_proxy_fence(s):
                self.unfenced.clear()
            elif self.unfenced & self.async_reads and _arrives(s):
                # The role's ordinary writes, released to another role by this arrival, are read
                # by the async proxy (wgmma, TMA store): its writers fence first.
                out.append(make_proxy_fence())
                self.unfenced.clear()
            self.unfenced |= acc.generic_writes()
        out.append(s)
        st = st.union(acc)
        if deferred is None:
            return st
        wait = _Wait(deferred, frozenset(acc.async_reads))
        return replace(st, pending={**st.pending, id(deferred): wait})

    def flush_for_writes(self, s: Stmt, st: Accesses, out: list[Stmt]) -> Accesses:
        """The deferred waits of stores whose tile `s` writes in any way, placed before it: a TMA
        load or cp.async into the tile is no data to this pass's barriers (its own protocol
        orders it), but it must not land while a store still reads the tile."""
        if not st.pending:
            return st
        written = _written(s, self.aliases)
        if any(w.tiles & written for w in st.pending.values()):
            return self.flush(st, out)
        return st

    def defer_store_wait(self, s: Stmt) -> tuple[Stmt, Stmt | None]:
        """A TMA store as `Copy` lowers it -- `if (one thread) { stores; commit; wait<0> }` --
        without its wait, and the wait, `if (that thread) wait<0>`, to be placed later: the
        storing thread goes on while the stores run, and waits only before its tile may be
        rewritten (the next barrier) or at the end. Stores into a tensor the kernel reads or
        writes otherwise keep their wait (None)."""
        if not (isinstance(s, IfThenElse) and s.else_case is None):
            return s, None
        body = _stmts(s.then_case) if isinstance(s.then_case, SeqStmt) else []
        if len(body) < 2 or not (
            _calls(body[-1], "tsir.tma.tma_store_wait<0>")
            and _calls(body[-2], "tsir.tma.tma_store_commit")
        ):
            return s, None
        dests = _tma_store_destinations(s.then_case)
        if not dests:
            return s, None
        names = ", ".join(f"`{d.name}`" for d in sorted(dests, key=lambda b: b.name))
        if dests & self.direct_globals:
            self.explain(
                f"the TMA store into {names} waits where it is issued: the kernel also reads or "
                "writes that tensor otherwise (loads, stores, TMA loads)"
            )
            return s, None
        if any(self.store_sites.get(d, 0) > 1 for d in dests):
            # Two stores into one tensor, both in flight, may land in either order.
            self.explain(
                f"the TMA store into {names} waits where it is issued: more than one statement "
                "stores into that tensor, and stores in flight together may land in either order"
            )
            return s, None
        return s.replace(then_case=seq(*body[:-1])), IfThenElse(s.cond, body[-1])

    def barrier_if_conflict(self, acc: Accesses, st: Accesses, out: list[Stmt]) -> Accesses:
        if not st.conflicts(acc):
            return st
        reuse = bool(out) and self.is_own_barrier(out[-1])
        # The barrier orders every earlier write before everything after it, not only before
        # `acc`: writes to a tile the async proxy reads anywhere in the kernel (a wgmma operand
        # after the barrier placed for another tile) are fenced too.
        if st.needs_proxy_fence(acc) or st.generic_writes() & self.async_reads:
            # Each writer makes its ordinary writes visible to the async proxy before the barrier.
            at = len(out) - 1 if reuse else len(out)
            if not (at > 0 and _is_proxy_fence(out[at - 1])):
                out.insert(at, make_proxy_fence())
        # Deferred TMA-store waits: the storing threads wait before the barrier.
        at = len(out) - 1 if reuse else len(out)
        out[at:at] = _wait_stmts(st.pending)
        if not reuse:
            out.append(self.barrier)
        return Accesses()

    def nested(self, body: Stmt, st: Accesses) -> tuple[Stmt, Accesses]:
        stmts = list(body.stmts) if isinstance(body, SeqStmt) else [body]
        new, st = self.block(stmts, st)
        return seq(*new), st


def _is_range(s: Stmt | None) -> bool:
    return isinstance(s, AttrStmt) and s.key == THREAD_RANGE_ATTR


def _is_role(s: Stmt) -> bool:
    """A warp role running in part of the block (one that covers the whole block lost its `if`
    to Simplify: it is ordinary code)."""
    return (
        isinstance(s, AttrStmt)
        and s.key == WARP_ROLE_ATTR
        and isinstance(s.body, IfThenElse)
        and s.body.else_case is None
        and _is_range(s.body.then_case)
    )


def _arrives(s: Stmt) -> bool:
    """Does `s` arrive on an mbarrier (releasing this thread's earlier accesses)?"""
    return any(c.op.startswith("tsir.mbarrier.mbarrier_arrive") for c in collect(s, Call))


def _stmts(s: Stmt) -> list[Stmt]:
    return list(s.stmts) if isinstance(s, SeqStmt) else [s]


def _calls(s: Stmt, op: str) -> bool:
    return isinstance(s, Evaluate) and isinstance(s.value, Call) and s.value.op == op


def _synchronizes(s: Stmt) -> bool:
    """Does `s` order this thread's accesses before other threads' (a barrier of any range, an
    mbarrier arrival)?"""
    for c in collect(s, Call):
        fn = device_function(c.op)
        if c.op == "sync_threads" or (
            fn is not None and (fn.collective is not None or fn.sync == "arrive")
        ):
            return True
    return False


def _tma_store_destinations(s: Stmt) -> set[Buffer]:
    """The global buffers whose tensor maps the TMA stores in `s` name."""
    out: set[Buffer] = set()
    for c in collect(s, Call):
        if c.op.startswith("tsir.tma.tma_store_") and c.args:
            for d in collect(c.args[0], Call):
                if d.op == "address_of" and isinstance(d.args[0], BufferLoad):
                    out.add(d.args[0].buffer)
    return out


class _DirectGlobals(Visitor):
    """Global buffers accessed other than as a TMA store's destination: loads, stores, atomics,
    TMA loads (their tensor maps name the buffer too)."""

    def __init__(self) -> None:
        super().__init__()
        self.found: set[Buffer] = set()

    def visit_Call(self, c: Call) -> None:
        if c.op.startswith("tsir.tma.tma_store_") and c.args:
            for a in c.args[1:]:  # the first is the destination's tensor map
                self.visit(a)
            return
        self.generic_visit(c)

    def visit_BufferLoad(self, e: BufferLoad) -> None:
        if e.buffer.scope == "global":
            self.found.add(e.buffer)
        self.generic_visit(e)

    def visit_BufferStore(self, s: BufferStore) -> None:
        if s.buffer.scope == "global":
            self.found.add(s.buffer)
        self.generic_visit(s)


def _select(acc: Accesses, keep: Callable[[Tag], bool]) -> Accesses:
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


class _StripMarkers(Mutator):
    def visit_SeqStmt(self, s: SeqStmt) -> Stmt:
        return seq(*(self.visit(x) for x in s.stmts))  # a stripped marker's body may be a SeqStmt

    def visit_AttrStmt(self, s: AttrStmt) -> Stmt:
        if s.key in (ASYNC_COPY_ATTR, TILE_OP_ATTR, THREAD_RANGE_ATTR, WARP_ROLE_ATTR):
            return self.visit(s.body)
        return self.generic_visit(s)


class _Kernels(Mutator):
    def __init__(self, ctx: PassContext) -> None:
        super().__init__()
        self.ctx = ctx

    def visit_KernelLaunch(self, k: KernelLaunch) -> Stmt:
        planner = _Planner(k.thread_vars, aliases=shared_views(k.body))
        said: set[str] = set()  # a loop's body is planned twice

        def explain(message: str) -> None:
            if message not in said:
                said.add(message)
                self.ctx.explain("ThreadSync", f"kernel `{k.name}`: {message}")

        planner.explain = explain
        planner.async_reads = set(shared_accesses(k.body, aliases=planner.aliases).async_reads)
        direct = _DirectGlobals()
        direct.visit(k.body)
        planner.direct_globals = direct.found
        for ite in collect(k.body, IfThenElse):
            if any(_calls(x, "tsir.tma.tma_store_commit") for x in _stmts(ite.then_case)):
                for d in _tma_store_destinations(ite.then_case):
                    planner.store_sites[d] = planner.store_sites.get(d, 0) + 1
        for r in collect(k.body, AttrStmt):
            if _is_role(r):
                key = tuple(r.value)
                written = _written(r, planner.aliases)
                planner.role_writes[key] = planner.role_writes.get(key, set()) | written  # type: ignore[index]
        body, end = planner.nested(k.body, Accesses())
        body = seq(body, *_wait_stmts(end.pending))
        return k.replace(body=_StripMarkers().visit(body))


@register_pass("ThreadSync")
def ThreadSync(func: PrimFunc, ctx: PassContext) -> PrimFunc:
    """Insert the barriers that shared-memory hazards between threads need, and no more."""
    return _Kernels(ctx).visit(func)
