"""WarpSpecialize: a kernel around an mbarrier ring becomes a producer warpgroup that issues the
ring's bulk copies and the original threads, now consumers, that do everything else.

Requires: thread-level IR (after LowerTileOp and Simplify, before InjectWgmmaSync and ThreadSync)
holding one mbarrier ring (ring.py) at the kernel's top level (not inside a loop or an `if`).
Guarantees, for a kernel of T threads (1-D, whole warpgroups) on a target with `setmaxnreg`
(sm_90a), unless the ring was built with warp specialization off:

    ring init (thread 0); barrier                              all T + 128 threads
    if tx < 128:                                               the producer warpgroup
        setmaxnreg.dec<P>
        if tx == 0: for j in [0, n): produce(j)                the ring's copies, free-running
    else:                                                      the T consumer threads [128, T+128)
        setmaxnreg.inc<C>
        the rest of the kernel, with tx -> tx - 128, without the ring's produce steps

The producer's loop runs the loop's produce step `produce(k + ahead)` from k = -ahead (the
prologue's steps and the loop's); a ring whose loop has no produce step left (Simplify proved it
dead: the prologue fills every stage the loop uses) gets the prologue's steps as they stand, except
in a persistent kernel, whose tile loop continues the ring through the loop's step (refused).
The kernel gains 128 threads (`T.Kernel(threads=256)` runs with 384). The consumers' block
barriers become a named barrier over them (ThreadSync plans theirs in that range); both branches
are marked as thread ranges ([0, 128) and [128, 128 + T)), which is also how the interpreter knows
which warpgroups meet at a tile op's implicit barrier before ThreadSync. A consumer that calls a
header function reading threadIdx itself (mma.sync's gemm_ss) cannot move: no split. Registers: P =
40, C = (65536 - 128 P) / (128 W) for W consumer warpgroups, rounded down to 8 and at most 240;
a kernel whose consumers' register arrays would not fit C (accumulators plus 40) stays unsplit,
with the reason in the report, as does one whose shape does not qualify, and one whose consumers
use a ring tile before the ring (after it too, persistent), which the free-running producer would
fill under them.

`T.Kernel(persistent=True)` (an AttrStmt "persistent") makes the split kernel persistent: a grid of
G = min(blocks, PERSISTENT_CTAS) blocks, each running the grid's blocks t = pid, pid + G, ... with
(bx, by) from t in panels of `T.use_swizzle`'s width (8 by default) walked row by row, so that the
blocks running at once share A rows and B columns in L2. Both warpgroups loop over the same tiles;
the ring's position continues from tile to tile (iteration i * n + k of n k-blocks per tile), so
the producer runs into the next tile while the consumers finish the epilogue of this one. A
persistent kernel that cannot be split runs as a plain grid, which the report says.
"""

from __future__ import annotations

from typing import Any

from tsir.arith import Analyzer
from tsir.dtype import int32
from tsir.errors import SourceLocation
from tsir.expr import (
    BufferLoad,
    Call,
    FloorDiv,
    FloorMod,
    IntImm,
    Min,
    PrimExpr,
    Var,
    const_value,
)
from tsir.function import PrimFunc
from tsir.grid_swizzle import SWIZZLE_KEYS, panel_coords, swizzle_of
from tsir.intrin import device_function
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
    LetStmt,
    SeqStmt,
    Stmt,
    seq,
)
from tsir.visitor import Mutator, collect, substitute
from tsir.warp_roles import WARP_ROLE_ATTR

from .infra import PassContext, register_pass
from .ring import (
    PINGPONG_ATTR,
    PINGPONG_LOOP_ATTR,
    PRODUCE_ATTR,
    RING_ATTR,
    ring_of,
    ring_pingpong,
)
from .thread_range import THREAD_RANGE_ATTR, NamedBarriers, ThreadRange

__all__ = ["PERSISTENT_CTAS", "PRODUCER_REGISTERS", "WarpSpecialize", "consumer_registers"]

