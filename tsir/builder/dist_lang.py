"""The distributed names of `tsir.T` (TileScale's): ranks, remote copies, qualified loads and
stores, flag waits, the cross-rank barrier, fences, atomics and warp votes.

Operands named `src`/`dst`/`flag`/`barrier` are a buffer (its first element) or one element of it
(`A[i, j]`: the address of that element); sizes count elements. A peer argument (`dst_pe`,
`src_pe`, `peer`) left as None means this rank's own memory; a constant peer must lie in
[0, world size) (the world size is known once `tsir.runtime.dist.init()` has run; 64 ranks at
most). Every check here raises BuildError (a TSIRError) pointing at the user's line.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from ..buffer import Buffer, store_value
from ..cp_engine import const_flat_offset as flat_offset
from ..cp_engine import const_numel as numel
from ..dtype import DataType, int32, int64
from ..dtype import dtype as as_dtype
from ..errors import BuildError, DTypeError
from ..expr import PrimExpr, cast, const_value, convert
from ..stmt import TileOpStmt
from ..tileop.distributed import (
    RELATIONS,
    BarrierBlocksOp,
    GetOp,
    LdOp,
    MemoryScope,
    PutOp,
    Relation,
    Spread,
    StOp,
    WaitOp,
    address_of,
)
from .dist_builtins import (  # noqa: F401  (re-exported as T.*)
    atom_add,
    fence_cta,
    fence_gpu,
    fence_sys,
    get_num_ranks,
    get_rank,
    shuffle_elect,
    warp_all,
    warp_any,
)
from .dist_checks import (
    SCOPES,
    WORLD,
    element,
    hints,
    in_kernel,
    order,
    peer_rank,
    require_symmetric,
)
from .memory import alloc_var
from .structure import param

__all__ = [
    "get_rank",
    "get_num_ranks",
    "put_warp",
    "put_block",
    "get_warp",
    "get_block",
    "st",
    "ld",
    "wait_eq",
    "wait_ne",
    "wait_ge",
    "wait_le",
    "wait_gt",
    "wait_lt",
    "barrier_blocks",
    "sync_blocks",
    "fence_cta",
    "fence_gpu",
    "fence_sys",
    "atom_add",
    "warp_any",
    "warp_all",
    "shuffle_elect",
    "alloc_symmetric",
]

uint32 = DataType("uint32")

_ST_SEMS = ("weak", "volatile", "relaxed", "release")
_LD_SEMS = ("weak", "volatile", "relaxed", "acquire")
_LOCAL_SIDE = ("global", "symmetric", "shared", "shared.dyn")
_FLAG_DTYPES = ("int32", "uint32", "int64", "uint64")


def _copy(src: Any, dst: Any, size: Any, pe: Any, scope: str, put: bool) -> None:
    what = f"T.{'put' if put else 'get'}_{scope}"
    b = in_kernel(what)
    s, d = element(src, f"{what} src"), element(dst, f"{what} dst")
    pe_name = "dst_pe" if put else "src_pe"
    peer = peer_rank(pe, f"{what} {pe_name}")
    for load, side in ((s, "src"), (d, "dst")):
        if load.buffer.scope not in _LOCAL_SIDE:
            raise BuildError(
                f"{what}: {side} `{load.buffer.name}` is in {load.buffer.scope} memory, which a "
                f"{scope} cannot copy cooperatively; use global, symmetric or shared memory"
            )
    if peer is not None:
        require_symmetric(d if put else s, what, f"the remote side ({'dst' if put else 'src'})")
    if s.buffer.dtype != d.buffer.dtype:
        raise DTypeError(
            f"{what}: src `{s.buffer.name}` is {s.buffer.dtype} but dst `{d.buffer.name}` is "
            f"{d.buffer.dtype}; a remote copy moves bytes and needs one dtype"
        )
    if isinstance(size, bool) or not isinstance(size, (int, PrimExpr)):
        raise BuildError(f"{what}: size must be a number of elements, got {size!r}")
    n = convert(size)
    if not n.dtype.is_int or n.dtype.lanes != 1:
        raise DTypeError(f"{what}: size `{n}` must be an integer, got {n.dtype}")
    count = const_value(n)
    if count is not None:
        if count < 0:
            raise BuildError(f"{what}: size {count} is negative")
        for load, side in ((s, "src"), (d, "dst")):
            total, off = numel(load.buffer), flat_offset(load)
            if total is not None and off is not None and off + count > total:
                raise BuildError(
                    f"{what}: copying {count} elements from {side} `{load.buffer.name}` element "
                    f"{off} runs past its end ({total} elements)"
                )
    if n.dtype not in (int32, int64):
        n = cast(int64, n)
    op = (PutOp if put else GetOp)(s, d, n, peer, Spread(scope))
    b.frame.emit(TileOpStmt(op))


def put_warp(src: Any, dst: Any, size: Any, dst_pe: Any = None) -> None:
    """The calling warp copies `size` elements of local `src` to `dst` on rank `dst_pe`."""
    _copy(src, dst, size, dst_pe, "warp", put=True)


def put_block(src: Any, dst: Any, size: Any, dst_pe: Any = None) -> None:
    """The calling block copies `size` elements of local `src` to `dst` on rank `dst_pe`."""
    _copy(src, dst, size, dst_pe, "block", put=True)


def get_warp(src: Any, dst: Any, size: Any, src_pe: Any = None) -> None:
    """The calling warp copies `size` elements of `src` on rank `src_pe` into local `dst`."""
    _copy(src, dst, size, src_pe, "warp", put=False)


def get_block(src: Any, dst: Any, size: Any, src_pe: Any = None) -> None:
    """The calling block copies `size` elements of `src` on rank `src_pe` into local `dst`."""
    _copy(src, dst, size, src_pe, "block", put=False)


def st(
    dst: Any, value: Any, scope: Any = None, sem: str = "weak", na: bool = False, dst_pe: Any = None
) -> None:
    """One store of `value` into `dst` (at dst's dtype) with a memory order, by every thread."""
    b = in_kernel("T.st")
    d = element(dst, "T.st dst")
    sem, scope = order("T.st", sem, scope, _ST_SEMS, "release")
    peer = peer_rank(dst_pe, "T.st dst_pe")
    if peer is not None:
        require_symmetric(d, "T.st", "the remote destination")
    hints("T.st", d, sem, peer is not None, bool(na), False)
    if d.buffer.scope in ("local", "local.var", "local.fragment"):
        raise BuildError(
            f"T.st: `{d.buffer.name}` is in registers ({d.buffer.scope}); store to it directly"
        )
    v = store_value(d.buffer, value)
    b.frame.emit(TileOpStmt(StOp(d, v, sem, scope, bool(na), peer)))


def ld(
    src: Any,
    value: Any = None,
    scope: Any = None,
    sem: str = "weak",
    na: bool = False,
    nc: bool = False,
    src_pe: Any = None,
) -> PrimExpr:
    """One load of `src` with a memory order, by every thread, into the element `value` (a
    `T.alloc_var` or `buf[i]`); returns the loaded value as an expression (with `value` None, a
    fresh variable holds it)."""
    b = in_kernel("T.ld")
    s = element(src, "T.ld src")
    sem, scope = order("T.ld", sem, scope, _LD_SEMS, "acquire")
    peer = peer_rank(src_pe, "T.ld src_pe")
    if peer is not None:
        require_symmetric(s, "T.ld", "the remote source")
    hints("T.ld", s, sem, peer is not None, bool(na), bool(nc))
    if s.buffer.scope in ("local", "local.var", "local.fragment"):
        raise BuildError(
            f"T.ld: `{s.buffer.name}` is in registers ({s.buffer.scope}); read it directly"
        )
    if value is None:
        value = alloc_var(s.buffer.dtype)
    v = element(value, "T.ld value")
    b.frame.emit(TileOpStmt(LdOp(s, v, sem, scope, bool(na), bool(nc), peer)))
    return v


def _wait(relation: str, flag: Any, value: Any, peer: Any, timeout_cycles: Any, scope: Any) -> None:
    what = f"T.wait_{relation}"
    b = in_kernel(what)
    f = element(flag, f"{what} flag")
    if f.buffer.dtype.name not in _FLAG_DTYPES:
        raise DTypeError(
            f"{what}: flag `{f.buffer.name}` is {f.buffer.dtype}; flags are "
            f"{', '.join(_FLAG_DTYPES)}"
        )
    pe = peer_rank(peer, f"{what} peer")
    if pe is not None:
        require_symmetric(f, what, "a flag read on a peer")
    if scope is None:
        # A flag in symmetric memory may be written by a peer GPU: only a system-scope acquire
        # synchronizes with that peer's system-scope release.
        scope = "sys" if pe is not None or f.buffer.scope == "symmetric" else "gpu"
    elif scope not in SCOPES:
        raise BuildError(f"{what}: scope must be one of {', '.join(SCOPES)}, got {scope!r}")
    if timeout_cycles is None:
        cycles = 0
    elif (
        isinstance(timeout_cycles, bool)
        or not isinstance(timeout_cycles, int)
        or timeout_cycles <= 0
    ):
        raise BuildError(
            f"{what}: timeout_cycles must be a positive int (clock cycles) or None, got "
            f"{timeout_cycles!r}"
        )
    else:
        cycles = timeout_cycles
    v = store_value(f.buffer, value)
    b.frame.emit(TileOpStmt(WaitOp(f, Relation(relation), v, pe, MemoryScope(scope), cycles)))


def _make_wait(relation: str) -> Any:
    def wait(
        flag: Any, value: Any, peer: Any = None, timeout_cycles: Any = None, scope: Any = None
    ) -> None:
        _wait(relation, flag, value, peer, timeout_cycles, scope)

    wait.__name__ = f"wait_{relation}"
    wait.__doc__ = (
        f"Every calling thread spins until `flag` (on rank `peer`, or this rank) is "
        f"`{relation}` `value`, reading it with acquire semantics (system scope for symmetric or "
        f"remote flags, GPU scope otherwise). With `timeout_cycles` the thread prints the flag, "
        f"the value it saw, the expected value and the rank, then traps; without, it spins."
    )
    return wait


wait_eq = _make_wait("eq")
wait_ne = _make_wait("ne")
wait_ge = _make_wait("ge")
wait_le = _make_wait("le")
wait_gt = _make_wait("gt")
wait_lt = _make_wait("lt")
assert set(RELATIONS) == {"eq", "ne", "ge", "le", "gt", "lt"}


def _barrier(barrier: Any, fence: bool, timeout_cycles: Any, what: str) -> None:
    b = in_kernel(what)
    bar = element(barrier, f"{what} barrier")
    require_symmetric(bar, what, "the barrier buffer")
    if bar.buffer.dtype.name != "int32":
        raise DTypeError(
            f"{what}: the barrier buffer `{bar.buffer.name}` must be int32, got {bar.buffer.dtype}"
        )
    total, off = numel(bar.buffer), flat_offset(bar)
    need = WORLD.hint
    if need is not None and total is not None and off is not None and total - off < need:
        raise BuildError(
            f"{what}: the barrier `{bar.buffer.name}` needs {need} int32 slots (one per rank) "
            f"from element {off}, but has {total - off}"
        )
    if timeout_cycles is not None and (
        isinstance(timeout_cycles, bool)
        or not isinstance(timeout_cycles, int)
        or timeout_cycles <= 0
    ):
        raise BuildError(
            f"{what}: timeout_cycles must be a positive int or None, got {timeout_cycles!r}"
        )
    b.frame.emit(TileOpStmt(BarrierBlocksOp(bar, fence, timeout_cycles or 0)))


def barrier_blocks(barrier: Any, timeout_cycles: Any = None) -> None:
    """Every block of every rank waits for all the others; writes before it (puts included) are
    visible everywhere after it. `barrier`: int32 symmetric, >= num_ranks elements, zeroed once
    (`dist.zeros`); reusable without reset, any number of blocks (all resident at once)."""
    _barrier(barrier, True, timeout_cycles, "T.barrier_blocks")


def sync_blocks(barrier: Any, timeout_cycles: Any = None) -> None:
    """`barrier_blocks` without the system-scope fences: orders execution, not earlier writes."""
    _barrier(barrier, False, timeout_cycles, "T.sync_blocks")


def alloc_symmetric(name: str, shape: Any, dtype: Any) -> Buffer:
    """A symmetric tensor parameter: every rank passes its copy, allocated at the same offset of
    its symmetric heap (`tsir.runtime.dist.empty/zeros`). Same as
    T.param(..., scope="symmetric")."""
    as_dtype(dtype)
    return param(name, shape, dtype, scope="symmetric")


_ = address_of


class _DistLangModule(types.ModuleType):
    """`dist_lang.world_size_hint`: the world size of the group `tsir.runtime.dist.init()` formed
    in this process (None before), set by the runtime so constant peers and barrier sizes can be
    checked when a kernel is built. It lives in `dist_checks.WORLD`, which the checks read."""

    @property
    def world_size_hint(self) -> int | None:
        return WORLD.hint

    @world_size_hint.setter
    def world_size_hint(self, value: int | None) -> None:
        WORLD.hint = value


sys.modules[__name__].__class__ = _DistLangModule
