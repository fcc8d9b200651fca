"""The tile level: the builder's IR (and every stage that still holds tile operators), one block at
a time, by the semantics DESIGN documents.

Buffers are whole per-block arrays (fragments have no layout here). Statements outside `T.Parallel`
run in every thread of the block (the thread index is a lane); a tile operator or a T.Parallel nest
runs once, whole, when any thread reaches it. A T.Parallel nest evaluates its body over the whole
iteration space at once, statement by statement. Global memory is implicitly guarded: loads outside
a global buffer read zero, stores outside it are skipped (LegalizeSafeMemoryAccess makes this
explicit later). cp.async waits, barriers and an mbarrier pipeline's barrier calls are no-ops:
copies are synchronous here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..buffer import Buffer
from ..expr import Add, BufferLoad, Call, Max, Min
from ..stmt import Allocate, AttrStmt, BufferStore, For, ForKind, Stmt, TileOpStmt
from ..structural import structural_equal
from ..visitor import walk
from ..warp_roles import WARP_ROLE_ATTR
from .context import RunContext
from .device_calls import call_device
from .errors import InterpretUnsupportedError, TileSemanticsError
from .evaluator import Evaluator
from .executor import Executor
from .lanes import LaneMap, Mask
from .memory import Memory, Region, View
from .report import fmt_idx
from .tile_ops import TileOps
from .values import np_dtype

__all__ = ["TileExecutor", "run_tile_kernel", "is_tile_level"]

_NOOP_CALLS = ("sync_threads", "sync_warp", "thread_fence")
_NOOP_DEVICE = ("tsir.async_copy.cp_async_commit", "tsir.async_copy.cp_async_wait")


def is_tile_level(body: Stmt) -> bool:
    """Tile-level IR holds tile operators, T.Parallel loops or fragments; LowerTileOp removes "
    "all."""

    for n in walk(body):
        if isinstance(n, TileOpStmt):
            return True
        if isinstance(n, For) and n.kind is ForKind.PARALLEL:
            return True
        if isinstance(n, Allocate) and n.buffer.scope == "local.fragment":
            return True
    return False


