"""Several ranks in one process: `tsir.interpret(func, *args, ranks=R, dead_ranks=())`.

Arguments: each buffer argument is a sequence of R numpy arrays, rank r's copy (symmetric buffers
and ordinary ones alike: every process has its own tensors); a scalar is one number for every rank
or a sequence of R. Every rank runs the function (its host program and kernels); a remote address
(`T.put_*`, `T.st(..., dst_pe=)`, NVSHMEM calls, copy-engine copies) reaches the same parameter
in the peer's arrays. Ranks and tile-level blocks are tasks of `World` (world.py): they interleave
only where one waits for another, deterministically, with sequential consistency.

A dead rank (`dead_ranks={1}`) runs nothing but keeps its memory: peers may still write into it, and
anything that waits for it (a flag it would set, a barrier it would join) ends in a DeadlockError
that names the waits, instead of hanging.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from ..buffer import Buffer
from ..expr import Call, IntImm, Var
from ..function import Module, PrimFunc
from ..stmt import CpEngineCopy, TileOpStmt
from ..tileop.distributed import BarrierBlocksOp, GetOp, LdOp, PutOp, StOp, WaitOp
from ..visitor import walk
from .errors import ArgumentError, OutOfBoundsError
from .host import Program
from .lanes import Mask
from .memory import View
from .world import World

__all__ = ["interpret_ranks", "Runtime", "uses_distributed"]

_DIST_CALL_PREFIXES = ("tsir.distributed.", "tsir.ldst.", "tsir.sync.", "nvshmem.", "extern:__")


def uses_distributed(func: Any) -> bool:
    """Does the function use ranks, remote memory, flag waits or copy engines?"""

    dist_ops = (PutOp, GetOp, StOp, LdOp, WaitOp, BarrierBlocksOp)
    for n in walk(func):
        if isinstance(n, CpEngineCopy):
            return True
        if isinstance(n, TileOpStmt) and isinstance(n.op, dist_ops):
            return True
        if isinstance(n, Call) and n.op.startswith(_DIST_CALL_PREFIXES):
            return True
    return False


class Runtime:
    """One rank's view of the world: its rank number, and its host-side steps."""

    def __init__(self, world: World, rank: int):
        self.world = world
        self.rank = rank

    def host_stmt(self, program: Any, s: Any) -> bool:
        if isinstance(s, CpEngineCopy):
            self.cp_engine_copy(program, s)
            return True
        return False

    def cp_engine_copy(self, program: Any, s: CpEngineCopy) -> None:
        """`size` elements from src (on src_pe) to dst (on dst_pe), then `flag = flag_value` on the
        rank that received the data."""
        ev = program.hev
        one = Mask.full(1)

        def at(region: Any, pe_expr: Any) -> tuple[View, int, int]:
            view = ev.view(region.buffer)
            pe = self.rank if pe_expr is None else ev.uniform_int(pe_expr, "a copy-engine peer")
            if not 0 <= pe < self.world.ranks:
                raise OutOfBoundsError(
                    f"cp_engine_copy to or from rank {pe} of {self.world.ranks}", buffer=view.name
                )
            if pe != self.rank:
                view = View(
                    view.buffer,
                    self.world.regions[pe][view.region.key],
                    view.byte_offset,
                    view.shape,
                    view.strides,
                )
            off, oob = view.offsets([ev.index(r.min, one) for r in region.region])
            if oob is not None:
                raise OutOfBoundsError(
                    f"cp_engine_copy starts outside `{view.name}`", buffer=view.name
                )
            return view, int(off[0]), pe

        src, s_elem, _ = at(s.src, s.src_pe)
        dst, d_elem, d_rank = at(s.dst, s.dst_pe)
        n = ev.uniform_int(s.size, "a copy-engine size")
        nbytes = n * src.itemsize
        sb, db = src.byte_offset + s_elem * src.itemsize, dst.byte_offset + d_elem * dst.itemsize
        for v, b in ((src, sb), (dst, db)):
            if b + nbytes > v.byte_offset + v.span * v.itemsize:
                raise OutOfBoundsError(
                    f"cp_engine_copy of {n} elements runs past the end of `{v.name}`", buffer=v.name
                )
        dst.region.data[0, db : db + nbytes] = src.region.data[0, sb : sb + nbytes]
        if s.flag is not None:
            fview, f_elem, _ = at(s.flag, None if d_rank == self.rank else _const(d_rank))
            value = ev.eval(s.flag_value, one).astype(fview.npdt)
            fb = fview.byte_offset + f_elem * fview.itemsize
            fview.region.data[0, fb : fb + fview.itemsize] = value.view(np.uint8)


def _const(v: int) -> Any:
    return IntImm(v)


def _split_args(params: tuple[Any, ...], args: tuple[Any, ...], ranks: int) -> list[list[Any]]:
    if len(args) != len(params):
        raise ArgumentError(f"the function takes {len(params)} arguments, got {len(args)}")
    out: list[list[Any]] = [[] for _ in range(ranks)]
    for p, a in zip(params, args):
        if isinstance(p, Buffer):
            if isinstance(a, np.ndarray) and ranks == 1:
                a = [a]
            if not isinstance(a, (list, tuple)) or len(a) != ranks:
                raise ArgumentError(
                    f"`{p.name}`: with ranks={ranks}, pass a list of {ranks} numpy arrays (one "
                    "per rank)"
                )
        elif isinstance(p, Var):
            a = list(a) if isinstance(a, (list, tuple)) else [a] * ranks
            if len(a) != ranks:
                raise ArgumentError(f"scalar `{p.name}`: one value, or one per rank ({ranks})")
        for r in range(ranks):
            out[r].append(a[r])
    return out


def interpret_ranks(
    func: Any,
    args: tuple[Any, ...],
    *,
    grid: Iterable[Any] | None,
    ranks: int,
    check: bool,
    stages: Any,
    implicit_guards: bool | None,
    implicit_sync: bool,
    dead_ranks: Iterable[int] = (),
) -> None:
    if not isinstance(ranks, int) or ranks < 1:
        raise ArgumentError(f"ranks must be a positive int, got {ranks!r}")
    dead = set(dead_ranks)
    if not dead <= set(range(ranks)):
        raise ArgumentError(f"dead_ranks {sorted(dead)} are not ranks of {ranks}")
    host = func.host if isinstance(func, Module) else func
    if not isinstance(host, PrimFunc):
        raise ArgumentError(
            f"tsir.interpret takes a PrimFunc or a Module, got {type(func).__name__}"
        )
    per_rank = _split_args(host.params, args, ranks)
    world = World(ranks, dead)
    programs = []
    for r in range(ranks):
        prog = Program(
            func,
            grid=grid,
            check=check,
            stages=stages,
            implicit_guards=implicit_guards,
            implicit_sync=implicit_sync,
            rank=r,
            runtime=Runtime(world, r),
        )
        prog.bind(tuple(per_rank[r]))
        for k, p in enumerate(host.params):
            if isinstance(p, Buffer):
                region = prog.views[p].region
                region.key = k  # pyright: ignore[reportAttributeAccessIssue]  # narrowed by a check above that the checker cannot follow
                world.regions[r][k] = region
        programs.append(prog)
    for r, prog in enumerate(programs):
        if r not in dead:
            world.spawn(_runner(prog), f"rank {r}")
    with np.errstate(all="ignore"):
        world.run()
    for prog in programs:
        prog.finish()


def _runner(prog: Any) -> Any:
    def run() -> None:
        with np.errstate(all="ignore"):
            prog.run()

    return run
