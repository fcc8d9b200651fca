"""Explicit Hopper control with TileLang's names: mbarriers, TMA loads, register budgets and warp
roles, for programs that specialize their warps by hand (TileLang's examples/warp_specialize).

    bars = T.alloc_barrier([128, 128])        # mbarriers, each expecting 128 arrivals a phase
    with T.ws(1):                             # warpgroup 1 (threads 128..255): the producer
        T.barrier_wait(bars[1], (k + 1) % 2)
        T.tma_copy(A[by * 128, k * 64], A_s, barrier=bars[0])
        T.barrier_arrive(bars[0])
    with T.ws(0):                             # warpgroup 0: the consumer
        T.barrier_wait(bars[0], k % 2)
        T.gemm(A_s, B_s, C_f)
        T.barrier_arrive(bars[1])

The target checks (sm_90a) happen when the kernel is lowered (LowerTileOp), where the target is
known; the shapes of the arguments are checked here.
"""

from __future__ import annotations

import builtins as _py
import contextlib
from collections.abc import Iterator
from typing import Any

from ..buffer import Buffer, make_buffer
from ..dtype import int32
from ..errors import BuildError
from ..expr import BufferLoad, Call, IntImm, PrimExpr, convert
from ..stmt import AttrStmt, Evaluate, IfThenElse, Stmt, TileOpStmt, seq
from ..tileop.tma_copy import TmaCopy
from ..warp_roles import (
    WARP_ROLE_ATTR,
    WARPGROUP,
    mbarrier_address,
    mbarrier_stmt,
    nreg_problem,
)
from .frame import Frame, check_buffer_use, current_builder, infer_name
from .memory import copy_regions

__all__ = [
    "alloc_barrier",
    "barrier_arrive",
    "barrier_wait",
    "create_list_of_mbarrier",
    "dec_max_nreg",
    "fence_proxy_async",
    "get_mbarrier",
    "inc_max_nreg",
    "mbarrier_arrive",
    "mbarrier_arrive_expect_tx",
    "mbarrier_expect_tx",
    "mbarrier_wait_parity",
    "set_max_nreg",
    "tma_copy",
    "ws",
]

_MAX_COUNT = (1 << 20) - 1  # an mbarrier's arrival count


def _kernel(what: str) -> Any:
    b = current_builder(what)
    if b.kernel is None:
        raise BuildError(f"{what} must be used inside a T.Kernel")
    return b


def alloc_barrier(arrive_count: Any = None) -> Buffer:
    """One mbarrier per entry of `arrive_count` (an int: one barrier), each completing a phase
    after that many arrivals: a shared `uint64` buffer, initialised by the block's first thread,
    then a block barrier (so it must be called where every thread runs, at the kernel's top)."""
    what = "T.alloc_barrier"
    b = _kernel(what)
    counts = [arrive_count] if not isinstance(arrive_count, (list, tuple)) else list(arrive_count)
    if not counts or _py.any(
        not isinstance(c, int) or isinstance(c, bool) or not 1 <= c <= _MAX_COUNT for c in counts
    ):
        raise BuildError(
            f"{what}: arrive_count must be a positive int (at most {_MAX_COUNT}) or a non-empty "
            f"list of them, one per barrier; got {arrive_count!r}"
        )
    if b.frame.kind != "kernel":
        raise BuildError(
            f"{what} must be called at the top level of the T.Kernel (it ends with a barrier of "
            f"all the block's threads), not inside a `{b.frame.kind}` block"
        )
    k = b.kernel
    name = b.unique(infer_name("mbar"))
    buf = make_buffer(name, (len(counts),), "uint64", "shared", 8)
    b.owner[buf] = k
    b.frame.allocate(buf)
    first = k.thread_vars[0] == 0
    for v in k.thread_vars[1:]:
        first = first & (v == 0)
    inits = [
        mbarrier_stmt("mbarrier_init", mbarrier_address(BufferLoad(buf, (IntImm(i, int32),))), c)
        for i, c in enumerate(counts)
    ]
    b.frame.emit(IfThenElse(first, seq(*inits, mbarrier_stmt("mbarrier_init_fence"))))
    b.frame.emit(Evaluate(Call(int32, "sync_threads", ())))
    return buf


def create_list_of_mbarrier(*arrive_counts: Any) -> Buffer:
    """TileLang's integer barrier ids: the kernel's mbarriers, one per arrival count (a list, or
    the counts as arguments), as T.alloc_barrier makes them; afterwards an integer (or integer
    expression) `i` where a barrier is expected, or `T.get_mbarrier(i)`, is barrier i. Once per
    kernel, at its top level."""
    what = "T.create_list_of_mbarrier"
    b = _kernel(what)
    if b.kernel.mbarrier_list is not None:
        raise BuildError(
            f"{what}: this kernel already has its list of mbarriers "
            f"(`{b.kernel.mbarrier_list.name}`); call it once, with every barrier's count"
        )
    counts = (
        list(arrive_counts[0])
        if len(arrive_counts) == 1 and isinstance(arrive_counts[0], (list, tuple))
        else list(arrive_counts)
    )
    buf = alloc_barrier(counts)
    b.kernel.mbarrier_list = buf
    return buf


