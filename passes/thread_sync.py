"""ThreadSync: `__syncthreads()` between shared-memory accesses of different threads that conflict.

Requires: thread-level IR (after LowerTileOp), before PlanSharedMemory (buffers still distinct).
Guarantees: between a write of a shared buffer and a later read of it, and between a read and a
later write (the next loop iteration included), every thread passes a barrier. Barriers go
only where such a conflict exists, never inside an `if` whose condition differs across the threads
of a block (that would deadlock), and an existing barrier is reused.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tsir.buffer import Buffer
from tsir.expr import BufferLoad, Call, Var
from tsir.function import PrimFunc
from tsir.stmt import (
    Allocate, AttrStmt, BufferStore, DeclBuffer, Evaluate, For, IfThenElse, KernelLaunch, LetStmt,
    SeqStmt, Stmt, seq,
)
from tsir.dtype import int32
from tsir.visitor import Mutator, collect

from .infra import PassContext, register_pass

__all__ = ["ThreadSync", "SHARED_SCOPES", "make_barrier", "is_barrier"]

SHARED_SCOPES = ("shared", "shared.dyn")


def make_barrier() -> Stmt:
    return Evaluate(Call(int32, "sync_threads", ()))


def is_barrier(s: Stmt) -> bool:
    return isinstance(s, Evaluate) and isinstance(s.value, Call) and s.value.op == "sync_threads"


@dataclass
class _State:
    reads: set[Buffer] = field(default_factory=set)
    writes: set[Buffer] = field(default_factory=set)

    def copy(self) -> _State:
        return _State(set(self.reads), set(self.writes))

    def union(self, o: _State) -> _State:
        return _State(self.reads | o.reads, self.writes | o.writes)

    def conflicts(self, reads: set[Buffer], writes: set[Buffer]) -> bool:
        # Read after write and write after read. Two unordered writes of one element by different
        # threads would be a race in the program itself, so write after write needs no barrier.
        return bool(reads & self.writes or writes & self.reads)


def _accesses(s: Stmt) -> tuple[set[Buffer], set[Buffer]]:
    # `&A[i]` handed to a device-header function (a remote copy, cp.async into shared memory) may be
    # written through, and is not itself a read.
    addressed = [a for c in collect(s, Call) if c.op == "address_of" for a in c.args if isinstance(a, BufferLoad)]
    addressed_ids = {id(a) for a in addressed}
    reads = {
        x.buffer for x in collect(s, BufferLoad)
        if x.buffer.scope in SHARED_SCOPES and id(x) not in addressed_ids
    }
    writes = {x.buffer for x in collect(s, BufferStore) if x.buffer.scope in SHARED_SCOPES}
    writes |= {a.buffer for a in addressed if a.buffer.scope in SHARED_SCOPES}
    return reads, writes


class _Planner:
    def __init__(self, thread_vars: tuple[Var, ...]):
        self.thread_vars = set(thread_vars)
        # Buffers whose barriers a software pipeline places itself (inside its region).
        self.managed: set[Buffer] = set()

    def uniform(self, cond: object) -> bool:
        return not any(v in self.thread_vars for v in collect(cond, Var))

    def block(self, stmts: list[Stmt], st: _State) -> tuple[list[Stmt], _State]:
        out: list[Stmt] = []
        for s in stmts:
            s, st = self.stmt(s, st, out)
        return out, st

    def stmt(self, s: Stmt, st: _State, out: list[Stmt]) -> tuple[Stmt, _State]:
        if is_barrier(s):
            out.append(s)
            return s, _State()
        if isinstance(s, SeqStmt):
            new, st = self.block(list(s.stmts), st)
            out.extend(new)
            return s, st
        if isinstance(s, AttrStmt) and s.key == "pipeline_buffers":
            outer = self.managed
            self.managed = outer | set(s.value)
            body, st = self.nested(s.body, st)
            self.managed = outer
            new = s.replace(body=body)
            out.append(new)
            return new, st
        if isinstance(s, (Allocate, DeclBuffer, LetStmt, AttrStmt)):
            body, st = self.nested(s.body, st)
            new = s.replace(body=body)
            out.append(new)
            return new, st
        if isinstance(s, For):
            # A conflict with what came before the loop is resolved once, before the loop.
            st = self.barrier_if_conflict(s, st, out)
            body, st_first = self.nested(s.body, st)
            # The next iteration sees what the previous one left pending.
            body, st_second = self.nested(body, st_first)
            new = s.replace(body=body)
            out.append(new)
            return new, st.union(st_first).union(st_second)
        if isinstance(s, IfThenElse) and self.uniform(s.cond):
            then_case, st_then = self.nested(s.then_case, st)
            else_case, st_else = (None, st) if s.else_case is None else self.nested(s.else_case, st)
            new = IfThenElse(s.cond, then_case, else_case)
            out.append(new)
            return new, st_then.union(st_else)
        st = self.barrier_if_conflict(s, st, out)
        out.append(s)
        reads, writes = _accesses(s)
        return s, st.union(_State(reads - self.managed, writes - self.managed))

    def barrier_if_conflict(self, s: Stmt, st: _State, out: list[Stmt]) -> _State:
        reads, writes = _accesses(s)
        reads -= self.managed
        writes -= self.managed
        if not st.conflicts(reads, writes):
            return st
        if not (out and is_barrier(out[-1])):
            out.append(make_barrier())
        return _State()

    def nested(self, body: Stmt, st: _State) -> tuple[Stmt, _State]:
        stmts = list(body.stmts) if isinstance(body, SeqStmt) else [body]
        new, st = self.block(stmts, st)
        return seq(*new), st


class _Kernels(Mutator):
    def visit_KernelLaunch(self, k: KernelLaunch) -> Stmt:
        body, _ = _Planner(k.thread_vars).nested(k.body, _State())
        return k.replace(body=body)


@register_pass("ThreadSync")
def ThreadSync(func: PrimFunc, ctx: PassContext) -> PrimFunc:
    """Insert the barriers that shared-memory hazards between threads need, and no more."""
    return _Kernels().visit(func)
