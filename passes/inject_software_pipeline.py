"""InjectSoftwarePipeline: `T.Pipelined(n, num_stages=S)` overlaps the next tiles' loads with compute.

Requires: tile-level IR (before LayoutInference). Guarantees: in a PIPELINED loop, the
global->shared `T.copy`s at the top level of its body that may be issued ahead (the producers:
nothing else in the body writes their tile or their source, nothing before them reads their tile,
see `_select_producers`), wherever they stand in the body, get S buffers for their tile (a
leading stage dimension), become asynchronous (cp.async, committed as one group per iteration)
and run S-1 iterations ahead; the rest of the body (the consumers) keeps its order:

    for s in [0, S-1): if s < n: copies(s) -> stage s;   commit
    for k in [0, n):
        wait until at most S-2 groups are pending; barrier      # tile k has landed for everyone
        if k + S - 1 < n: copies(k + S - 1) -> stage (k + S - 1) % S;   commit
        compute(k) on stage k % S
    wait for all groups

The barrier at the top of iteration k also orders compute(k-1)'s reads of stage (k-1) % S before
its overwrite by copies(k + S - 1) (the same stage). The loop is correct for any n >= 0.

On sm_90a (TMA, wgmma, setmaxnreg), when every producer has a bulk form (`TileOperatorNode.bulk_load`:
a T.copy whose tensor and box TMA can take), the loop becomes an mbarrier ring instead (ring.py
names its markers): mbarriers `full[S]`, `empty[S]` initialised by thread 0, and

    for j in [0, S-1): if j < n: produce(j)
    for k in [0, n):
        if k + S - 1 < n: produce(k + S - 1)
        wait full[k % S] (parity (k // S) % 2)
        compute(k) on stage k % S
        release(k): each warp arrives on empty[k % S] once its lanes are done
    produce(j): thread 0 waits empty[j % S] (parity (j // S + 1) % 2) and announces the stage's
                bytes on full[j % S]; then the bulk copies of iteration j into stage j % S

which WarpSpecialize can split into a producer warpgroup and consumers, and InjectWgmmaSync lets
overlap consecutive wgmma batches. The ring's depth S is the asked stages capped by the most trips
the analyzer proves for n (kernel indices, enclosing loops, lets and `if`s in scope, as Simplify
will know them; an n it proves constant is replaced by that constant): the loop's produce step
`produce(k + S - 1)` then runs at k = 0 of the longest loop, so Simplify, knowing no more, keeps it;
and `T.min(1, bx + 1)` builds the ring of the literal 1. A loop proved to run no iteration is no
pipeline at all (reported). A copy without a bulk form keeps the whole loop on cp.async,
with the reason in the report. With
S < 2 the loop is a plain serial loop, as asked; with no producer, no cp.async on the target, or
a tile another loop already stages, it is a plain serial loop too, and the reason (with each copy
that was not taken) is recorded in the report that TSIR_EXPLAIN=1 prints. ThreadSync leaves the
producers' accesses to these barriers (`pipeline_buffers`, `async_copy`).
"""

from __future__ import annotations

from tsir.arith import Analyzer
from tsir.buffer import Buffer, BufferRegion, Range, make_buffer
from tsir.dtype import int32
from tsir.errors import UnsupportedError
from tsir.expr import BufferLoad, Call, IntImm, PrimExpr, Select, Var, const_value
from tsir.function import PrimFunc
from tsir.stmt import (
    Allocate,
    AttrStmt,
    BufferStore,
    DeclBuffer,
    Evaluate,
    For,
    ForKind,
    IfThenElse,
    KernelLaunch,
    SeqStmt,
    Stmt,
    TileOpStmt,
    seq,
)
from tsir.tileop import AsyncLoad, BulkLoad, OpArgs
from tsir.visitor import Mutator, collect, substitute
from tsir.warp_roles import WARP_ROLE_ATTR

from .infra import PassContext, register_pass
from .ring import PRODUCE_ATTR, RELEASE_ATTR, RING_ATTR, barrier_address, mbarrier_call, parity
from .scope import ScopedMutator

__all__ = ["InjectSoftwarePipeline", "PIPELINE_BUFFERS_ATTR"]

PIPELINE_BUFFERS_ATTR = "pipeline_buffers"


