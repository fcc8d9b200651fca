"""Distributed builtins of `tsir.T` that are expressions or single instructions: the rank and the
number of ranks, fences, atomic add, warp votes and thread election."""

from __future__ import annotations

from typing import Any

from ..buffer import store_value
from ..dtype import DataType, bool_, int32
from ..errors import BuildError, DTypeError
from ..expr import Call, IntImm, PrimExpr, cast, convert
from ..stmt import BufferStore, Evaluate
from ..tileop.distributed import SCOPES, SEMANTICS, rank_expr, remote_address
from .dist_checks import element, in_kernel, peer_rank, require_symmetric
from .memory import alloc_var

__all__ = [
    "get_rank",
    "get_num_ranks",
    "fence_cta",
    "fence_gpu",
    "fence_sys",
    "atom_add",
    "warp_any",
    "warp_all",
    "shuffle_elect",
]

uint32 = DataType("uint32")
_ATOM_SEMS = ("relaxed", "acquire", "release", "acq_rel")
_ATOM_DTYPES = ("int32", "uint32", "int64", "uint64", "float32", "float64")


def get_rank() -> PrimExpr:
    """This process's rank (int32), from the module's rank table."""
    return rank_expr()


def get_num_ranks() -> PrimExpr:
    """The number of ranks in the group (int32)."""
    return Call(int32, "tsir.distributed.num_ranks", ())


def _fence(scope: str) -> None:
    b = in_kernel(f"T.fence_{scope}")
    b.frame.emit(Evaluate(Call(int32, f"tsir.sync.fence_{scope}", ())))


def fence_cta() -> None:
    """fence.acq_rel.cta: order this thread's accesses for the threads of its block."""
    _fence("cta")


def fence_gpu() -> None:
    """fence.acq_rel.gpu: order this thread's accesses for every thread of this GPU."""
    _fence("gpu")


def fence_sys() -> None:
    """fence.acq_rel.sys: order this thread's accesses (puts included) for every GPU and the
    host."""
    _fence("sys")


def atom_add(
    dst: Any, value: Any, scope: str = "gpu", sem: str = "relaxed", dst_pe: Any = None
) -> PrimExpr:
    """Atomically add `value` to `dst` (on rank `dst_pe`, or this rank) and return the old value."""
    b = in_kernel("T.atom_add")
    d = element(dst, "T.atom_add dst")
    if d.buffer.dtype.name not in _ATOM_DTYPES:
        raise DTypeError(
            f"T.atom_add: `{d.buffer.name}` is {d.buffer.dtype}; atomics take "
            f"{', '.join(_ATOM_DTYPES)}"
        )
    if d.buffer.scope not in ("global", "symmetric"):
        raise BuildError(
            f"T.atom_add: `{d.buffer.name}` is in {d.buffer.scope} memory; atom_add works on "
            f"global memory"
        )
    if sem not in _ATOM_SEMS:
        raise BuildError(f"T.atom_add: sem must be one of {', '.join(_ATOM_SEMS)}, got {sem!r}")
    if scope not in SCOPES:
        raise BuildError(f"T.atom_add: scope must be one of {', '.join(SCOPES)}, got {scope!r}")
    peer = peer_rank(dst_pe, "T.atom_add dst_pe")
    if peer is not None:
        require_symmetric(d, "T.atom_add", "the remote destination")
    v = store_value(d.buffer, value)
    fn = f"tsir.ldst.atom_add<tsir::{SEMANTICS[sem]}, tsir::{SCOPES[scope]}>"
    old = alloc_var(d.buffer.dtype)
    # The atomic is a statement (it happens exactly once, used or not); its result is a variable.
    b.frame.emit(
        BufferStore(
            old, Call(d.buffer.dtype, fn, (remote_address(d, peer), v)), (IntImm(0, int32),)
        )
    )
    return old[0]


def _vote(fn: str, value: Any, mask: Any) -> PrimExpr:
    in_kernel(f"T.{fn}")
    c = convert(value)
    if not c.dtype.is_bool:
        c = c != 0
    m = convert(mask & 0xFFFFFFFF if isinstance(mask, int) else mask, uint32)
    if m.dtype != uint32:
        m = cast(uint32, m)
    return Call(bool_, f"extern:__{fn.split('_')[1]}_sync", (m, c))


def warp_any(value: Any, mask: Any = 0xFFFFFFFF) -> PrimExpr:
    """True on every lane in `mask` when `value` is true on any of them (`__any_sync`)."""
    return _vote("warp_any", value, mask)


def warp_all(value: Any, mask: Any = 0xFFFFFFFF) -> PrimExpr:
    """True on every lane in `mask` when `value` is true on all of them (`__all_sync`)."""
    return _vote("warp_all", value, mask)


def shuffle_elect(thread_extent: int) -> PrimExpr:
    """True for exactly one thread of each group of `thread_extent` consecutive threads (by linear
    thread index): the group's first. 0 means the whole block."""
    b = in_kernel("T.shuffle_elect")
    if isinstance(thread_extent, bool) or not isinstance(thread_extent, int) or thread_extent < 0:
        raise BuildError(
            f"T.shuffle_elect: thread_extent must be an int >= 0, got {thread_extent!r}"
        )
    k = b.kernel
    tid: PrimExpr = k.thread_vars[-1]
    for v, n in zip(reversed(k.thread_vars[:-1]), reversed(k.threads[:-1])):
        tid = tid * n + v
    if thread_extent == 0:
        return tid == 0
    if thread_extent == 1:
        return convert(True)
    return tid % thread_extent == 0
