"""InjectPingPong: the two consumer warpgroups of a warp-specialized loop take turns issuing their
wgmma (`T.Pipelined(..., pingpong=True)`, FlashAttention-3's ping-pong): while one warpgroup's
gemms occupy the tensor cores, the other runs its softmax.

Requires: thread-level IR after ThreadSync (every other barrier of the kernel is in place, so a
turn can be checked against them), with WarpSpecialize's markers (ring.py): PINGPONG_ATTR around
the consumers' code (threads [lo, lo + 256), two warpgroups W0 = [lo, lo + 128) and W1 = [lo +
128, lo + 256), and the first free named barrier id) and PINGPONG_LOOP_ATTR around their loop.
Guarantees, with B0, B1 the first two named barrier ids past every one the kernel uses (and past
the consumers' and the producer's), both counting 256 threads (bar.sync waits; bar.arrive counts
and goes on, PTX ISA "bar, barrier"):

    if W1: bar.arrive B0                          first thing: W0 takes the first turn
    ...                                           the consumers' code, unchanged, except
    for k in [0, n):                              the marked loop:
        ...
        bar.sync B_w                              w: the executing warpgroup
        the turn: the iteration's wgmma issues,   from the first statement holding an issue
        ...                                       (with the wgmma_fence and operand fences just
                                                  before it) to the last (with its commit)
        bar.arrive B_(1-w)
        ...
    ...
    if W0: bar.sync B0                            at the end: consumes W1's last arrival

and the markers are gone. Why it is right. Name W0's bar.syncs on B0 s_0 .. s_n (s_n the last),
W1's arrivals on B0 a_0 .. a_n (a_0 before the loop, a_{g+1} after its turn g), W0's arrivals on
B1 b_0 .. b_{n-1} and W1's bar.syncs on B1 t_0 .. t_{n-1}. Each is one warpgroup, 128 of the 256
threads, so a generation completes with two of them; it must be the right two (a third arrival
before the generation completes, by a warp that already arrived, is what the PTX ISA leaves
undefined). By induction on g, the g-th generation of B0 is {a_g, s_g} and that of B1 {b_g, t_g}:

- s_{g+1} comes after s_g returned in W0's program order, i.e. after generation g of B0;
- a_{g+1} comes after t_g returned (it follows W1's turn g), which needs b_g, which W0 issues
  after s_g returned: generation g of B0 is complete;
- t_{g+1} comes after t_g returned; b_{g+1} after s_{g+1} returned, which needs a_{g+1}, which
  comes after t_g returned: generation g of B1 is complete.

So arrivals never overrun a generation. The turns strictly alternate: W0's turn g runs between s_g
and b_g, W1's between t_g and a_{g+1}; t_g returns only after b_g and s_{g+1} only after a_{g+1},
hence W0 0, W1 0, W0 1, W1 1, ..., never two at once. The barriers end balanced: B0 completes
n + 1 generations and B1 n, with nothing pending when the block ends (for any n >= 0, and across
the tiles of a persistent kernel, whose tile loop the first arrival and the last sync surround: n
is then the iterations of all tiles). No deadlock: W0 waits at s_g for a_g, which W1 issues after
t_{g-1}, which needs b_{g-1}, which W0 issued before s_g; W1 waits at t_g for b_g, issued after
s_g, which needs a_g, issued before t_g. This needs both warpgroups to run the loop equally often
and to meet no barrier of both inside a turn (the other warpgroup waits for this turn's end): the
loop's trip count and every condition and trip count around it must be the same in all consumer
threads, no wgmma issue may sit under a thread-dependent `if` or loop, and no barrier of more
than one warpgroup may fall inside a turn; each is refused with an error naming the loop.
tests/hopper/test_ping_pong.py checks the protocol over every interleaving of a model of it.

A marked loop that issues no wgmma (its gemms took mma.sync) is left as it is, and the report
(TSIR_EXPLAIN=1) says so. A turn that waits for its own gemms' results is applied and reported:
the code between them then runs in turns too; the loop should issue the iteration's gemms back
to back, as FlashAttention-3's S(j+1), P(j) V(j) order does.
"""