class TileExecutor(Executor):
    level_name = "tile-level"

    def __init__(self, ctx: RunContext, views: dict[Buffer, View], env: dict[Any, Any]):
        mem = Memory(ctx, detect=False)
        ev = Evaluator(mem, ctx, self.call)
        ev.views.update(views)
        ev.env.update(env)
        super().__init__(ctx, mem, ev)
        self.in_parallel = False
        self.parallel_size = 0

        self.ops = TileOps(self)
        self.lanes = ctx.lanes
        # Kernels with warp roles (T.ws) sequence their roles with mbarriers: `_Phases` checks
        # that program order is an order those barriers allow (else the tile level has no meaning).
        self.phases: _Phases | None = None

    def allocate(self, b: Buffer) -> View:
        if b.scope in ("global", "symmetric"):
            raise InterpretUnsupportedError(
                f"a {b.scope} buffer `{b.name}` allocated inside a kernel"
            )
        shape = self.shape_of(b)
        if b.scope in ("local", "local.var") and not self.in_parallel:
            # Thread-private registers (T.alloc_var, T.alloc_local): a copy per thread.
            n = self.ctx.lanes.n
            return self.new_region(b, shape, "local", n, np.arange(n))
        if b.scope == "local.var" and self.in_parallel:
            # A scalar variable of a T.Parallel body (an atomic's previous value): one per
            # iteration, as each iteration's thread holds its own.
            n = self.parallel_size
            return self.new_region(b, shape, "local", n, np.arange(n))
        # One array per block: fragments and shared tiles (and temporaries of a T.Parallel body).
        kind = "shared" if b.scope.startswith("shared") else "local"
        return self.new_region(b, shape, kind, 1, None)

    def layout_table(self, b: Buffer, shape: tuple[int, ...]) -> np.ndarray | None:
        return None  # layouts are irrelevant at the tile level

    # -- statements --------------------------------------------------------------------------------
    def other_stmt(self, s: Stmt, mask: Mask) -> None:
        if isinstance(s, TileOpStmt):
            self.ctx.stmt = s
            if self.in_parallel:
                raise InterpretUnsupportedError(
                    f"a tile operator inside T.Parallel: {str(s).splitlines()[0]}"
                )
            self.ops.run(s.op, mask)
            return
        super().other_stmt(s, mask)

    def parallel(self, s: For, mask: Mask) -> None:
        if self.in_parallel:
            raise InterpretUnsupportedError(
                f"a T.Parallel loop nested inside another's body: {str(s).splitlines()[0]}"
            )
        loops = [s]
        while isinstance(loops[-1].body, For) and loops[-1].body.kind is ForKind.PARALLEL:
            loops.append(loops[-1].body)
        mins = [self.ev.uniform_int(x.min, "a T.Parallel bound") for x in loops]
        exts = [self.ev.uniform_int(x.extent, "a T.Parallel extent") for x in loops]
        total = int(np.prod(exts, dtype=np.int64))
        if total <= 0:
            return
        grid = np.indices(exts, dtype=np.int64).reshape(len(exts), total)
        saved_env = self.ev.env
        # Inside the nest the lanes are its iteration points: values that differ per thread have
        # no meaning there (TileLang leaves the thread of an iteration to the layout).
        env = {
            k: v for k, v in saved_env.items() if not (isinstance(v, np.ndarray) and v.shape[0] > 1)
        }

        for x, lo, g in zip(loops, mins, grid):
            env[x.loop_var] = (g + lo).astype(np_dtype(x.loop_var.dtype))
        self.ev.env = env
        self.in_parallel = True
        self.parallel_size = total
        private = self._enter_parallel()
        try:
            self.run(loops[-1].body, Mask.full(total))
        finally:
            self.in_parallel = False
            self.ev.env = saved_env
            self._leave_parallel(private)

    def _enter_parallel(self) -> list[tuple[Buffer, View, View]]:
        """Inside T.Parallel every thread's registers are one array: usable when all threads
        hold the same values (their copies are merged, and written back to every thread after)."""
        out = []
        for buf, view in list(self.ev.views.items()):
            r = view.region
            if r.group_of_lane is None or r.kind != "local":
                continue
            merged = Region(r.name, "local", r.nbytes, 1, None, data=r.data[:1].copy())
            if (r.data != r.data[:1]).any():
                merged.divergent = (
                    f"`{buf.name}` ({buf.scope}) holds different values in different threads, so "
                    f"T.Parallel (whose iterations belong to no particular thread at the tile level) "
                    f"cannot use it"
                )
            inner = View(buf, merged, view.byte_offset, view.shape, view.strides, view.table)
            self.ev.views[buf] = inner
            out.append((buf, view, inner))
        return out

    def _leave_parallel(self, private: list[tuple[Buffer, View, View]]) -> None:
        for buf, view, inner in private:
            if inner.region.divergent is None:
                view.region.data[:] = inner.region.data[0]
            self.ev.views[buf] = view

    def store(
        self, s: BufferStore, view: View, idx: list[np.ndarray], value: np.ndarray, mask: Mask
    ) -> None:
        if (all(i.shape[0] == 1 for i in idx) and value.shape[0] == 1) or (
            view.region.group_of_lane is not None
        ):
            self.mem.store(view, idx, value, mask)
            return
        off, vals = self._targets(view, idx, value, mask)
        typed = view.region.typed(view.npdt)
        base = view.byte_offset // view.itemsize
        order = np.argsort(off, kind="stable")
        so = off[order]
        dup = so[1:] == so[:-1]
        if dup.any():
            red = _reduction(s)
            if red is not None:
                self._reduce_store(s, view, red, mask, idx)
                return
            sv = vals[order]
            differ = dup & ~(
                (sv[1:] == sv[:-1])
                | (np.isnan(sv[1:].astype(np.float64)) & np.isnan(sv[:-1].astype(np.float64)))
            )
            if differ.any():
                k = int(np.flatnonzero(differ)[0])
                raise TileSemanticsError(
                    f"{'iterations of T.Parallel' if self.in_parallel else 'threads'} write "
                    "different values "
                    f"({sv[k]!r} and {sv[k + 1]!r}) to element {int(so[k])} of `{view.name}` in "
                    "one statement; "
                    "its tile-level meaning is ambiguous (write a reduction `x = x + v`, or "
                    "T.atomic_add)\n"
                    f"    {str(s).splitlines()[0]}"
                )
        assert typed is not None
        typed[0, base + off] = vals

    def _targets(
        self, view: View, idx: list[np.ndarray], value: np.ndarray, mask: Mask
    ) -> tuple[np.ndarray, np.ndarray]:
        """(element offsets, values), flat, of a store by the active lanes; elements outside a
        global buffer dropped (implicit guards), outside any other buffer an error."""
        lanes, li = self.mem._lanes_and_idx(idx, mask)
        off, oob = view.offsets(li)
        k = lanes.shape[0]
        vals = value[lanes] if value.shape[0] > 1 else np.broadcast_to(value, (k, *value.shape[1:]))
        if off.ndim < vals.ndim:
            off = off[:, None]
            oob = oob[:, None] if oob is not None else None
        elif vals.ndim < off.ndim:
            vals = vals[:, None]
        shape = np.broadcast_shapes(off.shape, vals.shape)
        off = np.broadcast_to(off, shape).reshape(-1)
        vals = np.broadcast_to(vals, shape).reshape(-1).astype(view.npdt)
        if oob is not None:
            if not (self.ctx.global_guard and view.scope in ("global", "symmetric")):
                self.mem._oob(view, li, np.broadcast_to(oob, shape), lanes, "write")
            keep = ~np.broadcast_to(oob, shape).reshape(-1)
            off, vals = off[keep], vals[keep]
        return off, vals

    def _reduce_store(
        self, s: BufferStore, view: View, red: tuple[Any, Any], mask: Mask, idx: list[np.ndarray]
    ) -> None:
        """`x[i] = x[i] + v` (or max / min) where iterations share x[i]: every v is combined."""
        kind, other = red
        v = self.ev.eval(other, mask)
        off, vals = self._targets(view, idx, v, mask)
        typed = view.region.typed(view.npdt)
        assert typed is not None
        base = view.byte_offset // view.itemsize
        uniq, inv = np.unique(off, return_inverse=True)
        wide = np.float64 if view.npdt.kind in "fV" or view.buffer.dtype.is_float else np.int64
        acc = typed[0, base + uniq].astype(wide)
        w = vals.astype(wide)
        if kind == "add":
            np.add.at(acc, inv, w)
        elif kind == "max":
            np.fmax.at(acc, inv, w) if wide is np.float64 else np.maximum.at(acc, inv, w)
        else:
            np.fmin.at(acc, inv, w) if wide is np.float64 else np.minimum.at(acc, inv, w)
        typed[0, base + uniq] = acc.astype(view.npdt)

    # -- calls -------------------------------------------------------------------------------------
    def call(self, ev: Evaluator, e: Call, mask: Mask) -> Any:
        op = e.op
        if self.phases is not None and op.startswith("tsir.mbarrier.mbarrier_"):
            self.phases.call(e, mask)
            return np.zeros(1, dtype=np.int32)
        if op in _NOOP_CALLS or op.split("<")[0] in _NOOP_DEVICE or op.startswith("tsir.mbarrier."):
            return np.zeros(1, dtype=np.int32)
        if op == "atomic_add":
            ptr = ev.eval(e.args[0], mask)
            value = ev.eval(e.args[1], mask)
            return self.mem.atomic_add(ptr, value, mask)

        return call_device(self, e, mask)  # pyright: ignore[reportArgumentType]  # narrowed by a check above that the checker cannot follow


