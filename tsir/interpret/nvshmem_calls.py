"""Reference semantics of the NVSHMEM device calls tsir emits (`T.nvshmem.*`, op
"nvshmem.<C name>"),
entries of the one device-call table. Sizes are bytes; a remote address is the same symmetric
object on PE `pe` (every parameter exists on every rank here). Warp- and block-scoped variants are
collective: every lane of the warp / thread of the block calls with the same arguments, and the
operation happens once for the group. `_nbi` calls complete at once (sequential consistency), so
quiet and fence have nothing to do."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..expr import Call
from .device_calls import device_call
from .dist_calls import _flag_wait, _load, _ptr, _store, _wait, _world, copy_bytes, remote_view
from .errors import InterpretUnsupportedError
from .lanes import Mask
from .memory import Pointer
from .report import describe_stmt

if TYPE_CHECKING:
    from .executor import Executor

_ZERO = np.zeros(1, dtype=np.int32)
_CMP = {
    0: ("==", np.equal),
    1: ("!=", np.not_equal),
    2: (">", np.greater),
    3: ("<=", np.less_equal),
    4: ("<", np.less),
    5: (">=", np.greater_equal),
}
_TYPENAMES = (
    "float",
    "double",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
)


def _groups(ex: Executor, mask: Mask, scope: str, what: str) -> list[np.ndarray]:
    lm = ex.ctx.lanes
    if scope == "thread":
        return [np.array([x]) for x in mask.idx.tolist()]
    if scope == "warp":
        ex.full_warps(mask, what)
        key = lm.warp_of_lane
    else:
        ex.block_barrier(mask, what, sync=False)
        key = lm.block_of_lane
    return [mask.idx[key[mask.idx] == k] for k in np.unique(key[mask.idx]).tolist()]


def _uniform(ex: Executor, lanes: np.ndarray, values: list[np.ndarray], what: str) -> list[int]:
    out = []
    for v in values:
        b = np.broadcast_to(v, (ex.ctx.lanes.n,))[lanes]
        if (b != b[0]).any():
            raise InterpretUnsupportedError(
                f"{what}: the threads of one group pass different arguments"
            )
        out.append(int(b[0]))
    return out


def _at(ex: Executor, p: Pointer, pe: int) -> Pointer:
    return Pointer(remote_view(ex, p.view, pe), p.elem, p.index)


def _rma(name: str, scope: str, put: bool, signal: bool) -> Callable[..., Any]:
    def fn(ex: Executor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
        dst = _ptr(ex, e.args[0], mask, name)
        src = _ptr(ex, e.args[1], mask, name)
        rest = [ex.ev.eval(a, mask) for a in e.args[2:]]
        sig = None
        if signal:
            sig = _ptr(ex, e.args[3], mask, name)
            rest = [rest[0], rest[2], rest[3], rest[4]]  # nbytes, signal, sig_op, pe
        for lanes in _groups(ex, mask, scope, name):
            vals = _uniform(ex, lanes, rest, name)
            nbytes, pe = vals[0], vals[-1]
            lead = int(lanes[0])
            d = _at(ex, dst, pe) if put else dst
            s = src if put else _at(ex, src, pe)
            if nbytes > 0:
                copy_bytes(ex, d, s, nbytes, lead, what=name)
            if sig is not None:
                _signal(ex, _at(ex, sig, pe), vals[1], vals[2], lead)
        return _ZERO

    fn.__doc__ = (
        f"{name}: {'put to' if put else 'get from'} PE pe{', then signal' if signal else ''}."
    )
    return fn


def _signal(ex: Executor, sig: Pointer, value: int, op: int, lane: int) -> None:
    one = Mask(np.arange(ex.ctx.lanes.n) == lane)
    cur = _load(ex, sig, one)[lane]
    new = value if op == 9 else (int(cur) + value) & 0xFFFFFFFFFFFFFFFF
    if op not in (9, 10):
        raise InterpretUnsupportedError(f"NVSHMEM signal op {op}")
    _store(ex, sig, np.array([new], dtype=np.uint64), one)


for _base in ("putmem", "putmem_nbi", "getmem", "getmem_nbi", "putmem_signal", "putmem_signal_nbi"):
    for _scope in ("thread", "warp", "block"):
        _name = f"nvshmem_{_base}" if _scope == "thread" else f"nvshmemx_{_base}_{_scope}"
        device_call(f"nvshmem.{_name}")(
            _rma(_name, _scope, _base.startswith("put"), "signal" in _base)
        )


@device_call("nvshmem.nvshmem_my_pe")
def _my_pe(ex: Executor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    return np.array([_world(ex)[1]], dtype=np.int32)


@device_call("nvshmem.nvshmem_n_pes")
def _n_pes(ex: Executor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    return np.array([_world(ex)[2]], dtype=np.int32)


@device_call("nvshmem.nvshmemx_signal_op")
def _signal_op(ex: Executor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    """nvshmemx_signal_op(sig, signal, op, pe): set or add, on PE pe, by every calling thread."""
    sig = _ptr(ex, e.args[0], mask, "signal_op")
    vals = [np.broadcast_to(ex.ev.eval(a, mask), (mask.n,)) for a in e.args[1:]]
    for lane in mask.idx.tolist():
        _signal(ex, _at(ex, sig, int(vals[2][lane])), int(vals[0][lane]), int(vals[1][lane]), lane)
    return _ZERO


@device_call("nvshmem.nvshmem_signal_wait_until")
def _signal_wait_until(ex: Executor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    """nvshmem_signal_wait_until(sig, cmp, value): every calling thread waits on its local "
    "signal."""
    sig = _ptr(ex, e.args[0], mask, "signal_wait_until")
    cmp = int(ex.ev.eval(e.args[1], mask)[0])
    if cmp not in _CMP:
        raise InterpretUnsupportedError(f"nvshmem_signal_wait_until with comparison {cmp}")
    text, fn = _CMP[cmp]
    _flag_wait(ex, sig, ex.ev.eval(e.args[2], mask), fn, mask, text, 0)
    return _ZERO