def _call(op: str) -> Stmt:
    return Evaluate(Call(int32, op, ()))


def _is_producer(s: Stmt) -> bool:
    """A tile op that may run as an asynchronous global->shared load (`async_load`)."""
    return isinstance(s, TileOpStmt) and s.op.async_load() is not None


def _accesses(s: Stmt) -> tuple[set[Buffer], set[Buffer]]:
    """(buffers read, buffers written) anywhere in `s`, tile ops by their declared regions."""
    reads: set[Buffer] = set()
    writes: set[Buffer] = set()
    for t in collect(s, TileOpStmt):
        reads |= {r.buffer for r in t.op.reads()}
        writes |= {r.buffer for r in t.op.writes()}
    reads |= {x.buffer for x in collect(s, BufferLoad)}
    writes |= {x.buffer for x in collect(s, BufferStore)}
    return reads, writes


def _select_producers(
    stmts: list[Stmt], viewed: frozenset[Buffer] = frozenset()
) -> tuple[list[TileOpStmt], list[str]]:
    """The global->shared copies of a loop body that may be issued iterations ahead, wherever they
    stand in the body, and why the other candidates may not.

    A copy qualifies when nothing else in the body writes its tile (the staged copy would be
    overwritten), nothing before it reads its tile (that read means the previous iteration's
    tile), nothing in the body writes its source (the early read would miss the write), and its
    addresses read no buffer the body writes (they would be computed too early)."""
    body_reads_writes = [_accesses(x) for x in stmts]
    producers: list[TileOpStmt] = []
    refusals: list[str] = []
    for i, st in enumerate(stmts):
        candidates = [t for t in collect(st, TileOpStmt) if _is_producer(t)]
        if not candidates:
            continue
        if not _is_producer(st):
            for t in candidates:
                refusals.append(
                    f"{t.op.title()} into `{t.op.async_load().tile.name}` is not issued ahead: it sits "
                    f"inside another statement of the loop body (an if or a loop)"
                )
            continue
        op = st.op  # pyright: ignore[reportAttributeAccessIssue]  # narrowed by a check above that the checker cannot follow
        load = op.async_load()
        tile, src = load.tile, load.source
        written_elsewhere = any(tile in w for j, (_, w) in enumerate(body_reads_writes) if j != i)
        read_before = any(tile in r for r, _ in body_reads_writes[:i])
        src_written = any(src in w for _, w in body_reads_writes)
        index_loads = {x.buffer for x in collect(op, BufferLoad)}
        index_written = any(index_loads & w for _, w in body_reads_writes)
        why = (
            f"`{tile.name}` has a T.view alias, which would not follow its stages"
            if tile in viewed
            else f"another statement of the body writes `{tile.name}`"
            if written_elsewhere
            else f"`{tile.name}` is read before the copy in the same iteration"
            if read_before
            else f"the body writes its source `{src.name}`"
            if src_written
            else "its addresses read values the body computes"
            if index_written
            else None
        )
        if why is None:
            producers.append(st)  # pyright: ignore[reportArgumentType]  # narrowed by a check above that the checker cannot follow
        else:
            refusals.append(f"{op.title()} into `{tile.name}` is not issued ahead: {why}")
    return producers, refusals


class _Stage(Mutator):
    """Accesses to a staged tile select stage `stage` (a leading index)."""

    def __init__(self, staged: dict[Buffer, Buffer], stage: PrimExpr):
        super().__init__()
        self.staged = staged
        self.stage = stage

    def visit_BufferRegion(self, r: BufferRegion) -> BufferRegion:
        r = self.generic_visit(r)
        b = self.staged.get(r.buffer)
        if b is None:
            return r
        return BufferRegion(b, (Range(self.stage, IntImm(1, int32)), *r.region))

    def visit_BufferLoad(self, e: BufferLoad) -> PrimExpr:
        e = self.generic_visit(e)
        b = self.staged.get(e.buffer)
        return e if b is None else BufferLoad(b, (self.stage, *e.indices))

    def visit_BufferStore(self, s: BufferStore) -> Stmt:
        s = self.generic_visit(s)
        b = self.staged.get(s.buffer)
        return s if b is None else BufferStore(b, s.value, (self.stage, *s.indices))