from __future__ import annotations

from tsir.dtype import int32
from tsir.errors import SourceLocation, UnsupportedError
from tsir.expr import Call, IntImm, PrimExpr, Select, Var
from tsir.function import PrimFunc
from tsir.stmt import (
    Allocate,
    AttrStmt,
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
from tsir.visitor import Mutator, collect

from .infra import PassContext, register_pass
from .inject_wgmma_sync import is_wgmma_issue
from .ring import PINGPONG_ATTR, PINGPONG_LOOP_ATTR
from .thread_range import used_barrier_ids, varies_across_threads

__all__ = ["InjectPingPong", "PINGPONG_THREADS"]

WARPGROUP = 128
PINGPONG_THREADS = 2 * WARPGROUP
_MAX_BARRIER = 15
_SYNC = "tsir.mbarrier.named_barrier_sync"
_ARRIVE = "tsir.mbarrier.named_barrier_arrive"
_NAMED = ("tsir.sync.named_barrier", _SYNC, _ARRIVE)
# Statements that open a wgmma batch (InjectWgmmaSync): they belong to the turn.
_BATCH_OPENERS = (
    "tsir.wgmma.wgmma_fence",
    "tsir.wgmma.wgmma_fence_operands",
    "tsir.wgmma.wgmma_fence_operands_u32",
)


def _base(op: str) -> str:
    return op.split("<", 1)[0]


def _is_call(s: Stmt, ops: tuple[str, ...]) -> bool:
    return isinstance(s, Evaluate) and isinstance(s.value, Call) and _base(s.value.op) in ops


def _issues(s: Stmt) -> bool:
    return any(is_wgmma_issue(c) for c in collect(s, Call))


def _stmts(s: Stmt) -> list[Stmt]:
    return list(s.stmts) if isinstance(s, SeqStmt) else [s]


def _barrier(op: str, bid: PrimExpr | int, count: int) -> Stmt:
    b = IntImm(bid, int32) if isinstance(bid, int) else bid
    return Evaluate(Call(int32, op, (b, IntImm(count, int32))))


class _Refused(Exception):
    """The marked loop cannot take turns: not applied (reported), unlike an UnsupportedError."""


class _Turns(Mutator):
    """The consumers' code with the marked loop's turns in place (module doc); checks that the
    loop runs equally often in both warpgroups."""

    def __init__(self, tx: Var, lo: int, b0: int, ctx: PassContext):
        super().__init__()
        self.tx = tx
        self.lo = lo
        self.b0 = b0
        self.ctx = ctx
        self.varying: set[Var] = {tx}  # thread-dependent values (the thread index, its lets)
        self.loop: For | None = None
        self.span: SourceLocation | None = None

    def _error(self, what: str, around: Stmt | None = None) -> UnsupportedError:
        """The refusal, naming the marked loop (the one inside `around`, before it is reached)."""
        loop, span = self.loop, self.span
        if around is not None:
            marker = next(a for a in collect(around, AttrStmt) if a.key == PINGPONG_LOOP_ATTR)
            loop = next((x for x in _stmts(marker.body) if isinstance(x, For)), None)
            span = marker.span
        name = loop.loop_var.name if loop is not None else "?"
        return UnsupportedError(
            f"T.Pipelined(pingpong=True) over `{name}`: {what}", loc=span, where="InjectPingPong"
        )

    def _varies(self, *xs: PrimExpr) -> bool:
        return any(varies_across_threads(x, self.varying) for x in xs)

    def _holds_loop(self, s: Stmt) -> bool:
        return any(a.key == PINGPONG_LOOP_ATTR for a in collect(s, AttrStmt))

    # -- around the loop ---------------------------------------------------------------------------
    def visit_LetStmt(self, s: LetStmt) -> Stmt:
        if self._varies(s.value):
            self.varying.add(s.var)
        return self.generic_visit(s)

    def visit_For(self, s: For) -> Stmt:
        if self._holds_loop(s) and self._varies(s.min, s.extent):
            raise self._error(
                f"the loop around it (over `{s.loop_var.name}`) runs a different number of "
                "times in different threads, so the warpgroups would take different numbers of "
                "turns",
                s,
            )
        return self.generic_visit(s)

    def visit_IfThenElse(self, s: IfThenElse) -> Stmt:
        if self._holds_loop(s) and self._varies(s.cond):
            raise self._error(
                f"it sits under `if {s.cond}`, which differs between threads, so the warpgroups "
                "would take different numbers of turns",
                s,
            )
        return self.generic_visit(s)

    def visit_AttrStmt(self, s: AttrStmt) -> Stmt:
        if s.key != PINGPONG_LOOP_ATTR:
            return self.generic_visit(s)
        self.span = s.span
        stmts = _stmts(s.body)
        loops = [x for x in stmts if isinstance(x, For)]
        assert len(loops) == 1, "WarpSpecialize marks one loop (InjectWgmmaSync may add its tail)"
        loop = self.loop = loops[0]
        if self._varies(loop.min, loop.extent):
            raise self._error(
                f"its trip count `{loop.extent}` differs between threads, so the warpgroups "
                "would take different numbers of turns"
            )
        if not _issues(loop.body):
            raise _Refused(
                "the loop issues no wgmma (its gemms run on mma.sync, or it has none), so there "
                "are no tensor-core turns to take"
            )
        body = self.turn(loop.body)
        return seq(*(loop.replace(body=body) if x is loop else x for x in stmts))

    # -- in the loop -------------------------------------------------------------------------------
    def turn(self, body: Stmt) -> Stmt:
        """`body` with bar.sync before its first statement holding a wgmma issue and bar.arrive
        after its last (going into wrappers that hold all of them)."""
        stmts = _stmts(body)
        hits = [i for i, x in enumerate(stmts) if _issues(x)]
        first, last = hits[0], hits[-1]
        one = stmts[first]
        if first == last and isinstance(one, (Allocate, DeclBuffer, LetStmt, AttrStmt)):
            # Every issue is inside this wrapper: the turn goes inside it too.
            if isinstance(one, LetStmt) and self._varies(one.value):
                self.varying.add(one.var)
            inner = one.replace(body=self.turn(one.body))
            return seq(*stmts[:first], inner, *stmts[first + 1 :])
        while first > 0 and _is_call(stmts[first - 1], _BATCH_OPENERS):
            first -= 1
        while last + 1 < len(stmts) and _is_call(stmts[last + 1], ("tsir.wgmma.wgmma_commit",)):
            last += 1
        turn = stmts[first : last + 1]
        self.check_turn(turn)
        w1 = self.tx >= self.lo + WARPGROUP
        b0, b1 = IntImm(self.b0, int32), IntImm(self.b0 + 1, int32)
        sync = _barrier(_SYNC, Select(w1, b1, b0), PINGPONG_THREADS)
        arrive = _barrier(_ARRIVE, Select(w1, b0, b1), PINGPONG_THREADS)
        return seq(*stmts[:first], sync, *turn, arrive, *stmts[last + 1 :])

    def check_turn(self, turn: list[Stmt]) -> None:
        for s in turn:
            for node in collect(s, (For, IfThenElse)):
                if not _issues(node):
                    continue
                if isinstance(node, For) and self._varies(node.min, node.extent):
                    raise self._error(
                        f"a wgmma issue sits in a loop over `{node.loop_var.name}` whose trip "
                        "count differs between threads"
                    )
                if isinstance(node, IfThenElse) and self._varies(node.cond):
                    raise self._error(
                        f"a wgmma issue sits under `if {node.cond}`, which differs between threads"
                    )
            for c in collect(s, Call):
                base = _base(c.op)
                count = c.args[1] if base in _NAMED and len(c.args) > 1 else None
                both = base == "sync_threads" or (
                    count is not None and not (isinstance(count, IntImm) and count.value <= 128)
                )
                if both:
                    raise self._error(
                        f"a barrier of both consumer warpgroups (`{c.op}`) falls inside the "
                        "turn from the iteration's first wgmma to its last, where the other "
                        "warpgroup waits for the turn to end: they would deadlock (keep the "
                        "shared-memory writes that need it out of that stretch)"
                    )
        waits = [
            x for x in turn if _is_call(x, ("tsir.wgmma.wgmma_wait",)) and isinstance(x, Evaluate)
        ]
        if waits:
            assert isinstance(waits[0].value, Call)
            self.ctx.explain(
                "InjectPingPong",
                f"T.Pipelined(pingpong=True) over `{self.loop.loop_var.name if self.loop else 'k'}`"
                f": the turn from the iteration's first wgmma to its last waits for its own "
                f"results (`{waits[0].value.op}`), so the code in between runs in turns as well; "
                "issue the iteration's gemms back to back (FlashAttention-3 issues S(j+1), then "
                "P(j) V(j)) for the softmax to overlap the other warpgroup's gemms",
                self.span,
            )


class _Consumers(Mutator):
    def __init__(self, k: KernelLaunch, ctx: PassContext):
        super().__init__()
        self.k = k
        self.ctx = ctx

    def visit_AttrStmt(self, s: AttrStmt) -> Stmt:
        if s.key != PINGPONG_ATTR:
            return self.generic_visit(s)
        lo, hi, free = (int(x) for x in s.value)
        assert hi - lo == PINGPONG_THREADS, "WarpSpecialize marks two consumer warpgroups"
        tx: Var = self.k.thread_vars[0]
        b0 = max([free, *(i + 1 for i in used_barrier_ids(self.k.body, self.k))])
        if b0 + 1 > _MAX_BARRIER:
            raise UnsupportedError(
                f"T.Pipelined(pingpong=True) needs two named barriers, but ids {b0}.. are past "
                f"the 16 of a block (0..{_MAX_BARRIER}; the kernel uses the ones below)",
                loc=s.span,
                where="InjectPingPong",
            )
        turns = _Turns(tx, lo, b0, self.ctx)
        try:
            body = turns.visit(s.body)
        except _Refused as why:
            name = turns.loop.loop_var.name if turns.loop is not None else "k"
            self.ctx.explain(
                "InjectPingPong",
                f"T.Pipelined(pingpong=True) over `{name}` is not applied: {why}",
                turns.span or s.span,
            )
            return _StripMarkers().visit(s.body)
        first = IfThenElse(tx >= lo + WARPGROUP, _barrier(_ARRIVE, b0, PINGPONG_THREADS))
        last = IfThenElse(tx < lo + WARPGROUP, _barrier(_SYNC, b0, PINGPONG_THREADS))
        return seq(first, body, last)


class _StripMarkers(Mutator):
    def visit_AttrStmt(self, s: AttrStmt) -> Stmt:
        if s.key in (PINGPONG_ATTR, PINGPONG_LOOP_ATTR):
            return self.visit(s.body)
        return self.generic_visit(s)

    def visit_SeqStmt(self, s: SeqStmt) -> Stmt:
        return seq(*(self.visit(x) for x in s.stmts))  # a stripped marker's body may be a SeqStmt


class _Kernels(Mutator):
    def __init__(self, ctx: PassContext):
        super().__init__()
        self.ctx = ctx

    def visit_KernelLaunch(self, k: KernelLaunch) -> Stmt:
        if not any(a.key == PINGPONG_ATTR for a in collect(k.body, AttrStmt)):
            return k
        body = _Consumers(k, self.ctx).visit(k.body)
        return k.replace(body=_StripMarkers().visit(body))


@register_pass("InjectPingPong")
def InjectPingPong(func: PrimFunc, ctx: PassContext) -> PrimFunc:
    """Make the two consumer warpgroups of a T.Pipelined(pingpong=True) loop take turns at their
    wgmma issues, with two named barriers."""
    return _Kernels(ctx).visit(func)