def _p(ex: Executor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    """nvshmem_<T>_p(dst, value, pe): one element stored on PE pe, by every calling thread."""
    dst = _ptr(ex, e.args[0], mask, "p")
    v = ex.ev.eval(e.args[1], mask)
    pe = np.broadcast_to(ex.ev.eval(e.args[2], mask), (mask.n,))
    for q in np.unique(pe[mask.idx]).tolist():
        _store(ex, _at(ex, dst, int(q)), v, mask & (pe == q))
    return _ZERO


def _g(ex: Executor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    """nvshmem_<T>_g(src, pe): one element loaded from PE pe."""
    src = _ptr(ex, e.args[0], mask, "g")
    pe = np.broadcast_to(ex.ev.eval(e.args[1], mask), (mask.n,))
    out = np.zeros(mask.n, dtype=src.view.npdt)
    for q in np.unique(pe[mask.idx]).tolist():
        m = mask & (pe == q)
        out[m.idx] = _load(ex, _at(ex, src, int(q)), m)[m.idx]
    return out


for _t in _TYPENAMES:
    device_call(f"nvshmem.nvshmem_{_t}_p")(_p)
    device_call(f"nvshmem.nvshmem_{_t}_g")(_g)


@device_call("nvshmem.nvshmem_quiet")
@device_call("nvshmem.nvshmem_fence")
def _quiet(ex: Executor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    """quiet / fence: puts complete at once here."""
    return _ZERO


def _barrier_all(name: str, scope: str) -> Callable[..., Any]:
    def fn(ex: Executor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
        world, me, n = _world(ex)
        for _ in _groups(ex, mask, scope, name):
            if world is None:
                continue
            world.barrier_arrivals[me] += 1
            mine = world.barrier_arrivals[me]
            stmt = ex.ctx.stmt

            def check(mine: int = mine) -> bool:
                return min(world.barrier_arrivals) >= mine

            def describe(mine: int = mine, stmt: Any = stmt) -> str:
                late = [r for r in range(n) if world.barrier_arrivals[r] < mine]
                return f"rank {me}: {name} waits for PE(s) {late}\n      {describe_stmt(stmt)}"

            _wait(ex, check, describe)
        return _ZERO

    fn.__doc__ = f"{name}: every PE arrives, then all continue."
    return fn


for _base in ("barrier_all", "sync_all"):
    for _scope in ("thread", "warp", "block"):
        _name = f"nvshmem_{_base}" if _scope == "thread" else f"nvshmemx_{_base}_{_scope}"
        device_call(f"nvshmem.{_name}")(_barrier_all(_name, _scope))