class _Pipeline(ScopedMutator):
    """Rewrites the pipelined loops of one kernel; its analyzer knows the ranges in scope (the
    kernel's indices, enclosing loops, lets and `if` conditions), as Simplify's will."""

    def __init__(
        self,
        ctx: PassContext,
        kernel: KernelLaunch,
        viewed: frozenset[Buffer] = frozenset(),
        analyzer: Analyzer | None = None,
    ):
        super().__init__(analyzer)
        self.ctx = ctx
        self.kernel = kernel
        self.staged: dict[Buffer, Buffer] = {}
        self.last_stage: dict[Buffer, PrimExpr] = {}
        self.barriers: list[Buffer] = []
        self.loops = 0  # loops around the one being rewritten
        self.roles = 0  # warp roles (T.ws) around it
        self.viewed = viewed  # shared buffers that a T.view aliases (or that are views)

    def unpipelined(self, serial: For, loop: For, why: str) -> For:
        stages = loop.annotation("num_stages", 0)
        self.ctx.explain(
            "InjectSoftwarePipeline",
            f"T.Pipelined(num_stages={stages}) over `{loop.loop_var.name}` runs unpipelined: {why}",
            loop.span,
        )
        return serial

    def visit_AttrStmt(self, s: AttrStmt) -> Stmt:
        if s.key != WARP_ROLE_ATTR:
            return self.generic_visit(s)  # type: ignore[return-value]
        self.roles += 1
        try:
            return self.generic_visit(s)  # type: ignore[return-value]
        finally:
            self.roles -= 1

    def visit_For(self, s: For) -> Stmt:
        self.loops += 1
        try:
            out = super().visit_For(s)  # binds the loop's range for the loops inside
        finally:
            self.loops -= 1
        assert isinstance(out, For), "rewriting a loop's body leaves a loop"
        s = out
        if s.kind is not ForKind.PIPELINED:
            return s
        out = self.pipeline(s)
        if s.annotation("pingpong", False) and not any(
            a.key == RING_ATTR for a in collect(out, AttrStmt)
        ):
            self.ctx.explain(
                "InjectSoftwarePipeline",
                f"T.Pipelined(pingpong=True) over `{s.loop_var.name}` is not applied: the loop "
                "is not a TMA pipeline (mbarrier ring) with a producer warpgroup, which ping-pong "
                "needs (sm_90a; the report says why the loop is not one)",
                s.span,
            )
        return out

    def pipeline(self, s: For) -> Stmt:
        stages = int(s.annotation("num_stages", 0) or 0)
        serial = s.replace(kind=ForKind.SERIAL, annotations=())
        if s.annotation("schedule") is not None:
            given = ", ".join(
                f"{k}=" for k, v in zip(("order", "stage", "group"), s.annotation("schedule")) if v
            )
            self.ctx.explain(
                "InjectSoftwarePipeline",
                f"T.Pipelined over `{s.loop_var.name}`: the hand-written schedule ({given}) is not "
                "followed; tsir stages the loop's leading global->shared copies itself (the "
                "results are the same, the overlap may differ)",
                s.span,
            )
        if stages < 2:
            return serial  # 0 and 1 ask for no overlap
        # What the loop is, as every later pass will see it: its extent simplified under the
        # ranges in scope (a constant when provably one) and its most trips. Simplify folds the
        # guards of produce steps that cannot run with the same facts, so the ring's structure
        # must be decided from these, not from the extent as written.
        bound = self.analyzer.const_int_bound(s.extent)
        if bound.min_value == bound.max_value and not isinstance(s.extent, IntImm):
            extent = IntImm(bound.min_value, s.extent.dtype)
            s = s.replace(extent=extent)
            serial = serial.replace(extent=extent)
        most = bound.max_value
        if most <= 0:
            return self.unpipelined(serial, s, "it runs no iteration (its extent is never above 0)")
        if self.roles or any(a.key == WARP_ROLE_ATTR for a in collect(s.body, AttrStmt)):
            return self.unpipelined(
                serial,
                s,
                "the kernel's warp roles (T.ws) order its copies with the program's "
                "own mbarriers; tsir does not stage them again",
            )
        if not self.ctx.target.has_cp_async:
            return self.unpipelined(serial, s, f"{self.ctx.target} has no cp.async")
        stmts = list(s.body.stmts) if isinstance(s.body, SeqStmt) else [s.body]
        producers, refusals = _select_producers(stmts, self.viewed)
        for why in refusals:
            self.ctx.explain("InjectSoftwarePipeline", why, s.span)
        if not producers:
            return self.unpipelined(
                serial, s, "no global->shared T.copy in its body can be issued ahead"
            )
        taken = {id(p) for p in producers}
        consumers = [x for x in stmts if id(x) not in taken]
        loads: list[AsyncLoad] = []
        for p in producers:
            load = p.op.async_load()
            assert load is not None, "_select_producers keeps only ops with an async load"
            loads.append(load)
        tiles = list(dict.fromkeys(ld.tile for ld in loads))  # program order: deterministic IR
        if any(b in self.staged for b in tiles):
            names = ", ".join(sorted(b.name for b in tiles if b in self.staged))
            return self.unpipelined(
                serial, s, f"tile {names} is already staged by another pipelined loop"
            )
        k, n = s.loop_var, s.extent
        # A ring no deeper than the loop's most trips: the produce step inside the loop, issued
        # `depth - 1` iterations ahead, then runs at least once (at k = 0 when the loop runs
        # `most` times), so no later pass can prove it dead, and it keeps the loop-variant form
        # that WarpSpecialize lifts into the producer.
        depth = max(1, min(stages, most))
        full = make_buffer("mbar_full", (depth,), "uint64", "shared", 8)
        bulk = self.bulk_loads(s, loads, BufferLoad(full, (k % depth,)))
        if bulk is not None:
            stages = depth
        for b in tiles:
            # Bulk copies and wgmma read swizzles from absolute addresses: align whole atoms.
            align = max(b.align, 1024) if bulk is not None else b.align
            self.staged[b] = make_buffer(b.name, (stages, *b.shape), b.dtype, b.scope, align)
            # After the loop the tile is the last iteration's stage (stage 0 if none ran).
            last = Select(n > 0, (n - 1) % stages, IntImm(0, n.dtype))
            self.last_stage[b] = Analyzer().simplify(last)
        mine = {b: self.staged[b] for b in tiles}
        if bulk is not None:
            return self.ring(s, stages, bulk, consumers, mine, full)

        def issue(j: PrimExpr) -> Stmt:
            out = []
            for ld in loads:
                op = substitute(ld.op, {k: j})
                out.append(TileOpStmt(_Stage(mine, j % stages).visit(op)))
            return seq(*out)

        commit = _call("tsir.async_copy.cp_async_commit")

        def guarded(j: PrimExpr, stmt: Stmt) -> Stmt:
            c = j < n
            if isinstance(c, IntImm):
                return stmt if c.value else seq()
            return IfThenElse(c, stmt)

        prologue = [
            seq(guarded(IntImm(i, k.dtype), issue(IntImm(i, k.dtype))), commit)
            for i in range(stages - 1)
        ]
        ahead = k + (stages - 1)
        # The next tile's loads are issued before this tile's compute, so they have the whole
        # compute to land; the stage they overwrite was last read by compute(k - 1), which every
        # thread finished before the barrier.
        body = seq(
            _call(f"tsir.async_copy.cp_async_wait<{stages - 2}>"),
            _call("sync_threads"),
            guarded(ahead, issue(ahead)),
            commit,
            _Stage(mine, k % stages).visit(seq(*consumers)),
        )
        loop = For(k, s.min, n, ForKind.SERIAL, body)
        out = seq(*prologue, loop, _call("tsir.async_copy.cp_async_wait<0>"))
        return AttrStmt(PIPELINE_BUFFERS_ATTR, tuple(mine.values()), out)

    def bulk_loads(self, s: For, loads: list[AsyncLoad], bar: BufferLoad) -> list[BulkLoad] | None:
        """The producers as bulk loads completing on `bar`, when the target has TMA and every one
        has that form; else None, with the reason reported (an error when the loop asked for TMA
        with `tma=True`)."""
        wanted = s.annotation("tma")
        if wanted is False:
            return None
        loop = f"T.Pipelined over `{s.loop_var.name}`"

        def decline(why: str) -> None:
            if wanted:
                raise UnsupportedError(
                    f"{loop} asks for TMA loads (tma=True), but {why}",
                    loc=s.span,
                    where="InjectSoftwarePipeline",
                )
            self.ctx.explain("InjectSoftwarePipeline", f"{loop} stays on cp.async: {why}", s.span)

        if not self.ctx.target.has_wgmma:
            # Rings are built where the consumers and the producer warpgroup that make them pay
            # exist and are verified (sm_90a); sm_90 and sm_100a keep cp.async for now.
            if wanted:
                decline(f"{self.ctx.target} builds no TMA pipelines (sm_90a does)")
            return None
        if len(self.kernel.threads) != 1:
            decline("its kernel's threads are not one-dimensional")
            return None
        if const_value(s.min) != 0:
            decline("the loop does not start at 0")
            return None
        if self.loops:
            # Its barriers would be initialised again on every outer iteration, live.
            decline("it sits inside another loop")
            return None
        args = OpArgs(self.ctx.target, self.kernel.num_threads)
        # A tensor map describes a parameter as the host passes it: not a view of one (T.reshape).
        views = {d.buffer: d.base for d in collect(self.kernel.body, DeclBuffer)}
        out: list[BulkLoad] = []
        for ld in loads:
            if ld.source in views:
                decline(
                    f"{ld.op.title()} into `{ld.tile.name}` reads `{ld.source.name}`, a view of "
                    f"`{views[ld.source].name}`, and a tensor map describes a parameter as passed"
                )
                return None
            r = ld.op.bulk_load(args, bar)
            if isinstance(r, str):
                decline(f"{ld.op.title()} into `{ld.tile.name}` is not a TMA load: {r}")
                return None
            out.append(r)
        return out

    def ring(
        self,
        s: For,
        stages: int,
        bulk: list[BulkLoad],
        consumers: list[Stmt],
        mine: dict[Buffer, Buffer],
        full: Buffer,
    ) -> Stmt:
        """The loop as an mbarrier ring of `stages` (module doc)."""
        empty = make_buffer("mbar_empty", (stages,), "uint64", "shared", 8)
        self.barriers += [full, empty]
        tx: Var = self.kernel.thread_vars[0]
        k, n = s.loop_var, s.extent
        warps = self.kernel.num_threads // 32
        nbytes = sum(b.nbytes for b in bulk)
        ahead = stages - 1
        i = Var("s", int32)
        init = seq(
            IfThenElse(
                tx == 0,
                seq(
                    For(
                        i,
                        IntImm(0, int32),
                        IntImm(stages, int32),
                        ForKind.UNROLLED,
                        seq(
                            mbarrier_call("mbarrier_init", barrier_address(full, i), 1),
                            mbarrier_call("mbarrier_init", barrier_address(empty, i), warps),
                        ),
                    ),
                    mbarrier_call("mbarrier_init_fence"),
                ),
            ),
            _call("sync_threads"),
        )

        def produce(j: PrimExpr) -> Stmt:
            st = j % stages
            announce = IfThenElse(
                tx == 0,
                seq(
                    mbarrier_call(
                        "mbarrier_wait", barrier_address(empty, st), parity(j, stages, True)
                    ),
                    mbarrier_call("mbarrier_arrive_expect_tx", barrier_address(full, st), nbytes),
                ),
            )
            copies = [TileOpStmt(_Stage(mine, st).visit(substitute(b.op, {k: j}))) for b in bulk]
            # (a constant iteration as a Python int: the form the printer rebuilds)
            mark = j.value if isinstance(j, IntImm) else j
            return AttrStmt(PRODUCE_ATTR, mark, seq(announce, *copies))

        def guarded(j: PrimExpr, stmt: Stmt) -> Stmt:
            c = j < n
            if isinstance(c, IntImm):
                return stmt if c.value else seq()
            return IfThenElse(c, stmt)

        release = AttrStmt(
            RELEASE_ATTR,
            k,
            seq(
                _call("sync_warp"),
                IfThenElse(
                    tx % 32 == 0,
                    mbarrier_call("mbarrier_arrive", barrier_address(empty, k % stages)),
                ),
            ),
        )
        body = seq(
            guarded(k + ahead, produce(k + ahead)),
            mbarrier_call(
                "mbarrier_wait", barrier_address(full, k % stages), parity(k, stages, False)
            ),
            _Stage(mine, k % stages).visit(seq(*consumers)),
            release,
        )
        prologue = [guarded(IntImm(j, k.dtype), produce(IntImm(j, k.dtype))) for j in range(ahead)]
        loop = For(k, s.min, n, ForKind.SERIAL, body)
        ws = bool(s.annotation("warp_specialize", True))
        # T.Pipelined(pingpong=True) rides on the ring to WarpSpecialize (ring.py).
        pingpong = (True,) if s.annotation("pingpong", False) else ()
        value = (full, empty, stages, ws, *pingpong)
        out = AttrStmt(RING_ATTR, value, seq(init, *prologue, loop), span=s.span)
        return AttrStmt(PIPELINE_BUFFERS_ATTR, tuple(mine.values()), out)