def _reduction(s: BufferStore) -> tuple[str, Any] | None:
    """(kind, the other operand) when `s` is `b[i] = b[i] + v`, `max(b[i], v)` or `min(b[i], v)`."""
    v = s.value
    kinds = {Add: "add", Max: "max", Min: "min"}
    kind = kinds.get(type(v))
    if kind is None:
        return None
    for mine, other in ((v.a, v.b), (v.b, v.a)):  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
        if (
            isinstance(mine, BufferLoad)
            and mine.buffer is s.buffer
            and len(mine.indices) == len(s.indices)
            and all(structural_equal(a, b) for a, b in zip(mine.indices, s.indices))
        ):
            return kind, other
    return None


def run_tile_kernel(
    ctx_factory: Any,
    body: Stmt,
    views: dict[Buffer, View],
    env: dict[Any, Any],
    blocks: list[tuple[int, ...]],
    threads: tuple[int, ...],
    block_vars: tuple[Any, ...],
    thread_vars: tuple[Any, ...],
) -> None:
    """Run a tile-level kernel body block by block."""
    roles = has_warp_roles(body)
    for blk in blocks:
        ctx: RunContext = ctx_factory(LaneMap([blk], threads))
        ex = TileExecutor(ctx, views, env)
        if roles:
            ex.phases = _Phases(ex)
        for v, val in zip(block_vars, blk):
            ex.ev.env[v] = np.array([val], dtype=np_dtype(v.dtype))
        for v, val in zip(thread_vars, ctx.lanes.thread_var_values()):
            ex.ev.env[v] = val.astype(np_dtype(v.dtype))
        try:
            ex.run(body, Mask.full(ctx.lanes.n))
        except TileSemanticsError as err:
            raise TileSemanticsError(f"{err.message} (block {fmt_idx(blk)})") from None


