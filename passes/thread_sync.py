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
from dataclasses import replace

from tsir.buffer import Buffer
from tsir.dtype import int32
from tsir.errors import UnsupportedError
from tsir.expr import BufferLoad, Call, IntImm, Var
from tsir.function import PrimFunc
from tsir.intrin import device_function
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

from .footprint import WARPGROUP, Footprint, footprints
from .infra import PassContext, register_pass
from .shared_accesses import (
    PER_THREAD_SCOPES,
    PIPELINE_BUFFERS_ATTR,
    SHARED_SCOPES,
    TILE_OP_ATTR,
    Accesses,
    Tag,
    Wait,
    is_barrier,
    is_proxy_fence,
    make_barrier,
    make_proxy_fence,
    merge_footprints,
    select,
    shared_accesses,
    shared_views,
    wait_stmts,
    written_buffers,
)
from .thread_range import (
    MAX_BARRIER_ID,
    THREAD_RANGE_ATTR,
    ThreadRange,
    named_barrier,
    used_barrier_ids,
)

__all__ = ["ThreadSync", "SHARED_SCOPES", "make_barrier", "is_barrier", "shared_accesses"]


class _WgContext:
    """What the planners of one kernel share to order hazards within a warpgroup: the thread
    index (None: a block of more than one dimension), the values of the kernel's `let`s, the
    statement(s) behind each access tag, their footprints, and the next free named-barrier id."""

    def __init__(self, k: KernelLaunch) -> None:
        self.tid: Var | None = k.thread_vars[0] if len(k.threads) == 1 else None
        self.aliases = shared_views(k.body)
        self.lets = {x.var: x.value for x in collect(k.body, LetStmt)}
        self.sites: dict[int, list[tuple[Stmt, tuple[For, ...]]]] = {}
        self.cache: dict[tuple[int, int, int, int], Footprint | None] = {}
        self.next_id = 1 + max(used_barrier_ids(k.body, k), default=0)
        # Threads [lo, hi) -> their warpgroups' barrier (`bar.sync id0 + w, 128` in warpgroup w
        # of the range), or None when the ids ran out.
        self.barriers: dict[tuple[int, int], Stmt | None] = {}

    def barrier(self, lo: int, hi: int) -> Stmt | None:
        """The warpgroup barrier of threads [lo, hi), made on first use (ids permitting)."""
        if (lo, hi) not in self.barriers:
            assert self.tid is not None
            count = (hi - lo) // WARPGROUP
            if self.next_id + count - 1 > MAX_BARRIER_ID:
                self.barriers[(lo, hi)] = None
            else:
                bid = (self.tid - lo) // WARPGROUP + self.next_id
                self.next_id += count
                self.barriers[(lo, hi)] = Evaluate(
                    Call(int32, "tsir.sync.named_barrier", (bid, IntImm(WARPGROUP, int32)))
                )
        return self.barriers[(lo, hi)]

    def site(self, tag_id: int, s: Stmt, loops: tuple[For, ...]) -> None:
        known = self.sites.setdefault(tag_id, [])
        if not any(x is s for x, _ in known):
            known.append((s, loops))

    def in_loops(self, s: Stmt, loops: tuple[For, ...]) -> Stmt:
        """`s` inside those of `loops` whose counters it (or a `let` it reads) uses: every
        iteration's accesses, a superset of any one iteration's (a loop whose bounds are not
        known leaves its counter unknown: passes/footprint.py)."""
        used: set[int] = set()
        todo = list(collect(s, Var))
        while todo:  # the variables `s` reads, and those of the `let`s it reads
            v = todo.pop()
            if id(v) not in used:
                used.add(id(v))
                if v in self.lets:
                    todo.extend(collect(self.lets[v], Var))
        for loop in reversed(loops):
            if id(loop.loop_var) in used:
                s = loop.replace(body=s)
        return s

    def footprint(self, acc: Accesses, buf: Buffer, lo: int, hi: int) -> Footprint | None:
        """What `acc`'s units do to `buf`, per warpgroup (None: not known)."""
        if self.tid is None:
            return None
        out: Footprint | None = None
        for unit, generation in acc.tags_of(buf):
            if generation < 0 or unit not in self.sites:
                return None  # a pipeline's summary of its copies: no statement to enumerate
            for stmt, loops in self.sites[unit]:
                key = (id(stmt), id(buf), lo, hi)
                if key not in self.cache:
                    whole = self.in_loops(stmt, loops)
                    self.cache[key] = footprints(
                        whole, {buf}, self.tid, lo, hi, self.lets, self.aliases
                    )[buf]
                fp = self.cache[key]
                if fp is None:
                    return None
                out = fp if out is None else out.union(fp)
        return out