class _Kernels(ScopedMutator):
    def __init__(self, ctx: PassContext):
        super().__init__()
        self.ctx = ctx

    def visit_KernelLaunch(self, k: KernelLaunch) -> Stmt:
        for v, n in zip(k.block_vars, k.grid):
            self.analyzer.bind(v, IntImm(0, v.dtype), n, override=True)
        for v, t in zip(k.thread_vars, k.threads):
            self.analyzer.bind(v, IntImm(0, v.dtype), IntImm(t, v.dtype), override=True)
        # Allocations sit above the loops that stage them: rewrite loops first, then allocations.
        views = [d for d in collect(k.body, DeclBuffer) if d.base.scope in ("shared", "shared.dyn")]
        viewed = frozenset(b for d in views for b in (d.buffer, d.base))
        p = _Pipeline(self.ctx, k, viewed, self.analyzer)
        body = p.visit(k.body)
        if p.staged:
            # A staged tile used outside its pipelined loop is one of its stages there: stage 0
            # before the loop, the last iteration's stage after it (read the last tile, or
            # refilled by a later loop); ThreadSync orders those accesses as any tile's.
            body = _Outside(p.staged, p.last_stage).visit(body)
            body = _Realloc(p.staged).visit(body)
        for bar in reversed(p.barriers):
            body = Allocate(bar, body)
        return k.replace(body=body)