_PHASE_CALLS = (
    "mbarrier_init",
    "mbarrier_arrive",
    "mbarrier_arrive_expect_tx",
    "mbarrier_wait",
    "mbarrier_try_wait",
)


def has_warp_roles(body: Stmt) -> bool:
    """Does a kernel body hold warp roles (T.ws)?"""
    return any(isinstance(n, AttrStmt) and n.key == WARP_ROLE_ATTR for n in walk(body))


class _Phases:
    """The phases of a warp-role kernel's mbarriers at the tile level, where statements run in
    program order, each whole, and a T.tma_copy lands at once (so transaction bytes are moot):
    arrivals (one per calling thread) complete phases, and a wait must find its phase complete.
    One that does not is a wait for work that program order puts later (a producer role's loop
    written before its consumer's): only the roles running at once give such a program its
    meaning, which the thread-level stages (from LowerTileOp on) model and this level does not."""

    def __init__(self, ex: TileExecutor):
        self.ex = ex
        self.count: dict[tuple[str, int], int] = {}
        self.pending: dict[tuple[str, int], int] = {}
        self.phase: dict[tuple[str, int], int] = {}

    def _key(self, e: Call) -> tuple[str, int]:
        loads = [x for x in walk(e.args[0]) if isinstance(x, BufferLoad)]
        if len(loads) != 1 or len(loads[0].indices) != 1:
            raise InterpretUnsupportedError(f"an mbarrier call the tile level cannot place: {e}")
        bar = loads[0]
        return bar.buffer.name, self.ex.ev.uniform_int(bar.indices[0], "an mbarrier index")

    def call(self, e: Call, mask: Mask) -> None:
        fn = e.op.split("<")[0].removeprefix("tsir.mbarrier.")
        if fn not in _PHASE_CALLS:
            return
        key = self._key(e)
        if fn == "mbarrier_init":
            n = self.ex.ev.uniform_int(e.args[1], "an mbarrier count")
            self.count[key] = self.pending[key] = n
            self.phase[key] = 0
            return
        if key not in self.count:
            raise TileSemanticsError(
                f"{fn} of mbarrier {key[0]}[{key[1]}] before its initialisation"
            )
        if fn in ("mbarrier_arrive", "mbarrier_arrive_expect_tx"):
            k = int(mask.idx.size)
            while k > 0:
                take = min(k, self.pending[key])
                self.pending[key] -= take
                k -= take
                if self.pending[key] == 0:
                    self.phase[key] += 1
                    self.pending[key] = self.count[key]
            return
        if fn in ("mbarrier_wait", "mbarrier_try_wait"):
            parity = int(self.ex.ev.eval(e.args[1], mask).reshape(-1)[0]) & 1
            if self.phase[key] & 1 == parity:
                raise InterpretUnsupportedError(
                    f"T.barrier_wait on {key[0]}[{key[1]}] for parity {parity} comes, in program "
                    f"order, before the arrivals that complete that phase (phase {self.phase[key]}, "
                    f"{self.pending[key]} of {self.count[key]} arrivals pending): the warp roles "
                    "run at once to give this program its meaning, which the tile level (one "
                    "statement after another) does not model; interpret a thread-level stage "
                    "(from LowerTileOp on) instead"
                )
