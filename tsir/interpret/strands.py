"""Strands: the warpgroups of a block, scheduled one at a time, so that one can wait for another.

Hopper kernels make warps wait for each other through objects (an mbarrier phase, a named barrier,
registers another warpgroup gives back). The thread level runs a block's lanes in lockstep, which
cannot express "these lanes wait while those go on". For kernels that use such objects (see
`needs_strands`), each warpgroup of the block runs the kernel body as its own strand: lockstep
inside it (masks for divergence, as everywhere at the thread level), one strand at a time between
them, each until it parks on a wait that does not hold. The scheduler then hands the baton to the
next strand in round-robin order that is ready or whose wait now holds. A strand is a Python
thread that runs only while it holds the baton, so the interpreter's state needs no locks; each
strand keeps its own variable bindings, buffer views and layouts, swapped in when it resumes.

When the strand that parks finds no strand that can run, nothing can change any more: a
DeadlockError names every wait (the barrier, the parity or count it waits for, the threads).
After a release (an mbarrier arrival) the releasing strand yields to the strands it unblocked, so
a waiter runs as early as the hardware could run it: a stage released before its last reader is
done is refilled while still in use, and reported.

Consequences of the granularity: a warp cannot wait for another warp of its own warpgroup that is
behind it in program order (that would be reported as a deadlock); give such roles their own
warpgroups. Kernels with strands run one block per sweep.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..expr import Call
from ..stmt import AttrStmt
from ..visitor import walk
from ..warp_roles import WARP_ROLE_ATTR
from .errors import DeadlockError, DivergentBarrierError
from .lanes import Mask
from .report import describe_stmt

if TYPE_CHECKING:
    from .thread import ThreadExecutor

__all__ = ["STRAND_PREFIXES", "Strand", "Strands", "needs_strands"]

# Calls whose semantics need strands (waits between warps, or Hopper state that lives per block).
STRAND_PREFIXES = ("tsir.mbarrier.", "tsir.tma.", "tsir.wgmma.", "tsir.sync.named_barrier")
STRAND_OPS = ("tma_descriptor",)

_needs: dict[int, tuple[Any, bool]] = {}


def needs_strands(body: Any) -> bool:
    """Does a kernel body call mbarrier / TMA / wgmma functions or named barriers?"""
    hit = _needs.get(id(body))
    if hit is not None and hit[0] is body:
        return hit[1]
    found = any(
        isinstance(n, Call) and (n.op.startswith(STRAND_PREFIXES) or n.op in STRAND_OPS)
        for n in walk(body)
    )
    if len(_needs) > 512:
        _needs.clear()
    _needs[id(body)] = (body, found)
    return found


_roles: dict[int, tuple[Any, bool]] = {}


def _has_roles(body: Any) -> bool:
    """Does a kernel body hold warp roles (T.ws)? (Cached per body, as `needs_strands`: each
    block of a kernel asks.)"""
    hit = _roles.get(id(body))
    if hit is not None and hit[0] is body:
        return hit[1]
    found = any(isinstance(n, AttrStmt) and n.key == WARP_ROLE_ATTR for n in walk(body))
    if len(_roles) > 512:
        _roles.clear()
    _roles[id(body)] = (body, found)
    return found


class _Abort(BaseException):
    """Unwinds a strand's thread when the run stops (another strand failed)."""


class Strand:
    def __init__(self, index: int, mask: Mask, name: str):
        self.index = index
        self.mask = mask
        self.name = name
        self.event = threading.Event()
        self.state = "ready"  # ready | running | parked | done
        self.cond: Callable[[], bool] | None = None
        self.describe: Callable[[], str] | None = None
        self.thread: threading.Thread | None = None
        self.saved: tuple[Any, ...] = ()
        # The thread range this strand is running in, where barriers are implicit ([lo, hi)).
        self.implicit_range: tuple[int, int] | None = None


