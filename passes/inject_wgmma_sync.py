"""InjectWgmmaSync: the ordering instructions of asynchronous warpgroup MMAs (sm_90a).

Requires: thread-level IR, tile-op markers still in place (before ThreadSync). Gemm's wgmma
lowering makes each gemm synchronous on its own (fence, issue, commit, wait<0>); this pass drops
that per-gemm fence/commit/wait and places them for the whole kernel (a kernel whose other wgmma
calls already carry fences, commits or waits is left as written). Guarantees, per warpgroup, in
program order:

- each run of consecutive wgmma statements (a batch: one or more gemms) is preceded by
  `wgmma_fence()` (registers written by ordinary code since the last wgmma are ordered before it)
  and followed by `wgmma_commit()`, which makes it a group;
- before any statement that touches the accumulator registers of a pending group, writes a shared
  buffer a pending group reads, releases a ring stage a pending group reads (an mbarrier ring's
  RELEASE region), or is a barrier after which other threads may write such a buffer (a
  warpgroup's wait orders its own reads only), or arrives on an mbarrier outside a ring's
  release (a program's own protocol: the arrival hands its shared tiles on), `wgmma_wait<N>()`
  retires the groups that conflict, N being the number of newer
  groups that may stay in flight, and `wgmma_fence_operands` pins the retired accumulators (the C++
  compiler may not move their reads above the wait); nothing is pending at the end of the kernel
  (or of a warp-specialized branch); an `if` that issues no wgmma and whose condition is the same
  for the whole warpgroup gets these waits inside its branches, each before the first statement
  that needs it, when its first statement lets more groups stay in flight than the whole `if`
  would (FlashAttention's softmax of S(j+1) under a uniform `if`, beside P(j) V(j) in flight);
- in an mbarrier ring's loop whose last statement before the release is a batch, the release of
  iteration k moves to iteration k + 1 (after that iteration's batch is issued, `wait<1>`), the
  last one after the loop, and the loop's producer (if any) after the moved release, since it
  waits for it: the next k-block's math then overlaps this one's (two groups in flight);
- the ring's markers are gone (its barriers and their calls stay);
- a cp.async pipeline whose tiles wgmma reads gets `fence_proxy_async_shared()` between its
  cp.async wait and its barrier (cp.async writes through the generic proxy, wgmma reads through
  the async one).

Conflicts are read from declarations: a group reads the shared buffers its descriptors address
and writes its accumulators; other statements' shared writes come from their stores and the
calls' declared effects (ThreadSync's `shared_accesses`; TMA writes are ordered by the ring).
Loops are analysed to a fixpoint with the groups carried over the back edge renamed to the
previous iteration, so a ring stage is told apart from the next (stages k and k - 1 differ).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from tsir.arith import Analyzer
from tsir.buffer import Buffer
from tsir.dtype import DataType, int32
from tsir.expr import BufferLoad, Call, IntImm, PrimExpr, Var, const_value
from tsir.function import PrimFunc
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
from tsir.visitor import Mutator, collect, substitute

from .infra import PassContext, register_pass
from .lower_tile_op import TILE_OP_ATTR
from .ring import PRODUCE_ATTR, RELEASE_ATTR, RING_ATTR, ring_of
from .thread_range import THREAD_RANGE_ATTR
from .thread_sync import shared_accesses

__all__ = ["InjectWgmmaSync", "is_wgmma_issue"]

_ISSUE = ("tsir.wgmma.wgmma_ss", "tsir.wgmma.wgmma_rs")
_SYNC = ("tsir.wgmma.wgmma_fence", "tsir.wgmma.wgmma_commit", "tsir.wgmma.wgmma_wait")
_HANDLE = DataType("handle")
_SHARED = ("shared", "shared.dyn")
_MAX_ROUNDS = 4


def _base(op: str) -> str:
    return op.split("<", 1)[0]


def is_wgmma_issue(c: Call) -> bool:
    return _base(c.op) in _ISSUE


def _call(op: str, *args: PrimExpr) -> Stmt:
    return Evaluate(Call(int32, op, args))


@dataclass(frozen=True)
class _Group:
    """A committed wgmma group: accumulators it writes, shared tiles it reads, and the ring
    iteration that issued it (None: not in a ring loop, or not known)."""

    accs: frozenset[Buffer]
    smem: frozenset[Buffer]
    it: PrimExpr | None

    def union(self, o: _Group | None) -> _Group:
        if o is None:
            return self
        it = (
            self.it
            if self.it is not None and o.it is not None and structural_equal(self.it, o.it)
            else None
        )
        return _Group(self.accs | o.accs, self.smem | o.smem, it)

    def same(self, o: _Group) -> bool:
        if self.accs != o.accs or self.smem != o.smem:
            return False
        if self.it is None or o.it is None:
            return self.it is o.it
        return structural_equal(self.it, o.it)


State = tuple[_Group, ...]  # pending groups, oldest first


def _merge(a: State, b: State) -> State:
    n = max(len(a), len(b))
    out: list[_Group] = []
    for i in range(1, n + 1):
        ga = a[-i] if i <= len(a) else None
        gb = b[-i] if i <= len(b) else None
        out.append(ga.union(gb) if ga is not None else gb)  # pyright: ignore[reportArgumentType]  # narrowed by a check above that the checker cannot follow
    return tuple(reversed(out))


def _same(a: State, b: State) -> bool:
    return len(a) == len(b) and all(x.same(y) for x, y in zip(a, b))


def _is_batch(s: Stmt) -> bool:
    """Only wgmma issues (with the descriptors' bindings and markers around them)."""
    calls = [e for e in collect(s, Evaluate)]
    if not calls:
        return False
    for e in calls:
        if not (isinstance(e.value, Call) and is_wgmma_issue(e.value)):
            return False
    return not collect(s, (For, IfThenElse, BufferStore))


def _issues(s: Stmt) -> list[Call]:
    return [c for c in collect(s, Call) if is_wgmma_issue(c)]


def _group_of(stmts: list[Stmt], it: PrimExpr | None) -> _Group:
    accs: set[Buffer] = set()
    smem: set[Buffer] = set()
    for s in stmts:
        for c in _issues(s):
            for a in (c.args[0], *(c.args[1:2] if _base(c.op).endswith("_rs") else ())):
                accs |= {ld.buffer for ld in collect(a, BufferLoad)}
        # The descriptors' tiles: every shared element whose address is taken here.
        for c in collect(s, Call):
            if (
                c.op == "address_of"
                and isinstance(c.args[0], BufferLoad)
                and c.args[0].buffer.scope in _SHARED
            ):
                smem.add(c.args[0].buffer)
    return _Group(frozenset(accs), frozenset(smem), it)


def _release_of(s: Stmt) -> AttrStmt | None:
    """The ring release `s` performs (possibly under an `if`), else None."""
    if isinstance(s, AttrStmt) and s.key == RELEASE_ATTR:
        return s
    if isinstance(s, (IfThenElse, SeqStmt, LetStmt)):
        return next((a for a in collect(s, AttrStmt) if a.key == RELEASE_ATTR), None)
    return None


def _has_marker(s: Stmt, key: str) -> bool:
    return any(a.key == key for a in collect(s, AttrStmt))


class _Sync:
    def __init__(self) -> None:
        self.analyzer = Analyzer()
        self.stages = 0
        self.staged: frozenset[Buffer] = frozenset()
        self.it: PrimExpr | None = None
        self.thread_vars: set[Var] = set()
        # Variables with one value across the warpgroup: block indices, scalar parameters, and
        # the variables of loops and lets bound to such values around the statement.
        self.uniform: set[Var] = set()
        self.read_tiles: set[Buffer] = set()
        # Shared buffers ordinary code (stores, cp.async) writes somewhere in the kernel.
        self.rewritten: set[Buffer] = set()

    # -- conflicts -------------------------------------------------------------------------------
    def _touch(self, s: Stmt) -> tuple[set[Buffer], set[Buffer]]:
        """(register buffers read or written by ordinary code, shared buffers written) of `s`."""
        regs: set[Buffer] = set()
        for ld in collect(s, BufferLoad):
            regs.add(ld.buffer)
        for st in collect(s, BufferStore):
            regs.add(st.buffer)
        acc = shared_accesses(s)
        writes = set(acc.writes) | set(acc.async_writes) | set(acc.atomics)
        return regs, writes

    def _conflicts(
        self, g: _Group, regs: set[Buffer], writes: set[Buffer], release: AttrStmt | None
    ) -> bool:
        if g.accs & regs or g.smem & writes:
            return True
        if release is None or not (g.smem & self.staged):
            return False
        if g.it is None or self.stages < 2:
            return True
        d = const_value(self.analyzer.simplify(g.it - release.value))
        return d is None or d % self.stages == 0

    def retire(self, s: Stmt, state: State, out: list[Stmt]) -> State:
        """A wait before `s` for the groups it conflicts with."""
        if not state:
            return state
        regs, writes = self._touch(s)
        release = _release_of(s)
        barrier = _is_barrier(s)
        # A program's own mbarrier arrival (not a ring's release) hands the shared tiles its
        # thread read to whoever waits on the barrier: the groups reading any must retire first.
        arrive = release is None and _arrives(s)
        newest = -1
        for i, g in enumerate(state):
            # Before a barrier, a group must be retired when other threads may write its tiles
            # after it: a warpgroup's wait orders only its own reads (found by the fuzzer).
            if (
                self._conflicts(g, regs, writes, release)
                or (barrier and g.smem & self.rewritten)
                or (arrive and g.smem)
            ):
                newest = i
        if newest < 0:
            return state
        return self.wait(state, len(state) - 1 - newest, out)

    def wait(self, state: State, keep: int, out: list[Stmt]) -> State:
        out.append(_call(f"tsir.wgmma.wgmma_wait<{keep}>"))
        retired = state[: len(state) - keep]
        for buf in sorted({b for g in retired for b in g.accs}, key=lambda b: b.name):
            out.append(_fence_operands(buf))
        return state[len(state) - keep :]

    # -- statements ------------------------------------------------------------------------------
    def block(self, stmts: list[Stmt], state: State) -> tuple[list[Stmt], State]:
        out: list[Stmt] = []
        i = 0
        while i < len(stmts):
            s = stmts[i]
            if _is_batch(s):
                j = i
                while j < len(stmts) and _is_batch(stmts[j]):
                    j += 1
                group = _group_of(stmts[i:j], self.it)
                self.read_tiles |= group.smem
                for buf in sorted(group.accs, key=lambda b: b.name):
                    out.append(_fence_operands(buf))
                out.append(_call("tsir.wgmma.wgmma_fence"))
                out.extend(stmts[i:j])
                out.append(_call("tsir.wgmma.wgmma_commit"))
                state = (*state, group)
                i = j
                continue
            state = self.stmt(s, state, out)
            i += 1
        return out, state

    def nested(self, body: Stmt, state: State) -> tuple[Stmt, State]:
        stmts = list(body.stmts) if isinstance(body, SeqStmt) else [body]
        new, state = self.block(stmts, state)
        return seq(*new), state

    def stmt(self, s: Stmt, state: State, out: list[Stmt]) -> State:
        if isinstance(s, IfThenElse) and not _issues(s) and self.wait_inside(s, state):
            return self.branch(s, state, out)
        if not _issues(s):
            state = self.retire(s, state, out)
            out.append(s)
            return state
        if isinstance(s, (Allocate, DeclBuffer, LetStmt)):
            let = s.var if isinstance(s, LetStmt) and self.is_uniform(s.value) else None
            if let is not None:
                self.uniform.add(let)
            body, state = self.nested(s.body, state)
            if let is not None:
                self.uniform.discard(let)
            out.append(s.replace(body=body))
            return state
        if isinstance(s, AttrStmt):
            return self.attr(s, state, out)
        if isinstance(s, For):
            return self.loop(s, state, out)
        if isinstance(s, IfThenElse):
            return self.branch(s, state, out)
        if isinstance(s, SeqStmt):
            new, state = self.block(list(s.stmts), state)
            out.extend(new)
            return state
        state = self.retire(s, state, out)
        out.append(s)
        return state

    def wait_inside(self, s: IfThenElse, state: State) -> bool:
        """Whether the waits for an `if` that issues no wgmma go inside its branches: its condition
        is the same for the whole warpgroup and a branch starts with a statement that lets more
        groups stay in flight than the whole `if` does (e.g. the softmax of S(j+1) under a
        uniform `if`, which needs S(j+1) retired but not the P(j) V(j) issued after it)."""
        if not state or not self.is_uniform(s.cond):
            return False
        whole = len(self.retire(s, state, []))
        branches = [s.then_case] if s.else_case is None else [s.then_case, s.else_case]
        return any(len(self.retire(_first(b), state, [])) > whole for b in branches)

    def is_uniform(self, e: PrimExpr) -> bool:
        """`e` has one value across the warpgroup: only uniform variables, no loads, no calls
        (a `.sync.aligned` wait must not sit in a branch that its threads take differently)."""
        return set(collect(e, Var)) <= self.uniform and not collect(e, (BufferLoad, Call))

    def attr(self, s: AttrStmt, state: State, out: list[Stmt]) -> State:
        ring = ring_of(s)
        saved = (self.stages, self.staged)
        if ring is not None:
            self.stages = ring[2]
        if s.key == "pipeline_buffers":
            self.staged = self.staged | frozenset(s.value)
        body, state = self.nested(s.body, state)
        self.stages, self.staged = saved
        out.append(s.replace(body=body))
        return state

    def branch(self, s: IfThenElse, state: State, out: list[Stmt]) -> State:
        varies = bool(set(collect(s.cond, Var)) & self.thread_vars)
        if varies:
            # Warpgroups that take different branches (warp specialization): each branch retires
            # everything it issued before it ends.
            state = self.retire(s, state, out) if state else state
            then_case = self.drained(s.then_case, state)
            else_case = None if s.else_case is None else self.drained(s.else_case, state)
            out.append(IfThenElse(s.cond, then_case, else_case))
            return ()
        then_case, st_then = self.nested(s.then_case, state)
        if s.else_case is None:
            else_case, st_else = None, state
        else:
            else_case, st_else = self.nested(s.else_case, state)
        out.append(IfThenElse(s.cond, then_case, else_case))
        return _merge(st_then, st_else)

    def drained(self, body: Stmt, state: State) -> Stmt:
        if isinstance(body, AttrStmt) and body.key == THREAD_RANGE_ATTR:
            # The waits stay inside the range (ThreadSync plans a range's body as a whole).
            return body.replace(body=self.drained(body.body, state))
        new, st = self.nested(body, state)
        if not st:
            return new
        tail: list[Stmt] = []
        self.wait(st, 0, tail)
        return seq(new, *tail)

    def loop(self, s: For, state: State, out: list[Stmt]) -> State:
        k = s.loop_var
        ring_loop = self.stages >= 2 and any(
            a.key == RELEASE_ATTR and a.value is k for a in collect(s.body, AttrStmt)
        )
        after: list[Stmt] = []
        if ring_loop:
            s, after = _defer_release(s)
        saved_it = self.it
        if ring_loop:
            self.it = k
        self.analyzer.bind(k, s.min, s.extent, override=True)
        uniform = self.is_uniform(s.min) and self.is_uniform(s.extent)
        if uniform:
            self.uniform.add(k)
        prev = k - 1

        def shift(st: State) -> State:
            return tuple(
                replace(g, it=self.analyzer.simplify(substitute(g.it, {k: prev})))
                if g.it is not None
                else g
                for g in st
            )

        carried: State = ()
        body = s.body
        out_state: State = ()
        drained = False
        for _ in range(_MAX_ROUNDS):
            entry = _merge(state, shift(carried))
            body, out_state = self.nested(s.body, entry)
            if _same(out_state, carried):
                break
            carried = out_state
        else:
            # The groups in flight grow from one iteration to the next: drain at the end.
            drained = True
            entry = _merge(state, ())
            body, st = self.nested(s.body, entry)
            tail: list[Stmt] = []
            self.wait(st, 0, tail) if st else None
            body = seq(body, *tail)
            out_state = ()
        self.it = saved_it
        if uniform:
            self.uniform.discard(k)
        if not drained:
            last = s.min + s.extent - 1
            out_state = tuple(
                replace(g, it=self.analyzer.simplify(substitute(g.it, {k: last})))
                if g.it is not None
                else g
                for g in out_state
            )
        out.append(s.replace(body=body))
        state = _merge(state, out_state)
        for x in after:
            state = self.stmt(x, state, out)
        return state


def _first(s: Stmt) -> Stmt:
    """The first statement `s` runs (itself when it is not a sequence)."""
    while isinstance(s, SeqStmt) and s.stmts:
        s = s.stmts[0]
    return s


def _fence_operands(buf: Buffer) -> Stmt:
    n = 1
    for d in buf.shape:
        n *= const_value(d) or 1
    addr = Call(
        _HANDLE, "address_of", (BufferLoad(buf, tuple(IntImm(0, int32) for _ in buf.shape)),)
    )
    if buf.dtype.name == "float32":
        return _call(f"tsir.wgmma.wgmma_fence_operands<{n}>", addr)
    # A register-A operand of 16- or 8-bit values: pinned as the 32-bit words that hold them.
    return _call(f"tsir.wgmma.wgmma_fence_operands_u32<{n * buf.dtype.bytes // 4}>", addr)


def _defer_release(loop: For) -> tuple[For, list[Stmt]]:
    """In a ring loop ending `batch; release(k)`: release k - 1 after this iteration's batch (from
    the second iteration on) and the last one after the loop; the producer, which waits for the
    release, moves after it."""
    body = list(loop.body.stmts) if isinstance(loop.body, SeqStmt) else [loop.body]
    if len(body) < 2 or _release_of(body[-1]) is None or not _is_batch(body[-2]):
        return loop, []
    release = body[-1]
    k = loop.loop_var
    producers = [x for x in body[:-1] if _has_marker(x, PRODUCE_ATTR) and not _issues(x)]
    rest = [x for x in body[:-1] if not any(x is p for p in producers)]
    previous = IfThenElse(k > loop.min, substitute(release, {k: k - 1}))
    new_body = seq(*rest, previous, *producers)
    last = substitute(release, {k: loop.min + loop.extent - 1})
    extent = const_value(loop.extent)
    tail: Stmt = last if extent is not None and extent > 0 else IfThenElse(loop.extent > 0, last)
    return loop.replace(body=new_body), [tail]


class _ProxyFences(Mutator):
    """`cp_async_wait; ...; sync_threads` in a pipeline whose tiles wgmma reads: a proxy fence
    right before the barrier."""

    def __init__(self, tiles: set[Buffer]):
        super().__init__()
        self.tiles = tiles
        self.active = 0

    def visit_AttrStmt(self, s: AttrStmt) -> Stmt:
        hit = s.key == "pipeline_buffers" and bool(set(s.value) & self.tiles)
        self.active += hit
        try:
            return self.generic_visit(s)
        finally:
            self.active -= hit

    def visit_SeqStmt(self, s: SeqStmt) -> Stmt:
        stmts = [self.visit(x) for x in s.stmts]
        if not self.active:
            return seq(*stmts)
        out: list[Stmt] = []
        waited = False  # a cp.async wait since the last barrier of this sequence
        for x in stmts:
            if _is_call(x, "sync_threads"):
                if waited:
                    # Right before the barrier: the wgmma retirement this pass places between
                    # the wait and the barrier must not separate them (found by the interpreter).
                    out.append(_call("tsir.mbarrier.fence_proxy_async_shared"))
                waited = False
            out.append(x)
            if _is_call(x, "tsir.async_copy.cp_async_wait"):
                waited = True
        return seq(*out)


def _is_barrier(s: Stmt) -> bool:
    """A block or named barrier (possibly wrapped in markers)."""
    while isinstance(s, AttrStmt):
        s = s.body
    return any(
        _is_call(s, op)
        for op in ("sync_threads", "tsir.sync.named_barrier", "tsir.mbarrier.named_barrier_sync")
    )


def _arrives(s: Stmt) -> bool:
    return any(_base(c.op).startswith("tsir.mbarrier.mbarrier_arrive") for c in collect(s, Call))


def _is_call(s: Stmt, op: str) -> bool:
    return isinstance(s, Evaluate) and isinstance(s.value, Call) and _base(s.value.op) == op


_PER_GEMM = (*_SYNC, "tsir.wgmma.wgmma_fence_operands", "tsir.wgmma.wgmma_fence_operands_u32")


class _StripUnits(Mutator):
    """The per-gemm fence/commit/wait of lowered gemms (tile-op units that issue wgmma)."""

    def visit_AttrStmt(self, s: AttrStmt) -> Stmt:
        if s.key != TILE_OP_ATTR or not _issues(s.body):
            return self.generic_visit(s)
        stmts = list(s.body.stmts) if isinstance(s.body, SeqStmt) else [s.body]
        kept = [x for x in stmts if not any(_is_call(x, op) for op in _PER_GEMM)]
        return s.replace(body=seq(*kept))


class _Kernels(Mutator):
    def __init__(self, scalars: set[Var]):
        super().__init__()
        self.scalars = scalars

    def visit_KernelLaunch(self, k: KernelLaunch) -> Stmt:
        k = k.replace(body=_StripUnits().visit(k.body))
        calls = collect(k.body, Call)
        if not any(is_wgmma_issue(c) for c in calls) or any(_base(c.op) in _SYNC for c in calls):
            return k
        sync = _Sync()
        sync.thread_vars = set(k.thread_vars)
        sync.uniform = set(k.block_vars) | self.scalars
        acc = shared_accesses(k.body)
        sync.rewritten = set(acc.writes) | set(acc.async_writes) | set(acc.atomics)
        for v, n in zip(k.thread_vars, k.threads):
            sync.analyzer.bind(v, IntImm(0, v.dtype), IntImm(n, v.dtype))
        body = sync.drained(k.body, ())
        body = _ProxyFences(sync.read_tiles).visit(body)
        return k.replace(body=body)


class _StripRing(Mutator):
    """The ring's markers have served (WarpSpecialize, the waits above); its barriers remain."""

    def visit_AttrStmt(self, s: AttrStmt) -> Stmt:
        if s.key in (RING_ATTR, PRODUCE_ATTR, RELEASE_ATTR):
            return self.visit(s.body)
        return self.generic_visit(s)

    def visit_SeqStmt(self, s: SeqStmt) -> Stmt:
        return seq(*(self.visit(x) for x in s.stmts))


@register_pass("InjectWgmmaSync")
def InjectWgmmaSync(func: PrimFunc, ctx: PassContext) -> PrimFunc:
    """Place wgmma fences, commits and waits; overlap a ring loop's consecutive batches."""
    scalars = {p for p in func.params if isinstance(p, Var)}
    return _StripRing().visit(_Kernels(scalars).visit(func))
