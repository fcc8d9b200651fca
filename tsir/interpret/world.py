"""Several ranks in one process: tasks (a rank's host program, a tile-level block) cooperatively
scheduled, one at a time, each running until it waits for something another task must do.

A task is a Python thread that runs only while it holds the baton; `wait_until` hands the baton
round-robin to the next task and re-checks its condition when the baton comes back. When every
unfinished task has re-checked its condition with no task making progress in between, nothing can
ever change again: a DeadlockError names every waiting task (a wait on a dead rank, a barrier some
block never reaches, a flag nobody sets). Execution is sequentially consistent: every store is
visible to every rank at once (memory-order bugs are not modelled), and deterministic.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from .errors import DeadlockError

__all__ = ["World", "Task"]


class _Abort(BaseException):
    """Unwinds a task's thread when the run stops (another task failed)."""


class Task:
    def __init__(self, world: World, fn: Callable[[], None], name: str):
        self.world = world
        self.fn = fn
        self.name = name
        self.baton = threading.Event()
        self.done = False
        self.waiting: Callable[[], str] | None = None  # describes what it waits for
        self.thread = threading.Thread(
            target=self._main, name=f"tsir-interpret {name}", daemon=True
        )

    def _main(self) -> None:
        self.baton.wait()
        w = self.world
        try:
            if not w.aborting:
                self.fn()
        except _Abort:
            pass
        except BaseException as e:  # noqa: BLE001
            w.fail(e)
        finally:
            self.done = True
            w.progress()
            w.pass_baton(self)


class World:
    """The ranks of a run, their parameter regions, and the scheduler."""

    def __init__(self, ranks: int, dead: set[int]):
        self.ranks = ranks
        self.dead = dead
        self.tasks: list[Task] = []
        self.current: Task | None = None
        self.aborting = False
        self.error: BaseException | None = None
        self._stalls = 0
        self._all_done = threading.Event()
        self.regions: list[dict[int, Any]] = [{} for _ in range(ranks)]
        # barrier_all / sync_all: how many times each rank arrived.
        self.barrier_arrivals = [0] * ranks

    # -- tasks -------------------------------------------------------------------------------------
    def spawn(self, fn: Callable[[], None], name: str) -> Task:
        t = Task(self, fn, name)
        self.tasks.append(t)
        t.thread.start()
        self.progress()
        return t

    def run(self) -> None:
        """Run every spawned task to the end (from the caller's thread); raise the first error."""
        if not self.tasks:
            return
        self.current = self.tasks[0]
        self.tasks[0].baton.set()
        self._all_done.wait()
        for t in self.tasks:
            t.thread.join()
        if self.error is not None:
            raise self.error

    def pass_baton(self, me: Task) -> None:
        """Give the baton to the next unfinished task after `me` (round-robin)."""
        live = [t for t in self.tasks if not t.done]
        if not live:
            self._all_done.set()
            return
        order = self.tasks[self.tasks.index(me) + 1 :] + self.tasks[: self.tasks.index(me) + 1]
        nxt = next(t for t in order if not t.done)
        self.current = nxt
        nxt.baton.set()

    def progress(self) -> None:
        self._stalls = 0

    def fail(self, e: BaseException) -> None:
        if self.error is None:
            self.error = e
        self.aborting = True

    def current_task(self) -> Task:
        assert self.current is not None
        return self.current

    # -- waiting -----------------------------------------------------------------------------------
    def wait_until(self, check: Callable[[], bool], describe: Callable[[], str]) -> None:
        """Return once `check()` holds, letting the other tasks run meanwhile."""
        if check():
            return
        me = self.current_task()
        me.waiting = describe
        # Getting here took work that may unblock others: their next failed checks count afresh.
        self.progress()
        try:
            while True:
                self._stalls += 1
                live = sum(1 for t in self.tasks if not t.done)
                if self._stalls > live:
                    raise self.deadlock()
                if live > 1:
                    me.baton.clear()
                    self.pass_baton(me)
                    me.baton.wait()
                    if self.aborting:
                        raise _Abort()
                if check():
                    self.progress()
                    return
        finally:
            me.waiting = None

    def deadlock(self) -> DeadlockError:
        lines = [f"  {t.waiting()}" for t in self.tasks if not t.done and t.waiting is not None]
        dead = (
            f" Rank(s) {sorted(self.dead)} are dead (declared with dead_ranks=)."
            if self.dead
            else ""
        )
        return DeadlockError(
            "every rank waits and none can make progress: the waits below can never be satisfied "
            "(on a GPU they would spin until their timeout traps, or forever)."
            + dead
            + "\n"
            + "\n".join(lines)
        )