class Strands:
    """The strands of one block and the baton between them."""

    def __init__(self, ex: ThreadExecutor, body: Any):
        self.ex = ex
        self.body = body
        lm = ex.lanes
        groups = -(-lm.per_block // 128)
        self.strands: list[Strand] = []
        for k in range(groups):
            arr = (lm.thread_of_lane // 128) == k
            hi = min(lm.per_block, 128 * (k + 1)) - 1
            name = f"warpgroup {k} (threads {128 * k}..{hi})"
            self.strands.append(Strand(k, Mask(arr, bool(arr.all())), name))
        self.cur = self.strands[0]
        self.aborting = False
        self.error: BaseException | None = None
        # __syncthreads() across strands: strand index -> (statement, lanes) of its arrival.
        self.bar_gen = 0
        self.bar_arrived: dict[int, tuple[Any, np.ndarray]] = {}
        # Before ThreadSync (RunContext.implicit_sync): the end of each tile op's code is a
        # barrier among the strands of the thread range it runs in (Strand.implicit_range).
        self.implicit: dict[Any, dict[str, Any]] = {}
        # A kernel with warp roles (T.ws): an op of the whole block also waits, at its start, for
        # the roles' work before it (every statement completes in all threads before the next).
        self.roles = _has_roles(body)
        state = (dict(ex.ev.env), dict(ex.ev.views), dict(ex.layouts), ex.ctx.stmt)
        for s in self.strands:
            s.saved = (dict(state[0]), dict(state[1]), dict(state[2]), state[3])

    # -- driver ----------------------------------------------------------------------------------
    def run(self) -> None:
        main = self.strands[0]
        for s in self.strands[1:]:
            s.thread = threading.Thread(
                target=self._child, args=(s,), name=f"tsir-interpret {s.name}", daemon=True
            )
            s.thread.start()
        try:
            main.state = "running"
            self._restore(main)
            self.ex.run(self.body, main.mask)
            self._finished(main)
            self.park(lambda: all(s.state == "done" for s in self.strands[1:]), None)
            main.state = "done"
        except _Abort:
            err = self.error
            assert err is not None
            self._stop_all(err)
            raise err from None
        except BaseException as e:
            self._stop_all(e)
            raise

    def _child(self, s: Strand) -> None:
        s.event.wait()
        if self.aborting:
            return
        try:
            with np.errstate(all="ignore"):
                self._restore(s)
                self.ex.run(self.body, s.mask)
                self._finished(s)
                s.state = "done"
                nxt = self._pick(s, waiters_only=False)
                if nxt is None and any(x.state != "done" for x in self.strands):
                    raise self._deadlock(None)
                if nxt is not None:
                    self._wake(nxt)
        except _Abort:
            return
        except BaseException as e:  # noqa: BLE001 -- handed to the main strand, which raises it
            if self.error is None:
                self.error = e
            self.aborting = True
            main = self.strands[0]
            main.event.set()

    def _stop_all(self, e: BaseException) -> None:
        """Unwind every other strand's thread, one at a time, then return (main's thread)."""
        if self.error is None:
            self.error = e
        self.aborting = True
        for s in self.strands[1:]:
            if s.thread is not None and s.thread.is_alive():
                s.event.set()
                s.thread.join()

    # -- the baton -------------------------------------------------------------------------------
    def _save(self, s: Strand) -> None:
        ex = self.ex
        s.saved = (ex.ev.env, ex.ev.views, ex.layouts, ex.ctx.stmt)

    def _restore(self, s: Strand) -> None:
        ex = self.ex
        ex.ev.env, ex.ev.views, ex.layouts, ex.ctx.stmt = s.saved
        self.cur = s

    def _pick(self, me: Strand, waiters_only: bool) -> Strand | None:
        """The next strand after `me` that can run: ready (unless `waiters_only`), or parked on a
        wait that now holds."""
        n = len(self.strands)
        for k in range(1, n + 1):
            s = self.strands[(me.index + k) % n]
            if s is me:
                continue
            if s.state == "ready" and not waiters_only:
                return s
            if s.state == "parked" and s.cond is not None and s.cond():
                return s
        return None

    def _wake(self, s: Strand) -> None:
        s.state = "running"
        s.cond = s.describe = None
        s.event.set()

    def _handoff(self, me: Strand, nxt: Strand) -> None:
        self._save(me)
        me.event.clear()
        self._wake(nxt)
        me.event.wait()
        if self.aborting:
            raise _Abort()
        self._restore(me)

    def park(self, cond: Callable[[], bool], describe: Callable[[], str] | None) -> None:
        """Return once `cond()` holds, running the other strands meanwhile."""
        if cond():
            return
        me = self.cur
        me.state = "parked"
        me.cond, me.describe = cond, describe
        nxt = self._pick(me, waiters_only=False)
        if nxt is None:
            if cond():
                me.state = "running"
                return
            raise self._deadlock(me)
        self._handoff(me, nxt)

    def yield_to_waiters(self, waiters_only: bool = True) -> None:
        """After a release: let the strands whose waits now hold (or, with `waiters_only` false,
        any strand that can run) run before this one goes on."""
        me = self.cur
        nxt = self._pick(me, waiters_only=waiters_only)
        if nxt is None:
            return
        me.state = "ready"
        self._handoff(me, nxt)

    def _deadlock(self, me: Strand | None) -> DeadlockError:
        lines = []
        for s in self.strands:
            if s.state == "parked" and s.describe is not None:
                lines.append(f"  {s.name}:\n    {s.describe()}")
            elif s.state == "done" or (s.index == 0 and s.state == "parked"):
                lines.append(f"  {s.name}: has finished the kernel")
        return DeadlockError(
            f"every thread of block {self.ex.block_label()} waits and none can go on: the waits "
            "below can never be satisfied (on a GPU the block would hang, or trap at the "
            "mbarrier timeout)\n" + "\n".join(lines)
        )

    # -- __syncthreads() across strands ------------------------------------------------------------
    def block_barrier(self, mask: Mask, what: str, sync: bool) -> None:
        me = self.cur
        stmt = self.ex.ctx.stmt
        self.bar_arrived[me.index] = (stmt, mask.idx)
        gen = self.bar_gen
        if len(self.bar_arrived) == len(self.strands):
            self._complete_barrier(what, sync)
            return
        done = [s for s in self.strands if s.state == "done"]
        if done:
            raise self._divergent(what, done[0])

        def describe() -> str:
            return f"waits at {what}: {describe_stmt(stmt)}"

        self.park(lambda: self.bar_gen > gen, describe)

    def implicit_barrier(self, stmt: Any, before: bool = False) -> None:
        """The end of tile op `stmt` in a stage whose barriers are implicit: wait until every
        strand of the current thread range has finished it too (a strand that ended the kernel,
        or waits elsewhere for this one, does not hold the others back). With `before`, its
        start: every strand has finished what came before it (warp roles' work, say)."""
        rng = self.cur.implicit_range
        lo, hi = rng if rng is not None else (0, 1 << 30)
        members = {s.index for s in self.strands if 128 * s.index < hi and 128 * (s.index + 1) > lo}
        key = ("before", id(stmt)) if before else id(stmt)
        entry = self.implicit.setdefault(key, {"gen": 0, "arrived": set()})
        entry["arrived"].add(self.cur.index)
        gen = entry["gen"]

        def released() -> bool:
            if entry["gen"] > gen:
                return True
            waiting = {s.index for s in self.strands if s.index in members and s.state == "done"}
            if entry["arrived"] | waiting >= members:
                entry["arrived"] = set()
                entry["gen"] += 1
                return True
            return False

        if released():
            return

        def describe() -> str:
            return f"waits for the other warpgroups at the end of: {describe_stmt(stmt)}"

        self.park(released, describe)

    def _complete_barrier(self, what: str, sync: bool) -> None:
        stmts = {id(st): st for st, _ in self.bar_arrived.values()}
        if len(stmts) > 1:
            a, b = list(stmts.values())[:2]
            lanes = [lanes for _, lanes in self.bar_arrived.values()]
            raise DivergentBarrierError(
                f"the warpgroups of block {self.ex.block_label()} meet at different {what} "
                "statements (a barrier inside a thread-dependent branch)",
                accesses=[
                    self.ex.ctx.access("barrier reached", lanes[0][:1], a),
                    self.ex.ctx.access("barrier reached", lanes[1][:1], b),
                ],
            )
        self.bar_arrived.clear()
        self.bar_gen += 1
        if sync:
            self.ex.ctx.join_blocks(np.ones(1, dtype=bool))

    def _divergent(self, what: str, done: Strand) -> DivergentBarrierError:
        st, lanes = next(iter(self.bar_arrived.values()))
        return DivergentBarrierError(
            f"{what} in block {self.ex.block_label()} is reached by some warpgroups, but "
            f"{done.name} ended the kernel without reaching it",
            accesses=[self.ex.ctx.access("barrier reached", lanes[:1], st)],
        )

    def _finished(self, s: Strand) -> None:
        if self.bar_arrived and s.index not in self.bar_arrived:
            raise self._divergent("__syncthreads()", s)