class _Planner:
    def __init__(
        self,
        thread_vars: tuple[Var, ...] | set[Var],
        barrier: Stmt | None = None,
        aliases: dict[Buffer, Buffer] | None = None,
        threads: tuple[int, int] = (0, 0),
        wgc: _WgContext | None = None,
    ):
        self.thread_vars = set(thread_vars)
        # The threads [lo, hi) this planner's barrier orders, and, when they are two or more whole
        # warpgroups, each warpgroup's own named barrier (made on first use).
        self.lo, self.hi = threads
        self.wgc = wgc
        # The loops (uniform bounds) around the statement being planned, outermost first: a
        # footprint covers every iteration of those whose counters the statement uses.
        self.loops: list[For] = []
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
        # The shared tiles TMA stores read (anywhere in the kernel).
        self.store_tiles: set[Buffer] = set()
        # Records a TMA store that keeps its wait (TSIR_EXPLAIN), once per message.
        self.explain: Callable[[str], None] = lambda message: None
        # In a warp role (or a range of a producer/consumer split): the shared buffers the other
        # roles write.
        self.foreign: set[Buffer] = set()
        self.role_writes: dict[tuple[int, int], set[Buffer]] = {}

    def sub_planner(self, barrier: Stmt, threads: tuple[int, int]) -> _Planner:
        sub = _Planner(self.thread_vars, barrier, self.aliases, threads, self.wgc)
        sub.async_reads = self.async_reads
        sub.direct_globals = self.direct_globals
        sub.store_sites = self.store_sites
        sub.explain = self.explain
        sub.store_tiles = self.store_tiles
        sub.role_writes = self.role_writes
        sub.generation = self.generation
        return sub

    @staticmethod
    def flush(st: Accesses, out: list[Stmt]) -> Accesses:
        """The deferred TMA-store waits of `st`, placed at the end of `out`."""
        if not st.pending:
            return st
        out.extend(wait_stmts(st.pending))
        return replace(st, pending={})

    def tag(self, s: Stmt) -> Tag:
        if self.unit is not None:
            return (self.unit, self.generation)
        self.site(id(s), s)
        return (id(s), self.generation)

    def site(self, tag_id: int, s: Stmt) -> None:
        """`s`, in the loops around it, is (part of) what the accesses tagged `tag_id` come
        from."""
        if self.wgc is not None:
            self.wgc.site(tag_id, s, tuple(self.loops))

    def uniform(self, x: object) -> bool:
        """Same value in every thread of the block: no thread index, no per-thread register."""
        if any(v in self.thread_vars for v in collect(x, Var)):
            return False
        return not any(ld.buffer.scope in PER_THREAD_SCOPES for ld in collect(x, BufferLoad))

    def block(self, stmts: list[Stmt], st: Accesses) -> tuple[list[Stmt], Accesses]:
        out: list[Stmt] = []
        for i, s in enumerate(stmts):
            if (
                (self.is_own_barrier(s) or self.is_wg_barrier(s))
                and st.generic_writes()
                and not (out and is_proxy_fence(out[-1]))
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
        whole = seq(*run)
        self.site(id(run[0]), whole)
        acc = shared_accesses(whole, (id(run[0]), self.generation), self.aliases)
        # Accesses of earlier role instances are the roles' own (ordered by their mbarriers);
        # those ordered within warpgroups only are kept for the check.
        shared = replace(select(st, lambda t: t not in self._role_tagged()), wg=st.wg)
        if self.needs(acc, shared) is not None:
            self.barrier_if_conflict(acc, shared, out, wide=True)
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
        sub = self.sub_planner(
            named_barrier(ThreadRange(lo, hi, barrier_id), "a warp role"), (lo, hi)
        )
        sub.in_role = True
        sub.foreign = set().union(*(w for k, w in self.role_writes.items() if k != key))
        mine = self.role_tags.setdefault(key, set())
        planned, end = sub.nested(rng.body, select(st, lambda t: t in mine))
        planned = seq(planned, *wait_stmts(end.pending))
        tag = (id(s), self.generation)
        self.site(id(s), s)
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
        if self.is_wg_barrier(s):  # placed by this pass (a loop's body is planned twice)
            st = self.flush(st, out)
            out.append(s)
            return self.after_wg_barrier(st)
        if isinstance(s, SeqStmt):
            new, st = self.block(list(s.stmts), st)
            out.extend(new)
            return st
        if isinstance(s, AttrStmt) and s.key == TILE_OP_ATTR:
            outer = self.unit
            if outer is None:
                self.unit = id(s)
                self.site(id(s), s)
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
            written = written_buffers(s.body, self.aliases)
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
                    body = seq(body, *wait_stmts(scoped))
                    st = replace(
                        st, pending={k: w for k, w in st.pending.items() if k not in scoped}
                    )
            out.append(s.replace(body=body))
            return st
        if isinstance(s, For) and self.uniform((s.min, s.extent)):
            # A conflict with what came before the loop is resolved once, before the loop.
            st = self.barrier_if_conflict(shared_accesses(s, self.tag(s), self.aliases), st, out)
            self.loops.append(s)
            body, st_first = self.nested(s.body, st)
            # The next iteration sees what the previous one left pending.
            if self.unit is None:
                self.generation += 1
            body, st_second = self.nested(body, st_first)
            self.loops.pop()
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
            then_w = written_buffers(s.then_case, self.aliases)
            else_w = set() if s.else_case is None else written_buffers(s.else_case, self.aliases)
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
        sub = self.sub_planner(
            named_barrier(ThreadRange(lo, hi, barrier_id), "a tile op"), (lo, hi)
        )
        sub.foreign = self.foreign | foreign
        planned, end = sub.nested(body.body, Accesses())
        return body.replace(body=seq(planned, *wait_stmts(end.pending)))

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
            if is_proxy_fence(s):
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
        wait = Wait(deferred, frozenset(acc.async_reads))
        return replace(st, pending={**st.pending, id(deferred): wait})

    def flush_for_writes(self, s: Stmt, st: Accesses, out: list[Stmt]) -> Accesses:
        """The deferred waits of stores whose tile `s` writes in any way, placed before it: a TMA
        load or cp.async into the tile is no data to this pass's barriers (its own protocol
        orders it), but it must not land while a store still reads the tile."""
        if not st.pending:
            return st
        written = written_buffers(s, self.aliases)
        if any(w.tiles & written for w in st.pending.values()):
            return self.flush(st, out)
        return st

    def defer_store_wait(self, s: Stmt) -> tuple[Stmt, Stmt | None]:
        """A TMA store as `Copy` lowers it -- `if (storing threads) { stores; commit; wait<0> }`
        -- without its wait, and the wait to be placed later: the storing thread goes on while
        the stores run, and waits only before its tile may be rewritten (the next barrier) or at
        the end. The wait placed later is `wait_group.read`: only until the stores have read the
        tile. Nothing in the kernel reads what they write (such a store keeps its full wait where
        it is), and the kernel's end makes its global writes complete. Stores into a tensor the
        kernel reads or writes otherwise keep their wait (None)."""
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
        read = Evaluate(Call(int32, "tsir.tma.tma_store_wait_read<0>", ()))
        return s.replace(then_case=seq(*body[:-1])), IfThenElse(s.cond, read)

    def barrier_if_conflict(
        self, acc: Accesses, st: Accesses, out: list[Stmt], wide: bool = False
    ) -> Accesses:
        """A barrier before `acc` when it conflicts with `st`: each warpgroup's own when every
        conflict is within one warpgroup (and not `wide`), else the planner's. The state after."""
        kind = self.needs(acc, st)
        if kind is None:
            return st
        barrier = self.barrier
        if kind == "wg" and not wide:
            assert self.wgc is not None
            wgb = self.wgc.barrier(self.lo, self.hi)
            if wgb is not None:
                barrier = wgb
        reuse = (
            bool(out)
            and structural_equal(out[-1], barrier)
            or (barrier is self.barrier and bool(out) and self.is_own_barrier(out[-1]))
        )
        # The barrier orders every earlier write before everything after it, not only before
        # `acc`: writes to a tile the async proxy reads anywhere in the kernel (a wgmma operand
        # after the barrier placed for another tile) are fenced too.
        if st.needs_proxy_fence(acc) or st.generic_writes() & self.async_reads:
            # Each writer makes its ordinary writes visible to the async proxy before the barrier.
            at = len(out) - 1 if reuse else len(out)
            if not (at > 0 and is_proxy_fence(out[at - 1])):
                out.insert(at, make_proxy_fence())
        # Deferred TMA-store waits: the storing threads wait before the barrier.
        at = len(out) - 1 if reuse else len(out)
        out[at:at] = wait_stmts(st.pending)
        if not reuse:
            out.append(barrier)
        if barrier is self.barrier:
            return Accesses()
        return self.after_wg_barrier(replace(st, pending={}))

    # -- warpgroup barriers ---------------------------------------------------------------------
    def wg_capable(self) -> bool:
        """Are this planner's threads two or more whole warpgroups of a 1-D block?"""
        return (
            self.wgc is not None
            and self.wgc.tid is not None
            and self.lo % WARPGROUP == 0
            and self.hi % WARPGROUP == 0
            and self.hi - self.lo >= 2 * WARPGROUP
        )

    def is_wg_barrier(self, s: Stmt) -> bool:
        if self.wgc is None:
            return False
        mine = self.wgc.barriers.get((self.lo, self.hi))
        return mine is not None and structural_equal(s, mine)

    def footprint(self, acc: Accesses, buf: Buffer) -> Footprint | None:
        if self.wgc is None:
            return None
        return self.wgc.footprint(acc, buf, self.lo, self.hi)

    def needs(self, acc: Accesses, st: Accesses) -> str | None:
        """Which barrier `acc` needs after `st`: None, "wg" (every conflicting pair of accesses
        is within one warpgroup: proved from the footprints) or "block" (the planner's)."""
        clash = st.conflict_buffers(acc)
        later_writes = acc.generic_writes()
        for b in sorted(set(st.wg) & acc.touched(), key=lambda x: x.name):
            if b not in later_writes and not st.wg[b].writes.any():
                continue  # reads after reads
            later = self.footprint(acc, b)
            if later is None or st.wg[b].crosses(later):
                # A hazard across warpgroups that a warpgroup barrier left.
                self.explain_wide(b, later is not None)
                return "block"
        if not clash:
            return None
        if all(self.one_thread(st, acc, b) for b in clash):
            return None  # each conflicting element is one thread's: its program order suffices
        if not self.wg_capable():
            return "block"
        for b in sorted(clash, key=lambda x: x.name):
            earlier, later = self.footprint(st, b), self.footprint(acc, b)
            if earlier is None or later is None or earlier.crosses(later):
                self.explain_wide(b, earlier is not None and later is not None)
                return "block"
        return "wg"

    def one_thread(self, st: Accesses, acc: Accesses, b: Buffer) -> bool:
        """Is every element of `b` on which `st` and `acc` conflict touched by one and the same
        thread in both? Not for accesses by the async proxy (a TMA store's read is not ordered
        by its thread's program order) or asynchronous writes (cp.async, TMA loads)."""
        for a in (st, acc):
            if b in a.async_reads or b in a.async_writes:
                return False
        earlier, later = self.footprint(st, b), self.footprint(acc, b)
        return earlier is not None and later is not None and earlier.one_thread(later)

    def explain_wide(self, b: Buffer, known: bool) -> None:
        """TSIR_EXPLAIN: why a tile that TMA stores read (split among the warpgroups, each
        storing its part) is ordered by a barrier across the planner's threads rather than each
        warpgroup's own."""
        if b not in self.store_tiles or not self.wg_capable():
            return
        why = (
            "cross warpgroups"
            if known
            else "cannot be enumerated (an index bound outside the statements or read from "
            "memory, or a call that does not state its extent)"
        )
        self.explain(
            f"a barrier across threads [{self.lo}, {self.hi}) orders `{b.name}`, whose accesses "
            f"{why}; a warpgroup's own barrier needs each element accessed by one warpgroup"
        )

    def after_wg_barrier(self, st: Accesses) -> Accesses:
        """The state after each warpgroup passed its own barrier: the accesses whose footprints
        are known become ordered within warpgroups (`wg`); the others stay as they were (a later
        conflict with them takes the planner's barrier)."""
        moved: dict[Buffer, Footprint] = {}
        for b in st.touched():
            fp = self.footprint(st, b)
            if fp is not None:
                moved[b] = fp
        rest = st.without(set(moved))
        return replace(rest, wg=merge_footprints(rest.wg, moved))

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
        planner = _Planner(
            k.thread_vars,
            aliases=shared_views(k.body),
            threads=(0, k.num_threads),
            wgc=_WgContext(k),
        )
        said: set[str] = set()  # a loop's body is planned twice

        def explain(message: str) -> None:
            if message not in said:
                said.add(message)
                self.ctx.explain("ThreadSync", f"kernel `{k.name}`: {message}")

        planner.explain = explain
        planner.async_reads = set(shared_accesses(k.body, aliases=planner.aliases).async_reads)
        stores = [c for c in collect(k.body, Call) if c.op.startswith("tsir.tma.tma_store_")]
        planner.store_tiles = set(
            shared_accesses(seq(*map(Evaluate, stores)), aliases=planner.aliases).async_reads
        )
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
                written = written_buffers(r, planner.aliases)
                planner.role_writes[key] = planner.role_writes.get(key, set()) | written  # type: ignore[index]
        body, end = planner.nested(k.body, Accesses())
        body = seq(body, *wait_stmts(end.pending))
        return k.replace(body=_StripMarkers().visit(body))


@register_pass("ThreadSync")
def ThreadSync(func: PrimFunc, ctx: PassContext) -> PrimFunc:
    """Insert the barriers that shared-memory hazards between threads need, and no more."""
    return _Kernels(ctx).visit(func)
