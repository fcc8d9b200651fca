"""`tsir.interpret`: bind the arguments, run the host program, launch each kernel at its level."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

import numpy as np

from ..buffer import Buffer
from ..expr import IntImm, Var
from ..function import DeviceKernel, Module, PrimFunc
from ..stmt import (
    Allocate,
    AttrStmt,
    CpEngineCopy,
    Evaluate,
    For,
    IfThenElse,
    KernelCall,
    KernelLaunch,
    LetStmt,
    SeqStmt,
    Stmt,
)
from ..visitor import walk
from .context import RunContext
from .errors import ArgumentError, InterpretUnsupportedError
from .evaluator import Evaluator
from .lanes import LaneMap, Mask
from .memory import Memory, Region, View
from .report import OriginIndex, fmt_idx
from .strands import needs_strands
from .thread import run_thread_kernel
from .tile import is_tile_level, run_tile_kernel
from .tma import make_tensor_map
from .values import const_array, np_dtype

__all__ = ["LANES_PER_SWEEP"]

# Blocks run together while their lanes fit this budget (memory per lane: registers + shadows).
LANES_PER_SWEEP = 8192


class Program:
    """One run of a function: its bound arguments and its host program."""

    def __init__(
        self,
        func: Any,
        *,
        grid: Iterable[Any] | None,
        check: bool,
        stages: Any,
        implicit_guards: bool | None,
        implicit_sync: bool = False,
        rank: int | None = None,
        runtime: Any = None,
    ):
        if isinstance(func, Module):
            self.host, self.kernels = func.host, {k.name: k for k in func.kernels}
        elif isinstance(func, PrimFunc):
            self.host, self.kernels = func, {}
        else:
            raise ArgumentError(
                f"tsir.interpret takes a PrimFunc or a Module, got {type(func).__name__}"
            )
        self.grid = (
            None
            if grid is None
            else [tuple(g) if isinstance(g, (tuple, list)) else (int(g),) for g in grid]
        )
        self.check = check
        self.implicit_guards = implicit_guards
        self.implicit_sync = implicit_sync
        self.rank = rank
        self.runtime = runtime  # the multi-rank runtime (phase 2), else None
        if stages is not None and not isinstance(stages, OriginIndex):
            stages = OriginIndex(getattr(stages, "stages", stages))
        self.origin = stages.origin if stages is not None else None
        self.views: dict[Buffer, View] = {}
        self.env: dict[Any, Any] = {}
        self._writeback: list[tuple[np.ndarray, np.ndarray]] = []
        hctx = RunContext(LaneMap([()], ()), check=False, global_guard=True, rank=rank)
        hctx.runtime = runtime
        self.hev = Evaluator(Memory(hctx, detect=False), hctx, _host_call)

    # -- arguments ---------------------------------------------------------------------------------
    def bind(self, args: tuple[Any, ...], regions: dict[Buffer, Region] | None = None) -> None:
        params = self.host.params
        if len(args) != len(params):
            names = ", ".join(p.name for p in params)
            raise ArgumentError(
                f"`{self.host.name}` takes {len(params)} arguments ({names}), got {len(args)}"
            )
        for p, a in zip(params, args):
            if isinstance(p, Var):
                self.env[p] = self._scalar(p, a)
        for p, a in zip(params, args):
            if isinstance(p, Buffer):
                self._bind_dims(p, a)
        for p, a in zip(params, args):
            if isinstance(p, Buffer):
                self.views[p] = self._view(p, a, regions.get(p) if regions else None)
        self.hev.env.update(self.env)
        self.hev.views.update(self.views)

    def _scalar(self, p: Var, a: Any) -> np.ndarray:
        if isinstance(a, np.ndarray) and a.size == 1:
            a = a.reshape(-1)[0].item()
        if isinstance(a, (bool, np.bool_)) and not p.dtype.is_bool:
            raise ArgumentError(f"scalar `{p.name}` ({p.dtype}) got a bool")
        if not isinstance(a, (int, float, bool, np.integer, np.floating, np.bool_)):
            raise ArgumentError(
                f"scalar `{p.name}` ({p.dtype}) needs a Python number, got {type(a).__name__}"
            )
        if (
            not p.dtype.is_float
            and isinstance(a, (float, np.floating))
            and not float(a).is_integer()
        ):
            raise ArgumentError(f"scalar `{p.name}` is {p.dtype}, got the float {a}")
        return const_array(a if p.dtype.is_float else int(a), p.dtype).copy()

    def _bind_dims(self, p: Buffer, a: Any) -> None:
        if not isinstance(a, np.ndarray):
            raise ArgumentError(f"`{p.name}` needs a numpy array, got {type(a).__name__}")
        if a.ndim != len(p.shape):
            raise ArgumentError(
                f"`{p.name}` has {len(p.shape)} dimensions, the array has shape {a.shape}"
            )
        for d, (dim, n) in enumerate(zip(p.shape, a.shape)):
            if isinstance(dim, Var):
                have = self.env.get(dim)
                if have is not None and int(have[0]) != n:
                    raise ArgumentError(
                        f"`{p.name}` dimension {d} is `{dim.name}` = {int(have[0])} (from another "
                        "argument), "
                        f"but the array has {n}"
                    )
                self.env[dim] = const_array(n, dim.dtype).copy()

    def _view(self, p: Buffer, a: np.ndarray, region: Region | None) -> View:
        want = np_dtype(p.dtype)
        if a.dtype != want:
            raise ArgumentError(f"`{p.name}` is {p.dtype} ({want}), the array is {a.dtype}")
        self.hev.env.update(self.env)
        shape = tuple(int(self.hev.uniform_int(d, f"the shape of `{p.name}`")) for d in p.shape)
        if tuple(a.shape) != shape:
            raise ArgumentError(
                f"`{p.name}` has shape {list(shape)}, the array has {list(a.shape)}"
            )
        if region is None:
            arr = a
            if not a.flags.c_contiguous or not a.flags.writeable:
                if not a.flags.writeable:
                    raise ArgumentError(
                        f"`{p.name}`: the array is read-only (tsir.interpret writes in place)"
                    )
                arr = np.ascontiguousarray(a)
                self._writeback.append((a, arr))
            data = arr.reshape(-1).view(np.uint8).reshape(1, -1)
            region = Region(p.name, "global", data.shape[1], 1, None, data=data)
        strides = None
        if p.strides:
            strides = tuple(
                int(self.hev.uniform_int(s, f"a stride of `{p.name}`")) for s in p.strides
            )
        return View(p, region, 0, shape, strides)

    def finish(self) -> None:
        for orig, tmp in self._writeback:
            orig[...] = tmp

    # -- the host program --------------------------------------------------------------------------
    def run(self) -> None:
        self.host_stmt(self.host.body)

    def host_stmt(self, s: Stmt) -> None:
        ev = self.hev
        one = Mask.full(1)
        if isinstance(s, SeqStmt):
            for x in s.stmts:
                self.host_stmt(x)
        elif isinstance(s, KernelLaunch):
            self.launch(
                s.name,
                s.body,
                s.grid,
                s.threads,
                s.block_vars,
                s.thread_vars,
                self.views,
                dict(ev.env),
            )
        elif isinstance(s, KernelCall):
            self.launch_device(s)
        elif isinstance(s, LetStmt):
            ev.env[s.var] = ev.eval(s.value, one)
            self.host_stmt(s.body)
        elif isinstance(s, AttrStmt):
            self.host_stmt(s.body)
        elif isinstance(s, Allocate) and s.buffer.scope == "global":
            self.workspace(s)
        elif isinstance(s, IfThenElse):
            c = ev.eval(s.cond, one)
            if c[0]:
                self.host_stmt(s.then_case)
            elif s.else_case is not None:
                self.host_stmt(s.else_case)
        elif isinstance(s, For):
            lo = ev.uniform_int(s.min, "a host loop bound")
            n = ev.uniform_int(s.extent, "a host loop extent")
            for i in range(lo, lo + n):
                ev.env[s.loop_var] = const_array(i, s.loop_var.dtype)
                self.host_stmt(s.body)
        elif (
            isinstance(s, Evaluate)
            and isinstance(s.value, IntImm)
            or self.runtime is not None
            and self.runtime.host_stmt(self, s)
        ):
            pass
        else:
            raise InterpretUnsupportedError(
                f"the interpreter cannot run the host statement {type(s).__name__}: "
                f"{str(s).splitlines()[0]}"
            )

    def workspace(self, s: Allocate) -> None:
        """T.alloc_global: scratch for the launches in `s.body`, bytes 0xFF (a NaN of every float
        type) until written, like memory no one initialised."""
        b = s.buffer
        shape = tuple(int(self.hev.uniform_int(d, f"the shape of `{b.name}`")) for d in b.shape)
        nbytes = int(np.prod(shape, dtype=np.int64)) * np_dtype(b.dtype).itemsize
        data = np.full((1, nbytes), 0xFF, dtype=np.uint8)
        region = Region(b.name, "global", data.shape[1], 1, None, data=data)
        old = self.views.get(b)
        self.views[b] = self.hev.views[b] = View(b, region, 0, shape, None)
        try:
            self.host_stmt(s.body)
        finally:
            if old is None:
                self.views.pop(b, None)
                self.hev.views.pop(b, None)

    def launch_device(self, s: KernelCall) -> None:
        k: DeviceKernel | None = self.kernels.get(s.kernel)
        if k is None:
            raise InterpretUnsupportedError(f"launch of an unknown device kernel `{s.kernel}`")
        if len(s.args) != len(k.params):
            raise InterpretUnsupportedError(
                f"`{s.kernel}` takes {len(k.params)} arguments, the launch passes {len(s.args)}"
            )
        views: dict[Buffer, View] = {}
        env: dict[Any, Any] = {}
        one = Mask.full(1)
        for p, a in zip(k.params, s.args):
            if isinstance(p, Buffer):
                if not isinstance(a, Buffer):
                    raise InterpretUnsupportedError(
                        f"`{s.kernel}`: buffer parameter `{p.name}` gets `{a}`"
                    )
                src = self.hev.view(a)
                views[p] = View(
                    p, src.region, src.byte_offset, src.shape, src.strides if p.strides else None
                )
            else:
                env[p] = self.hev.eval(a, one)
        # The grid is the launch's, evaluated on the host (a kernel need not take the values
        # its grid was computed from).
        grid = tuple(self.hev.eval(g, one) for g in s.grid)
        self.launch(k.name, k.body, grid, k.threads, k.block_vars, k.thread_vars, views, env)

    def launch(
        self,
        name: str,
        body: Stmt,
        grid: tuple[Any, ...],
        threads: tuple[int, ...],
        block_vars: tuple[Any, ...],
        thread_vars: tuple[Any, ...],
        views: dict[Buffer, View],
        env: dict[Any, Any],
    ) -> None:
        kev = Evaluator(self.hev.mem, self.hev.ctx)
        kev.env.update(env)
        dims = [
            int(g[0])
            if isinstance(g, np.ndarray)
            else kev.uniform_int(g, f"a grid extent of `{name}`")
            for g in grid
        ]
        blocks = self._blocks(name, dims)
        if not blocks:
            return
        tile = _level_cache.get(body)
        if tile is None:
            if len(_level_cache) > 512:
                _level_cache.clear()
            tile = _level_cache[body] = is_tile_level(body)
        guard = tile if self.implicit_guards is None else self.implicit_guards

        def ctx_for(lanes: LaneMap) -> RunContext:
            c = RunContext(
                lanes,
                check=self.check,
                global_guard=guard,
                races=not self.implicit_sync,
                implicit_sync=self.implicit_sync,
                origin=self.origin,
                rank=self.rank,
            )
            c.runtime = self.runtime
            c.grid_dims = tuple(dims)
            return c

        if self.runtime is not None:
            self._multi_rank_launch(
                name, body, tile, ctx_for, views, env, blocks, threads, block_vars, thread_vars
            )
            return
        if tile:
            run_tile_kernel(
                ctx_for, body, views, env, blocks, tuple(threads), block_vars, thread_vars
            )
            return
        per_block = int(np.prod(threads))
        step = max(1, LANES_PER_SWEEP // max(1, per_block))
        if needs_strands(body):  # warpgroups that wait for each other: one block at a time
            step = 1
        for i in range(0, len(blocks), step):
            run_thread_kernel(
                ctx_for(LaneMap(blocks[i : i + step], threads)),
                body,
                views,
                env,
                block_vars,
                thread_vars,
            )

    def _multi_rank_launch(
        self,
        name: str,
        body: Stmt,
        tile: bool,
        ctx_for: Any,
        views: dict[Buffer, View],
        env: dict[Any, Any],
        blocks: list[tuple[int, ...]],
        threads: tuple[int, ...],
        block_vars: tuple[Any, ...],
        thread_vars: tuple[Any, ...],
    ) -> None:
        """Copy-engine steps written in the kernel run first (LowerCPEngineIntrin's meaning);
        tile-level
        blocks become tasks (a block may wait for another); thread-level blocks run in one sweep."""

        for n in walk(body):
            if isinstance(n, CpEngineCopy):
                self.runtime.cp_engine_copy(self, n)
        if not tile:
            sweeps = [[b] for b in blocks] if needs_strands(body) else [blocks]
            for sweep in sweeps:
                run_thread_kernel(
                    ctx_for(LaneMap(sweep, threads)), body, views, env, block_vars, thread_vars
                )
            return
        world = self.runtime.world
        tasks = []
        for blk in blocks:

            def one(blk: tuple[int, ...] = blk) -> None:
                with np.errstate(all="ignore"):
                    run_tile_kernel(
                        ctx_for, body, views, env, [blk], tuple(threads), block_vars, thread_vars
                    )

            tasks.append(world.spawn(one, f"rank {self.rank} block {fmt_idx(blk)}"))
        world.wait_until(
            lambda: all(t.done for t in tasks),
            lambda: f"rank {self.rank} waits for the blocks of `{name}` to finish",
        )

    def _blocks(self, name: str, dims: list[int]) -> list[tuple[int, ...]]:
        if any(d <= 0 for d in dims):
            return []
        if self.grid is None:
            return [
                tuple(reversed(b)) for b in itertools.product(*(range(d) for d in reversed(dims)))
            ]
        out = []
        for b in self.grid:
            if len(b) != len(dims) or any(not 0 <= x < d for x, d in zip(b, dims)):
                raise ArgumentError(
                    f"grid= block {fmt_idx(b)} is not a block of `{name}`'s grid "
                    f"{fmt_idx(tuple(dims))}"
                )
            out.append(tuple(int(x) for x in b))
        return out


# Kernel body -> is it tile-level IR (keyed by node identity; nodes hash by identity).
_level_cache: dict[Any, bool] = {}


def _host_call(ev: Evaluator, e: Any, mask: Mask) -> Any:
    """Calls host code may make: the rank and the number of ranks."""
    rt = ev.ctx.runtime
    if e.op == "tsir.distributed.rank":
        return np.array([rt.rank if rt is not None else 0], dtype=np.int32)
    if e.op == "tsir.distributed.num_ranks":
        return np.array([rt.world.ranks if rt is not None else 1], dtype=np.int32)
    if e.op == "tma_descriptor":  # a tensor map the host builds for a kernel parameter
        return make_tensor_map(ev, e)
    raise InterpretUnsupportedError(
        f"host code calls `{e.op}`, which the interpreter cannot run on the host"
    )