WARPGROUP = 128
PERSISTENT_ATTR = "persistent"  # T.Kernel(persistent=True)
# Blocks of a persistent kernel: the SMs of an H100 SXM / H200 (a part with fewer runs the rest
# in a second round, still correct).
PERSISTENT_CTAS = 132
PRODUCER_REGISTERS = 40
_MAX_CONSUMER_REGISTERS = 240
_OVERHEAD = 40  # registers a consumer needs beside its register arrays (addresses, loop state)


def consumer_registers(consumer_warpgroups: int) -> int:
    per = (65536 - WARPGROUP * PRODUCER_REGISTERS) // (WARPGROUP * consumer_warpgroups)
    return min(_MAX_CONSUMER_REGISTERS, per // 8 * 8)


def _call(op: str, *args: PrimExpr) -> Stmt:
    return Evaluate(Call(int32, op, args))


class _Refused(Exception):
    pass


class _FindRing(Mutator):
    """Replaces the ring with its consumer side and records its parts; refuses a ring under a
    loop or an `if`, or a second one. A ring that asks for ping-pong (T.Pipelined(pingpong=True))
    gets its consumer loop marked when there are two consumer warpgroups (`consumer_groups`),
    else the reason it is not applied in `pingpong_refused`."""

    def __init__(self, consumer_groups: int) -> None:
        super().__init__()
        self.depth = 0
        self.ring: AttrStmt | None = None
        self.init: list[Stmt] = []
        self.produce: AttrStmt | None = None  # the loop's produce step, when it has one
        self.prologue: list[Stmt] = []  # the prologue's produce steps, when the loop has none
        self.produced: list[Stmt] = []  # the produce steps the producer takes over
        self.loop: For | None = None
        self.consumer_groups = consumer_groups
        self.pingpong = False  # the consumer loop is marked for InjectPingPong
        self.pingpong_refused: str | None = None

    def visit_For(self, s: For) -> Stmt:
        self.depth += 1
        try:
            return self.generic_visit(s)
        finally:
            self.depth -= 1

    def visit_IfThenElse(self, s: IfThenElse) -> Stmt:
        self.depth += 1
        try:
            return self.generic_visit(s)
        finally:
            self.depth -= 1

    def visit_AttrStmt(self, s: AttrStmt) -> Stmt:
        if s.key != RING_ATTR:
            return self.generic_visit(s)
        if self.ring is not None:
            raise _Refused("the kernel has more than one pipelined ring")
        if self.depth:
            raise _Refused("the pipelined loop sits inside another loop or an `if`")
        ring = ring_of(s)
        assert ring is not None
        if not s.value[3]:
            raise _Refused(
                "warp specialization is turned off (T.Pipelined(..., warp_specialize=False))"
            )
        self.ring = s
        stmts = list(s.body.stmts) if isinstance(s.body, SeqStmt) else [s.body]
        loops = [x for x in stmts if isinstance(x, For)]
        if len(loops) != 1 or stmts[-1] is not loops[0]:
            raise _Refused("the ring's loop is not its last statement")
        loop = loops[0]
        rest = [x for x in stmts[:-1] if not _is_produce(x)]
        self.init = rest  # the barriers' initialisation and the barrier after it
        body = list(loop.body.stmts) if isinstance(loop.body, SeqStmt) else [loop.body]
        produces = [x for x in body if _is_produce(x)]
        if len(produces) > 1:
            raise _Refused("the ring's loop has more than one produce step")
        if produces:
            (marker,) = [a for a in collect(produces[0], AttrStmt) if a.key == PRODUCE_ATTR]
            self.produce = marker
            self.produced = [marker]
        else:
            # Simplify proved the loop's produce step dead (its guard `k + ahead < n` false for
            # every k): the prologue's steps, guards and all, are every stage the ring fills.
            self.prologue = [x for x in stmts[:-1] if _is_produce(x)]
            self.produced = list(self.prologue)
        self.loop = loop
        consumer_loop: Stmt = loop.replace(body=seq(*(x for x in body if not _is_produce(x))))
        if ring_pingpong(s):
            if self.consumer_groups == 2:
                self.pingpong = True
                consumer_loop = AttrStmt(PINGPONG_LOOP_ATTR, 2, consumer_loop, span=s.span)
            else:
                self.pingpong_refused = (
                    f"ping-pong needs two consumer warpgroups to take turns, the kernel has "
                    f"{self.consumer_groups} ({128 * self.consumer_groups} threads)"
                )
        return s.replace(body=consumer_loop)


def _around_ring(s: Stmt) -> tuple[list[Stmt], list[Stmt]] | None:
    """The statements that run before and after the ring (in `s`, where it sits at the top level
    under sequences and wrappers), or None when `s` does not hold it."""
    if isinstance(s, AttrStmt) and s.key == RING_ATTR:
        return [], []
    if isinstance(s, SeqStmt):
        for i, x in enumerate(s.stmts):
            hit = _around_ring(x)
            if hit is not None:
                return list(s.stmts[:i]) + hit[0], hit[1] + list(s.stmts[i + 1 :])
        return None
    if isinstance(s, (Allocate, DeclBuffer, AttrStmt, LetStmt)):
        return _around_ring(s.body)
    return None


def _check_ring_buffers(consumer: Stmt, find: _FindRing, persistent: bool) -> None:
    """The producer fills the ring from the kernel's start (and, persistent, into the next tile
    while the consumers finish this one): refuse when the consumers touch a buffer the ring's
    copies write (or write one they read) outside the ring's loop, where no ring barrier orders
    the two (a staging tile reused by a loop before the pipelined one, say)."""
    assert find.ring is not None
    ring = ring_of(find.ring)
    assert ring is not None
    bars = {ring[0], ring[1]}
    used = {x.buffer for p in find.produced for x in collect(p, BufferLoad) if x.buffer not in bars}
    around = _around_ring(consumer)
    assert around is not None
    before, after = around
    outside = before + after if persistent else before
    where = "outside the pipelined loop" if persistent else "before the pipelined loop"
    for stmt in outside:
        for node in collect(stmt, (BufferLoad, BufferStore)):
            buf = node.buffer
            if buf in used and (buf.scope.startswith("shared") or isinstance(node, BufferStore)):
                raise _Refused(
                    f"`{buf.name}`, which the ring's copies use, is also accessed {where}: the "
                    f"producer warpgroup would fill it while the consumers still use it"
                )


def _is_produce(s: Stmt) -> bool:
    return any(a.key == PRODUCE_ATTR for a in collect(s, AttrStmt))


def _wrappers(body: Stmt) -> tuple[list[Stmt], Stmt]:
    """The allocations (and block-uniform attributes) around the kernel's statements, outermost
    first, and what they wrap: both warpgroups need them."""
    chain: list[Stmt] = []
    while isinstance(body, (Allocate, DeclBuffer)) or (
        isinstance(body, AttrStmt) and body.key not in (RING_ATTR, "pipeline_buffers")
    ):
        chain.append(body)
        body = body.body
    return chain, body


def _rewrap(chain: list[Stmt], inner: Stmt) -> Stmt:
    for w in reversed(chain):
        inner = w.replace(body=inner)
    return inner


def _register_arrays(s: Stmt) -> int:
    """32-bit registers of the per-thread arrays allocated in `s`."""
    n = 0
    for a in collect(s, Allocate):
        if a.buffer.scope in ("local", "local.var"):
            size = 1
            for d in a.buffer.shape:
                size *= const_value(d) or 1
            n += -(-size * a.buffer.dtype.bytes // 4)
    return n


def _specialize(k: KernelLaunch, ctx: PassContext) -> KernelLaunch:
    if not ctx.target.has_wgmma:
        raise _Refused(f"{ctx.target} has no setmaxnreg (sm_90a)")
    if len(k.threads) != 1:
        raise _Refused("the kernel's threads are not one-dimensional")
    threads = k.threads[0]
    if threads % WARPGROUP or threads + WARPGROUP > 1024:
        raise _Refused(f"{threads} threads are not whole warpgroups, or one more would pass 1024")
    chain, inner = _wrappers(k.body)
    find = _FindRing(threads // WARPGROUP)
    consumer = find.visit(inner)
    if find.ring is None:
        raise _Refused("no pipelined ring")
    if any(isinstance(w, LetStmt) for w in chain):
        raise _Refused("a value computed before the ring would be needed by both warpgroups")
    assert find.loop is not None
    persistent = next(
        (w for w in chain if isinstance(w, AttrStmt) and w.key == PERSISTENT_ATTR), None
    )
    if find.produce is None and persistent is not None:
        raise _Refused(
            "the ring's loop has no produce step (the prologue fills every stage it uses), and a "
            "persistent kernel continues the ring from tile to tile through that step"
        )
    _check_ring_buffers(consumer, find, persistent is not None)
    fixed = next(
        (
            c.op
            for c in collect(consumer, Call)
            if (fn := device_function(c.op)) is not None and fn.thread_index
        ),
        None,
    )
    if fixed is not None:
        raise _Refused(
            f"`{fixed.split('<')[0]}` computes its warp from the hardware thread index, so its "
            f"threads cannot move to the consumer warpgroups"
        )
    groups = threads // WARPGROUP
    regs = consumer_registers(groups)
    need = _register_arrays(consumer) + _OVERHEAD
    if need > regs:
        raise _Refused(
            f"the consumers' register arrays and addresses need about {need} registers per thread, "
            f"more than the {regs} that setmaxnreg leaves each of {groups} consumer warpgroup(s)"
        )
    tx: Var = k.thread_vars[0]
    # The producer: the ring's produce step for every iteration, free-running ahead of the
    # consumers (the ring's barriers bound how far).
    producer_loop = _producer_loop(find)
    producer = seq(
        _call(f"tsir.mbarrier.setmaxnreg_dec<{PRODUCER_REGISTERS}>"),
        IfThenElse(tx == 0, producer_loop),
    )
    # The consumers: everything else, on threads [128, 128 + T), synchronizing among themselves.
    used = {
        int(c.args[0].value)
        for c in collect(consumer, Call)
        if c.op == "tsir.sync.named_barrier" and isinstance(c.args[0], IntImm)
    }
    rng = ThreadRange(WARPGROUP, WARPGROUP + threads, max(used, default=0) + 1)
    if rng.barrier + 1 > 15:
        raise _Refused("no named barrier is left for the consumers")
    shifted = substitute(consumer, {tx: tx - WARPGROUP})
    shifted = NamedBarriers(rng, "the consumer warpgroups").visit(shifted)
    if find.pingpong_refused is not None:
        ctx.explain("WarpSpecialize", _pingpong_refusal(find), _span(find))
    consumers = AttrStmt(
        THREAD_RANGE_ATTR,
        (rng.lo, rng.hi, rng.barrier),
        seq(_call(f"tsir.mbarrier.setmaxnreg_inc<{regs}>"), _pingpong_branch(find, rng, shifted)),
    )
    if persistent is not None:
        assert isinstance(producer_loop, For)
        return _persist(k, ctx, chain, find, producer_loop, shifted, rng, regs, threads)
    body = seq(*find.init, IfThenElse(tx < WARPGROUP, _producer_range(producer, rng), consumers))
    return k.replace(threads=(threads + WARPGROUP,), body=_rewrap(chain, body))


def _producer_loop(find: _FindRing) -> Stmt:
    """Every produce step of the ring in order: the loop's step for iterations
    `-ahead .. n - ahead - 1` (the prologue's and the loop's), or, when the loop has none, the
    prologue's steps as they stand."""
    loop, produce = find.loop, find.produce
    assert loop is not None
    if produce is None:
        return seq(*find.prologue)
    ahead = Analyzer().simplify(produce.value - loop.loop_var)
    j = Var(loop.loop_var.name + "_p", loop.loop_var.dtype)
    return For(
        j, loop.min - ahead, loop.extent, ForKind.SERIAL, substitute(produce, {loop.loop_var: j})
    )


def _pingpong_branch(find: _FindRing, rng: ThreadRange, body: Stmt) -> Stmt:
    """The consumers' code, marked for InjectPingPong when their loop takes turns: the threads
    [lo, hi) of the two consumer warpgroups and the first named barrier id that nothing uses
    (the consumers' and the producer's come before it)."""
    if not find.pingpong:
        return body
    return AttrStmt(PINGPONG_ATTR, (rng.lo, rng.hi, rng.barrier + 2), body, span=_span(find))


def _span(find: _FindRing) -> SourceLocation | None:
    return find.ring.span if find.ring is not None else None


def _pingpong_refusal(find: _FindRing) -> str:
    assert find.loop is not None
    return (
        f"T.Pipelined(pingpong=True) over `{find.loop.loop_var.name}` is not applied: "
        f"{find.pingpong_refused}"
    )


def _producer_range(producer: Stmt, consumers: ThreadRange) -> Stmt:
    """The producer's branch as the thread range [0, 128) (its own barrier id, which nothing
    needs: its copies are ordered by the ring): the code is known to run there alone."""
    return AttrStmt(THREAD_RANGE_ATTR, (0, WARPGROUP, consumers.barrier + 1), producer)


def _persist(
    k: KernelLaunch,
    ctx: PassContext,
    chain: list[Stmt],
    find: _FindRing,
    producer_loop: For,
    consumer: Stmt,
    rng: ThreadRange,
    regs: int,
    threads: int,
) -> KernelLaunch:
    """The split kernel as min(tiles, PERSISTENT_CTAS) blocks, each looping over the grid's blocks
    t = pid, pid + G, ... in panels (module doc); the ring continues from tile to tile."""
    if not 1 <= len(k.grid) <= 2:
        raise _Refused("a persistent kernel has a 1-D or 2-D grid")
    assert find.loop is not None and find.ring is not None
    ring = ring_of(find.ring)
    assert ring is not None
    stages = ring[2]
    tx: Var = k.thread_vars[0]
    gx = k.grid[0]
    gy = k.grid[1] if len(k.grid) > 1 else IntImm(1, int32)
    panel, col = swizzle_of(chain) or (8, False)
    chain = [
        w
        for w in chain
        if not (isinstance(w, AttrStmt) and w.key in (*SWIZZLE_KEYS, PERSISTENT_ATTR))
    ]
    tiles = gx * gy
    ctas = Analyzer().simplify(Min(tiles, IntImm(PERSISTENT_CTAS, int32)))
    pid = Var("pid", int32)
    n = find.loop.extent

    def tile_loop(body: Stmt, loop_var: Var, block_vars: tuple[Var, ...], name: str) -> Stmt:
        i = Var(name, int32)
        t = pid + i * ctas
        # T.use_swizzle's panels (row order, 8 block columns, by default): the blocks running
        # together share a few rows of A and columns of B in L2.
        values = panel_coords(t, gx, gy, panel, col)
        inner = _RingShift(loop_var, i * n, stages).visit(body)
        for v, value in reversed(list(zip(block_vars, values))):
            inner = LetStmt(v, value, inner)
        trips = (tiles - pid + ctas - 1) // ctas
        return For(i, IntImm(0, int32), trips, ForKind.SERIAL, inner)

    own = tuple(Var(f"{v.name}_p", v.dtype) for v in k.block_vars)
    producer_body = substitute(producer_loop, dict(zip(k.block_vars, own)))
    producer = seq(
        _call(f"tsir.mbarrier.setmaxnreg_dec<{PRODUCER_REGISTERS}>"),
        IfThenElse(tx == 0, tile_loop(producer_body, producer_loop.loop_var, own, "tile_p")),
    )
    consumers = AttrStmt(
        THREAD_RANGE_ATTR,
        (rng.lo, rng.hi, rng.barrier),
        seq(
            _call(f"tsir.mbarrier.setmaxnreg_inc<{regs}>"),
            # Around the tile loop: the turns continue from tile to tile (inject_ping_pong.py).
            _pingpong_branch(
                find, rng, tile_loop(consumer, find.loop.loop_var, k.block_vars, "tile")
            ),
        ),
    )
    body = seq(*find.init, IfThenElse(tx < WARPGROUP, _producer_range(producer, rng), consumers))
    return k.replace(
        grid=(ctas,), block_vars=(pid,), threads=(threads + WARPGROUP,), body=_rewrap(chain, body)
    )


class _RingShift(Mutator):
    """The ring position of the loop over `var` continues from `base`: `var` becomes `var + base`
    where the ring's stage (`% stages`) and round (`// stages`) are computed, nowhere else (the
    loop's own uses, the tile's coordinates, stay)."""

    def __init__(self, var: Var, base: PrimExpr, stages: int):
        super().__init__()
        self.var = var
        self.base = base
        self.stages = stages

    def _ring(self, e: Any) -> bool:
        return (
            isinstance(e.b, IntImm)
            and e.b.value == self.stages
            and any(v is self.var for v in collect(e.a, Var))
        )

    def visit_FloorMod(self, e: FloorMod) -> PrimExpr:
        if self._ring(e):
            return e.replace(a=substitute(e.a, {self.var: self.var + self.base}))
        return self.generic_visit(e)

    def visit_FloorDiv(self, e: FloorDiv) -> PrimExpr:
        if self._ring(e):
            return e.replace(a=substitute(e.a, {self.var: self.var + self.base}))
        return self.generic_visit(e)


class _Kernels(Mutator):
    def __init__(self, ctx: PassContext):
        super().__init__()
        self.ctx = ctx

    def visit_KernelLaunch(self, k: KernelLaunch) -> Stmt:
        attrs = collect(k.body, AttrStmt)
        rings = [a for a in attrs if a.key == RING_ATTR]
        persistent = any(a.key == PERSISTENT_ATTR for a in attrs)
        role = next((a for a in attrs if a.key == WARP_ROLE_ATTR), None)
        if role is not None:
            # The program specializes its warps itself (T.ws): splitting it again would give its
            # roles' threads other work.
            plain = "; T.Kernel(persistent=True) runs as a plain grid" if persistent else ""
            self.ctx.explain(
                "WarpSpecialize",
                f"kernel `{k.name}` is not warp-specialized by tsir: the program has its own warp "
                f"roles (T.ws){plain}",
                role.span,
            )
            return k
        plain = "; T.Kernel(persistent=True) runs as a plain grid" if persistent else ""
        if not rings:
            if persistent:
                self.ctx.explain(
                    "WarpSpecialize",
                    f"kernel `{k.name}`: T.Kernel(persistent=True) runs as a plain grid: it has no "
                    f"TMA pipeline (mbarrier ring) to specialize",
                    k.span,
                )
            return k
        try:
            return _specialize(k, self.ctx)
        except _Refused as why:
            self.ctx.explain(
                "WarpSpecialize",
                f"kernel `{k.name}` is not warp-specialized: {why}{plain}",
                rings[0].span,
            )
            for ring in rings:
                if ring_pingpong(ring):
                    self.ctx.explain(
                        "WarpSpecialize",
                        "T.Pipelined(pingpong=True) is not applied: ping-pong needs the "
                        "producer warpgroup of warp specialization (see the report above)",
                        ring.span,
                    )
            return k


@register_pass("WarpSpecialize")
def WarpSpecialize(func: PrimFunc, ctx: PassContext) -> PrimFunc:
    """Split a kernel around its mbarrier ring into a producer warpgroup and consumers."""
    return _Kernels(ctx).visit(func)
