"""The thread level: every thread of every block, one lane each, with registers, shared memory,
barriers, warp operations, atomics and cp.async groups.

All blocks of a sweep run together: registers are one row per lane, shared memory one row per
block. Barriers check that every thread of a block reaches them (else DivergentBarrierError) and
advance the block's epoch, which is what orders shared-memory accesses for the race detector.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..buffer import Buffer
from ..expr import Call
from ..stmt import Stmt, TileOpStmt
from .context import RunContext
from .device_calls import call_device
from .errors import (
    AsyncCopyHazardError,
    DeadlockError,
    DivergentBarrierError,
    DivergentWarpError,
    InterpretUnsupportedError,
)
from .evaluator import Evaluator
from .executor import Executor
from .hazards import SharedShadow
from .hopper_units import make_hopper_state
from .lanes import LaneMap, Mask
from .memory import Memory, Pointer, View
from .report import fmt_idx
from .strands import Strands, needs_strands

__all__ = ["ThreadExecutor", "run_thread_kernel"]


class ThreadExecutor(Executor):
    level_name = "thread-level"

    def __init__(self, ctx: RunContext, views: dict[Buffer, View], env: dict[Any, Any]):
        mem = Memory(ctx, detect=True)
        ev = Evaluator(mem, ctx, self.call)
        ev.views.update(views)
        ev.env.update(env)
        super().__init__(ctx, mem, ev)
        self.lanes: LaneMap = ctx.lanes
        self.async_copies = AsyncCopies(self)
        self.extra: Any = None  # the multi-rank runtime, when there is one
        self.thread_vars: tuple[Any, ...] = ()
        # Kernels with Hopper calls (strands.py): the block's Hopper state and its warpgroups as
        # strands; shared allocations are shared by the strands (buffer -> view, users).
        self.hopper: Any = None
        self.strands: Any = None
        self.shared_allocs: dict[Buffer, list[Any]] = {}

    # -- allocation --------------------------------------------------------------------------------
    def allocate(self, b: Buffer) -> View:
        shape = self.shape_of(b)
        n = self.lanes.n
        if b.scope in ("local", "local.var"):
            view = self.new_region(b, shape, "local", n, np.arange(n))
            if self.ctx.check:
                view.region.init = np.zeros(view.region.data.shape, dtype=bool)
                if self.hopper is not None:
                    view.region.wfence = np.full(view.region.data.shape, -1, dtype=np.int64)
            return view
        if b.scope in ("shared", "shared.dyn"):
            held = self.shared_allocs.get(b)
            if held is not None:
                held[1] += 1
                return held[0]
            view = self.new_region(
                b, shape, "shared", len(self.lanes.blocks), self.lanes.block_of_lane
            )
            if self.ctx.check:
                view.region.shadow = SharedShadow(
                    view.region.groups, view.region.row, b.name, self.hopper is not None
                )
            if self.hopper is not None:
                self.hopper.space.add(view.region)
                self.shared_allocs[b] = [view, 1]
            return view
        raise InterpretUnsupportedError(
            f"buffer `{b.name}` of scope {b.scope} allocated in thread-level IR (fragments should "
            "have "
            f"become registers in LowerTileOp)"
        )

    def release(self, view: View) -> None:
        held = self.shared_allocs.get(view.buffer)
        if held is None or held[0] is not view:
            return
        held[1] -= 1
        if held[1] == 0:
            del self.shared_allocs[view.buffer]
            self.hopper.space.remove(view.region)

    def other_stmt(self, s: Stmt, mask: Mask) -> None:
        if isinstance(s, TileOpStmt):
            raise InterpretUnsupportedError(
                f"a tile operator in thread-level IR: {str(s).splitlines()[0]}"
            )
        super().other_stmt(s, mask)

    # -- calls -------------------------------------------------------------------------------------
    def call(self, ev: Evaluator, e: Call, mask: Mask) -> Any:
        op = e.op
        if op == "sync_threads":
            self.block_barrier(mask)
            return np.zeros(1, dtype=np.int32)
        if op == "sync_warp":
            self.warp_barrier(mask)
            return np.zeros(1, dtype=np.int32)
        if op == "thread_fence":
            return np.zeros(1, dtype=np.int32)
        if op == "atomic_add":
            ptr = ev.eval(e.args[0], mask)
            value = ev.eval(e.args[1], mask)
            return self.mem.atomic_add(ptr, value, mask)

        return call_device(self, e, mask)

    # -- synchronisation ---------------------------------------------------------------------------
    def park(self, cond: Any, describe: Any) -> None:
        """Wait until `cond()` holds, letting the block's other warpgroups run (strands.py)."""
        if self.strands is not None:
            self.strands.park(cond, describe)
        elif not cond():
            raise DeadlockError(f"a wait that nothing can ever satisfy:\n  {describe()}")

    def yield_to_waiters(self) -> None:
        if self.strands is not None:
            self.strands.yield_to_waiters()

    def yield_any(self) -> None:
        if self.strands is not None:
            self.strands.yield_to_waiters(waiters_only=False)

    def block_label(self) -> str:
        return fmt_idx(self.lanes.blocks[0]) if self.lanes.blocks else "()"

    def block_barrier(self, mask: Mask, what: str = "__syncthreads()", sync: bool = True) -> None:
        lm = self.lanes
        nb = len(lm.blocks)
        mine = self.strands.cur.mask if self.strands is not None else None
        if mask.all:
            reached = np.ones(nb, dtype=bool)
        elif mine is None or not np.array_equal(mask.arr, mine.arr):
            cnt = np.bincount(lm.block_of_lane[mask.idx], minlength=nb)
            expected = lm.per_block if mine is None else mine.idx.size
            reached = cnt > 0
            partial = reached & (cnt < expected)
            if partial.any() and self.ctx.check:
                b = int(np.flatnonzero(partial)[0])
                lanes = np.arange(b * lm.per_block, (b + 1) * lm.per_block)
                if mine is not None:
                    lanes = lanes[mine.arr[lanes]]
                on = lanes[mask.arr[lanes]]
                off = lanes[~mask.arr[lanes]]
                raise DivergentBarrierError(
                    f"{what} reached by {on.size} of the {lm.per_block} threads of block "
                    f"{fmt_idx(lm.blocks[b])}{self.ctx.where()}; the others never reach it, so "
                    "the block "
                    "would end with threads stuck at the barrier (or a later barrier would pair "
                    "with it)",
                    accesses=[
                        self.ctx.access("barrier reached", on),
                        self.ctx.access("barrier not reached", off),
                    ],
                )
        else:
            reached = np.ones(nb, dtype=bool)
        if self.strands is not None:
            self.strands.block_barrier(mask, what, sync)
        elif sync:
            self.ctx.join_blocks(reached)

    def warp_barrier(self, mask: Mask) -> None:
        active = self.full_warps(mask, "__syncwarp()")
        self.ctx.warp_epoch[active] += 1

    def shfl_xor(self, value: np.ndarray, lane_mask: np.ndarray, mask: Mask) -> np.ndarray:
        """`__shfl_xor_sync(0xffffffff, value, m)`: each lane gets the value of lane (laneid ^ "
        "m)."""
        self.full_warps(mask, "__shfl_xor_sync")
        lm = self.lanes
        n = lm.n
        t = lm.thread_of_lane
        m = np.broadcast_to(lane_mask.astype(np.int64), (n,))
        if ((m < 0) | (m > 31)).any():
            raise InterpretUnsupportedError("shfl_xor lane mask outside [0, 32)")
        partner_t = t ^ m
        # Only the lanes that execute the shuffle (whole warps, checked above) read a partner.
        if (partner_t[mask.idx] >= lm.per_block).any():
            raise DivergentWarpError(
                f"__shfl_xor_sync reads a lane past the end of the block ({lm.per_block} threads "
                "are not "
                f"whole warps){self.ctx.where()}",
                accesses=[self.ctx.access("shuffle", mask.idx[:1])],
            )
        if value.shape[0] == 1:
            return value
        partner = np.arange(n) - t + partner_t
        # Lanes that do not execute the shuffle keep their own value (their result is unused).
        partner = np.where(mask.arr & (partner_t < lm.per_block), partner, np.arange(n))
        return value[partner]