def get_mbarrier(barrier_id: Any) -> BufferLoad:
    """Barrier `barrier_id` of the kernel's T.create_list_of_mbarrier list."""
    return _barrier_by_id(barrier_id, "T.get_mbarrier")


def _barrier_by_id(barrier_id: Any, what: str) -> BufferLoad:
    b = _kernel(what)
    table = b.kernel.mbarrier_list
    if table is None:
        raise BuildError(
            f"{what}({barrier_id}): an integer barrier id needs the kernel's list of barriers: "
            "call T.create_list_of_mbarrier([count, ...]) first (or allocate them with "
            "T.alloc_barrier and pass one, `bars[i]`)"
        )
    i = _int(barrier_id, what)
    n = table.shape[0].value  # type: ignore[union-attr]
    if isinstance(i, IntImm) and not 0 <= i.value < n:
        raise BuildError(
            f"{what}({i.value}): the kernel's list of mbarriers (T.create_list_of_mbarrier) has "
            f"{n}, ids 0..{n - 1}"
        )
    return BufferLoad(table, (i,))


def _is_barrier_id(bar: Any) -> bool:
    """An integer, or an integer expression that is not an element of an mbarrier buffer."""
    if isinstance(bar, bool):
        return False
    if isinstance(bar, int):
        return True
    if not isinstance(bar, PrimExpr) or not bar.dtype.is_int:
        return False
    return not (isinstance(bar, BufferLoad) and str(bar.buffer.dtype) == "uint64")


def _barrier(bar: Any, what: str) -> BufferLoad:
    """One mbarrier: an element of a T.alloc_barrier buffer, a buffer of one, or an integer id
    into the kernel's T.create_list_of_mbarrier list."""
    if isinstance(bar, Buffer):
        check_buffer_use(bar, element_access=False)
        if bar.ndim != 1 or not isinstance(bar.shape[0], IntImm) or bar.shape[0].value != 1:
            raise BuildError(
                f"{what}: `{bar.name}` holds several barriers; pass one of them (`{bar.name}[i]`)"
            )
        bar = BufferLoad(bar, (IntImm(0, int32),))
    if _is_barrier_id(bar):
        return _barrier_by_id(bar, what)
    if not isinstance(bar, BufferLoad):
        raise BuildError(f"{what}: expected an mbarrier from T.alloc_barrier, got {bar!r}")
    buf = bar.buffer
    if str(buf.dtype) != "uint64" or buf.scope not in ("shared", "shared.dyn") or buf.ndim != 1:
        raise BuildError(
            f"{what}: `{buf.name}` ({buf.scope} {buf.dtype}) is not an mbarrier buffer; allocate "
            "barriers with T.alloc_barrier"
        )
    return bar


def _int(x: Any, what: str) -> PrimExpr:
    e = convert(x)
    if not e.dtype.is_int:
        raise BuildError(f"{what} must be an integer, got {x!r} ({e.dtype})")
    return e if e.dtype == int32 else e.astype(int32)


def _emit(stmt: Stmt, what: str) -> None:
    _kernel(what).frame.emit(stmt)


def barrier_arrive(barrier_id: Any) -> None:
    """Each calling thread arrives once on the mbarrier (release)."""
    bar = _barrier(barrier_id, "T.barrier_arrive")
    _emit(mbarrier_stmt("mbarrier_arrive", mbarrier_address(bar)), "T.barrier_arrive")


def mbarrier_arrive(mbarrier: Any) -> None:
    """TileLang's other name of T.barrier_arrive."""
    bar = _barrier(mbarrier, "T.mbarrier_arrive")
    _emit(mbarrier_stmt("mbarrier_arrive", mbarrier_address(bar)), "T.mbarrier_arrive")


def barrier_wait(barrier_id: Any, parity: Any) -> None:
    """Wait until the barrier's phase of parity `parity % 2` has completed (acquire). A fresh
    barrier is in phase 0: waiting for parity 1 returns at once."""
    bar = _barrier(barrier_id, "T.barrier_wait")
    p = _int(parity, "T.barrier_wait parity")
    _emit(mbarrier_stmt("mbarrier_wait", mbarrier_address(bar), p), "T.barrier_wait")


def mbarrier_wait_parity(mbarrier: Any, parity: Any) -> None:
    """TileLang's other name of T.barrier_wait."""
    bar = _barrier(mbarrier, "T.mbarrier_wait_parity")
    p = _int(parity, "T.mbarrier_wait_parity parity")
    _emit(mbarrier_stmt("mbarrier_wait", mbarrier_address(bar), p), "T.mbarrier_wait_parity")


def mbarrier_expect_tx(mbarrier: Any, tx: Any) -> None:
    """Each calling thread announces `tx` more transaction bytes for the current phase."""
    bar = _barrier(mbarrier, "T.mbarrier_expect_tx")
    n = _int(tx, "T.mbarrier_expect_tx bytes")
    _emit(mbarrier_stmt("mbarrier_expect_tx", mbarrier_address(bar), n), "T.mbarrier_expect_tx")


