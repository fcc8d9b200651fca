"""InjectSoftwarePipeline: `T.Pipelined(n, num_stages=S)` overlaps the next tiles' loads with compute.

Requires: tile-level IR (before LayoutInference). Guarantees: in a PIPELINED loop whose body starts
with global->shared `T.copy`s (the producers) followed by the compute that reads them (the
consumers), each producer's shared tile gets S buffers (a leading stage dimension), the copies
become asynchronous (cp.async, committed as one group per iteration) and run S-1 iterations ahead:

    for s in [0, S-1): if s < n: copies(s) -> stage s;   commit
    for k in [0, n):
        wait until at most S-2 groups are pending; barrier      # tile k has landed for everyone
        if k + S - 1 < n: copies(k + S - 1) -> stage (k + S - 1) % S;   commit
        compute(k) on stage k % S
    wait for all groups

The barrier at the top of iteration k also orders compute(k-1)'s reads of stage (k-1) % S before
its overwrite by copies(k + S - 1) (the same stage). The loop is correct for any n >= 0; with S < 2,
no producer, or no cp.async on the target, the loop is left as a plain serial loop. ThreadSync is
told (`pipeline_buffers`) that these barriers already cover the staged tiles.
"""

from __future__ import annotations

from tsir.buffer import Buffer, BufferRegion, Range, make_buffer
from tsir.dtype import int32
from tsir.expr import BufferLoad, Call, IntImm, PrimExpr
from tsir.function import PrimFunc
from tsir.stmt import (
    Allocate, AttrStmt, BufferStore, Evaluate, For, ForKind, IfThenElse, KernelLaunch, SeqStmt, Stmt,
    TileOpStmt, seq,
)
from tsir.tileop.copy import Copy
from tsir.visitor import Mutator, substitute

from .infra import PassContext, register_pass

__all__ = ["InjectSoftwarePipeline", "PIPELINE_BUFFERS_ATTR"]

PIPELINE_BUFFERS_ATTR = "pipeline_buffers"


def _call(op: str) -> Stmt:
    return Evaluate(Call(int32, op, ()))


def _is_producer(s: Stmt) -> bool:
    return (
        isinstance(s, TileOpStmt)
        and isinstance(s.op, Copy)
        and s.op.src.buffer.scope in ("global", "symmetric")
        and s.op.dst.buffer.scope in ("shared", "shared.dyn")
    )


class _Stage(Mutator):
    """Accesses to a staged tile select stage `stage` (a leading index)."""

    def __init__(self, staged: dict[Buffer, Buffer], stage: PrimExpr):
        super().__init__()
        self.staged = staged
        self.stage = stage

    def visit_BufferRegion(self, r: BufferRegion) -> BufferRegion:
        r = self.generic_visit(r)  # type: ignore[assignment]
        b = self.staged.get(r.buffer)
        if b is None:
            return r
        return BufferRegion(b, (Range(self.stage, IntImm(1, int32)), *r.region))

    def visit_BufferLoad(self, e: BufferLoad) -> PrimExpr:
        e = self.generic_visit(e)  # type: ignore[assignment]
        b = self.staged.get(e.buffer)
        return e if b is None else BufferLoad(b, (self.stage, *e.indices))

    def visit_BufferStore(self, s: BufferStore) -> Stmt:
        s = self.generic_visit(s)  # type: ignore[assignment]
        b = self.staged.get(s.buffer)
        return s if b is None else BufferStore(b, s.value, (self.stage, *s.indices))


class _Pipeline(Mutator):
    def __init__(self, ctx: PassContext):
        super().__init__()
        self.ctx = ctx
        self.staged: dict[Buffer, Buffer] = {}

    def visit_For(self, s: For) -> Stmt:
        s = self.generic_visit(s)  # type: ignore[assignment]
        if s.kind is not ForKind.PIPELINED:
            return s
        stages = int(s.annotation("num_stages", 0) or 0)
        serial = s.replace(kind=ForKind.SERIAL, annotations=())
        stmts = list(s.body.stmts) if isinstance(s.body, SeqStmt) else [s.body]
        n_prod = 0
        while n_prod < len(stmts) and _is_producer(stmts[n_prod]):
            n_prod += 1
        if stages < 2 or n_prod == 0 or not self.ctx.target.has_cp_async:
            return serial
        producers, consumers = stmts[:n_prod], stmts[n_prod:]
        tiles = {p.op.dst.buffer for p in producers}  # type: ignore[attr-defined]
        if any(b in self.staged for b in tiles):
            return serial  # the tile is already staged by another pipelined loop
        for b in tiles:
            self.staged[b] = make_buffer(b.name, (stages, *b.shape), b.dtype, b.scope, b.align)
        k, n = s.loop_var, s.extent
        mine = {b: self.staged[b] for b in tiles}

        def issue(j: PrimExpr) -> Stmt:
            out = []
            for p in producers:
                op = substitute(p.op, {k: j})
                op = _Stage(mine, j % stages).visit(op.replace(async_copy=True))
                out.append(TileOpStmt(op))
            return seq(*out)

        commit = _call("tsir.async_copy.cp_async_commit")

        def guarded(j: PrimExpr, stmt: Stmt) -> Stmt:
            c = j < n
            if isinstance(c, IntImm):
                return stmt if c.value else seq()
            return IfThenElse(c, stmt)

        prologue = [seq(guarded(IntImm(i, k.dtype), issue(IntImm(i, k.dtype))), commit) for i in range(stages - 1)]
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

class _Kernels(Mutator):
    def __init__(self, ctx: PassContext):
        super().__init__()
        self.ctx = ctx

    def visit_KernelLaunch(self, k: KernelLaunch) -> Stmt:
        # Allocations sit above the loops that stage them: rewrite loops first, then allocations.
        p = _Pipeline(self.ctx)
        body = p.visit(k.body)
        if p.staged:
            body = _Realloc(p.staged).visit(body)
        return k.replace(body=body)


class _Realloc(Mutator):
    def __init__(self, staged: dict[Buffer, Buffer]):
        super().__init__()
        self.staged = staged

    def visit_Allocate(self, a: Allocate) -> Stmt:
        body = self.visit(a.body)
        b = self.staged.get(a.buffer)
        return Allocate(b, body) if b is not None else (a.replace(body=body) if body is not a.body else a)


@register_pass("InjectSoftwarePipeline")
def InjectSoftwarePipeline(func: PrimFunc, ctx: PassContext) -> PrimFunc:
    """Multi-buffer the tiles of T.Pipelined loops and load them asynchronously, stages ahead."""
    return _Kernels(ctx).visit(func)