class AsyncCopies:
    """cp.async: 16-byte copies that land in shared memory when a `cp_async_wait<N>` retires their
    commit group, per thread (PTX: cp.async.commit_group / cp.async.wait_group)."""

    def __init__(self, ex: ThreadExecutor):
        self.ex = ex
        self.open = np.zeros(ex.lanes.n, dtype=np.int64)  # groups committed so far, per lane
        self.pending: list[dict[str, Any]] = []

    def issue(self, dst: Pointer, src: Pointer, valid: np.ndarray, mask: Mask) -> None:
        mem, ctx = self.ex.mem, self.ex.ctx
        lanes, g, e = mem.ptr_lanes(dst, mask)
        if dst.view.region.kind != "shared":
            raise InterpretUnsupportedError(
                f"cp_async_16 into `{dst.view.name}` ({dst.view.scope}): the destination must be "
                "shared memory"
            )
        count = 16 // dst.view.itemsize
        mem.check_span(dst, count, lanes, "cp.async destination")
        dbyte = dst.view.byte_offset + e * dst.view.itemsize
        mem._alignment(dst.view, dbyte, lanes, 16, "cp.async destination")
        ok = np.broadcast_to(valid, (mask.n,))[lanes].astype(bool)
        data = np.zeros((lanes.size, 16), dtype=np.uint8)
        if ok.any():
            sub = Mask(np.zeros(mask.n, dtype=bool))
            sub.arr[lanes[ok]] = True
            sub = Mask(sub.arr)
            _, _, se = mem.ptr_lanes(src, sub)
            mem._alignment(
                src.view,
                src.view.byte_offset + se * src.view.itemsize,
                lanes[ok],
                16,
                "cp.async source",
            )
            vals = mem.read_elems(src, 16 // src.view.itemsize, sub, "cp.async source read")
            data[ok] = np.ascontiguousarray(vals).view(np.uint8).reshape(-1, 16)
        region = dst.view.region
        fi = (g * region.row + dbyte)[:, None] + np.arange(16)
        if region.shadow is not None and ctx.check:
            region.shadow.issue_async(
                ctx, fi.reshape(-1), np.repeat(lanes, 16), dst.view.name, dst.view.byte_offset
            )
        self.pending.append(
            dict(
                lanes=lanes,
                group=self.open[lanes].copy(),
                region=region,
                fi=fi,
                data=data,
                stmt=ctx.stmt_id(),
                name=dst.view.name,
                base=dst.view.byte_offset,
            )
        )

    def commit(self, mask: Mask) -> None:
        self.open[mask.idx] += 1

    def wait(self, n: int, mask: Mask) -> None:
        """Retire, in each active lane, every committed group but the `n` most recent."""
        limit = self.open - n
        keep: list[dict[str, Any]] = []
        for rec in self.pending:
            lanes = rec["lanes"]
            done = mask.arr[lanes] & (rec["group"] < limit[lanes])
            if done.any():
                self._land(rec, done)
                if not done.all():
                    rest = ~done
                    keep.append(
                        {
                            **rec,
                            "lanes": lanes[rest],
                            "group": rec["group"][rest],
                            "fi": rec["fi"][rest],
                            "data": rec["data"][rest],
                        }
                    )
            else:
                keep.append(rec)
        self.pending = keep

    def _land(self, rec: dict[str, Any], sel: np.ndarray) -> None:
        region = rec["region"]
        fi = rec["fi"][sel].reshape(-1)
        region.data.reshape(-1)[fi] = rec["data"][sel].reshape(-1)
        ctx = self.ex.ctx
        if region.shadow is not None and ctx.check:
            region.shadow.land(fi)
            region.shadow.write(
                ctx,
                fi,
                np.repeat(rec["lanes"][sel], 16),
                rec["name"],
                rec["base"],
                stmt_id=rec["stmt"],
                check_pending=False,
            )

    def finish(self) -> None:
        """At kernel end: copies no wait retired are a hazard (their data may never be seen)."""
        if not self.pending:
            return
        ctx = self.ex.ctx
        if ctx.check:
            rec = self.pending[0]
            raise AsyncCopyHazardError(
                f"the kernel ends with cp.async copies into `{rec['name']}` that no cp_async_wait "
                f"retired{ctx.where()}",
                accesses=[
                    ctx.access("cp.async issued", rec["lanes"][:4], ctx.stmt_of(rec["stmt"]))
                ],
                buffer=rec["name"],
            )
        for rec in self.pending:
            region = rec["region"]
            region.data.reshape(-1)[rec["fi"].reshape(-1)] = rec["data"].reshape(-1)
        self.pending = []


def run_thread_kernel(
    ctx: RunContext,
    body: Stmt,
    views: dict[Buffer, View],
    env: dict[Any, Any],
    block_vars: tuple[Any, ...],
    thread_vars: tuple[Any, ...],
) -> ThreadExecutor:
    """Run one kernel body on the lanes of `ctx` (the blocks of one sweep)."""
    ex = ThreadExecutor(ctx, views, env)
    ex.thread_vars = thread_vars
    for v, val in zip(block_vars, ctx.lanes.block_var_values()):
        ex.ev.env[v] = val.astype(np.int32) if v.dtype.name == "int32" else val.astype(np.int64)
    for v, val in zip(thread_vars, ctx.lanes.thread_var_values()):
        ex.ev.env[v] = val.astype(np.int32) if v.dtype.name == "int32" else val.astype(np.int64)

    if needs_strands(body):
        if len(ctx.lanes.blocks) != 1:
            raise InterpretUnsupportedError("kernels with Hopper calls run one block per sweep")
        ex.hopper = make_hopper_state(ex)
        ex.strands = Strands(ex, body)
        ex.strands.run()
        ex.hopper.finish()
    else:
        ex.run(body, Mask.full(ctx.lanes.n))
    ex.async_copies.finish()
    return ex