class _Outside(Mutator):
    """Accesses to staged tiles outside their pipelines, in program order: stage 0 until the
    pipeline region has been passed, then the stage its last iteration loaded."""

    def __init__(self, staged: dict[Buffer, Buffer], last: dict[Buffer, PrimExpr]):
        super().__init__()
        self.staged = staged
        self.last = last
        self.after: set[Buffer] = set()

    def visit_AttrStmt(self, s: AttrStmt) -> Stmt:
        if s.key != PIPELINE_BUFFERS_ATTR:
            return self.generic_visit(s)
        self.after |= {orig for orig, b in self.staged.items() if b in s.value}
        return s  # the pipeline's own accesses are staged already

    def _one(self, b: Buffer) -> _Stage:
        stage = self.last[b] if b in self.after else IntImm(0, int32)
        return _Stage({b: self.staged[b]}, stage)

    def visit_BufferRegion(self, r: BufferRegion) -> BufferRegion:
        r = self.generic_visit(r)
        return self._one(r.buffer).visit_BufferRegion(r) if r.buffer in self.staged else r

    def visit_BufferLoad(self, e: BufferLoad) -> PrimExpr:
        e = self.generic_visit(e)
        return self._one(e.buffer).visit_BufferLoad(e) if e.buffer in self.staged else e

    def visit_BufferStore(self, s: BufferStore) -> Stmt:
        s = self.generic_visit(s)
        return self._one(s.buffer).visit_BufferStore(s) if s.buffer in self.staged else s


class _Realloc(Mutator):
    def __init__(self, staged: dict[Buffer, Buffer]):
        super().__init__()
        self.staged = staged

    def visit_Allocate(self, a: Allocate) -> Stmt:
        body = self.visit(a.body)
        b = self.staged.get(a.buffer)
        return (
            Allocate(b, body)
            if b is not None
            else (a.replace(body=body) if body is not a.body else a)
        )


@register_pass("InjectSoftwarePipeline")
def InjectSoftwarePipeline(func: PrimFunc, ctx: PassContext) -> PrimFunc:
    """Multi-buffer the tiles of T.Pipelined loops and load them asynchronously, stages ahead."""
    return _Kernels(ctx).visit(func)