def mbarrier_arrive_expect_tx(mbarrier: Any, tx: Any) -> None:
    """Each calling thread announces `tx` transaction bytes, then arrives."""
    what = "T.mbarrier_arrive_expect_tx"
    bar = _barrier(mbarrier, what)
    n = _int(tx, f"{what} bytes")
    _emit(mbarrier_stmt("mbarrier_arrive_expect_tx", mbarrier_address(bar), n), what)


def fence_proxy_async() -> None:
    """`fence.proxy.async.shared::cta`: the calling thread's ordinary shared-memory writes become
    visible to the async proxy (TMA stores, wgmma operand reads)."""
    _emit(mbarrier_stmt("fence_proxy_async_shared"), "T.fence_proxy_async")


def tma_copy(src: Any, dst: Any, *, barrier: Any = None) -> None:
    """A TMA load of `src` (global) into `dst` (shared) that completes on `barrier`, without
    waiting: the first of the calling threads announces its bytes (expect_tx) and issues it; the
    program arrives (T.barrier_arrive) and waits (T.barrier_wait) before reading `dst`."""
    what = "T.tma_copy"
    b = _kernel(what)
    if barrier is None:
        raise BuildError(
            f"{what}(src, dst, barrier=...): a TMA load completes on an mbarrier; pass one from "
            "T.alloc_barrier (TMA stores are not supported: use T.copy)"
        )
    bar = _barrier(barrier, what)
    s, d = copy_regions(src, dst, what)
    if s.buffer.scope not in ("global",) or d.buffer.scope not in ("shared", "shared.dyn"):
        raise BuildError(
            f"{what}: `{s.buffer.name}` ({s.buffer.scope}) to `{d.buffer.name}` ({d.buffer.scope}):"
            " tsir's T.tma_copy loads global memory into shared memory"
        )
    b.frame.emit(TileOpStmt(TmaCopy(s, d, bar)))


def set_max_nreg(reg_count: Any, is_inc: Any) -> None:
    """setmaxnreg: the calling warpgroup's per-thread register budget rises (`is_inc` 1) or falls
    (0) to `reg_count` (a multiple of 8 in [24, 256]; sm_90a). Every thread of the warpgroup
    must run it."""
    why = nreg_problem(reg_count)
    if why is not None:
        raise BuildError(f"T.set_max_nreg({reg_count!r}, {is_inc!r}): {why}")
    if is_inc not in (0, 1) or (not isinstance(is_inc, (int, bool))):
        raise BuildError(
            f"T.set_max_nreg: is_inc must be 1 (increase) or 0 (decrease), got {is_inc!r}"
        )
    fn = "setmaxnreg_inc" if is_inc else "setmaxnreg_dec"
    _emit(Evaluate(Call(int32, f"tsir.mbarrier.{fn}<{reg_count}>", ())), "T.set_max_nreg")


def inc_max_nreg(reg_count: Any) -> None:
    set_max_nreg(reg_count, 1)


def dec_max_nreg(reg_count: Any) -> None:
    set_max_nreg(reg_count, 0)


@contextlib.contextmanager
def ws(*warp_group_idx: Any) -> Iterator[None]:
    """A warp role: the block runs in the warpgroups `warp_group_idx` (128 threads each,
    warpgroup g being threads [128 g, 128 g + 128)), which must be contiguous. Tile ops inside are
    spread over the role's threads only; the program synchronizes roles with mbarriers."""
    what = f"T.ws({', '.join(repr(g) for g in warp_group_idx)})"
    b = _kernel(what)
    k = b.kernel
    ids = list(warp_group_idx)
    if not ids or _py.any(not isinstance(g, int) or isinstance(g, bool) or g < 0 for g in ids):
        raise BuildError(f"{what}: warpgroup ids must be one or more ints >= 0")
    if len(k.threads) != 1:
        raise BuildError(
            f"{what}: warp roles need a 1-D block (T.Kernel(threads=n)), got {k.threads}"
        )
    ids = sorted(set(ids))
    if ids != list(range(ids[0], ids[-1] + 1)):
        raise BuildError(
            f"{what}: warpgroups {ids} are not contiguous; a role runs on one range of threads"
        )
    lo, hi = ids[0] * WARPGROUP, (ids[-1] + 1) * WARPGROUP
    if hi > k.threads[0]:
        raise BuildError(
            f"{what}: warpgroup {ids[-1]} is threads [{hi - WARPGROUP}, {hi}), past the block's "
            f"{k.threads[0]} threads"
        )
    if _py.any(f.kind == "warp_role" for f in b.frames):
        raise BuildError(f"{what}: warp roles do not nest")
    tx = k.thread_vars[0]
    cond = tx < hi if lo == 0 else (tx >= lo) & (tx < hi)

    def finish(body: Stmt) -> Stmt:
        return AttrStmt(WARP_ROLE_ATTR, (lo, hi), IfThenElse(cond, body))

    frame = b.push(Frame("warp_role", finish))
    yield
    b.pop(frame)
