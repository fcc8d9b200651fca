"""Reference semantics of wgmma.h: entries of the one device-call table (device_calls.py).

wgmma is asynchronous and warpgroup-collective. Per warpgroup there is a queue: `wgmma_ss/rs`
appends an operation to the open batch (reading nothing yet), `wgmma_commit` closes the batch into
a group, `wgmma_wait<N>` retires all groups but the newest N, oldest first, and only then does
each operation read its operands (shared tiles through its descriptors, A registers) and write
its accumulator registers, `D = A * B^T + (scale_d ? D : 0)` in fp32 (products exact, one
rounding to fp32 per instruction). Until an operation retires:

- its accumulator registers may not be read or written, nor its A registers written (memory.py
  reports it, WgmmaHazardError);
- its shared operand bytes may not be written (hazards.py, also by TMA loads);
- a warpgroup's accumulator or A registers written by ordinary code since its last
  `wgmma_fence` may not feed a wgmma (the fence orders those writes before the async unit).

At issue the operand bytes are checked like a read by the async proxy: not the destination of a
TMA load still in flight, ordered after their writers (race detector), and, if written by generic
stores, fenced by `fence_proxy_async_shared` in the writer (ProxyFenceError). Descriptors are
decoded with wgmma_ref.py, so a wrong start, LBO, SBO or swizzle reads the wrong elements.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import ml_dtypes
import numpy as np

from ..expr import BufferLoad, Call
from .device_calls import device_call
from .errors import (
    InterpretUnsupportedError,
    MisalignedAccessError,
    OutOfBoundsError,
    UninitializedReadError,
    WgmmaHazardError,
)
from .hazards import ASYNC_WGMMA
from .hopper import hopper, lane_values, warpgroups
from .lanes import Mask
from .memory import Pointer, Region
from .wgmma_ref import (
    KINDS,
    a_fragment,
    d_fragment,
    decode,
    instruction_k,
    operand_addresses,
    parse_kind,
)

if TYPE_CHECKING:
    from .thread import ThreadExecutor

__all__ = ["WgmmaOp", "WgmmaQueues"]

_ZERO = np.zeros(1, dtype=np.int32)


@dataclass
class WgmmaOp:
    """One issued wgmma of one warpgroup, retired by a later wgmma_wait."""

    kind: int
    n: int
    wg: int
    lanes: np.ndarray  # the warpgroup's 128 lanes, in thread order
    stmt: int
    scale_d: bool
    d_region: Region
    d_col: int  # byte offset of d[0] in each lane's register row
    b_region: Region
    b_fi: np.ndarray  # (N, K, esize) byte offsets of B's elements
    a_region: Region
    a_fi: np.ndarray | None  # ss: (64, K, esize) shared byte offsets
    a_col: int  # rs: byte offset of a[0] in each lane's register row
    epoch: int  # the issuing warpgroup's first warp's own epoch (its reads are recorded as it)


class WgmmaQueues:
    def __init__(self, ex: ThreadExecutor):
        self.ex = ex
        self.open: dict[int, list[WgmmaOp]] = {}
        self.groups: dict[int, deque[list[WgmmaOp]]] = {}

    def commit(self, wg: int) -> None:
        self.groups.setdefault(wg, deque()).append(self.open.pop(wg, []))

    def wait(self, wg: int, n: int) -> None:
        q = self.groups.get(wg)
        while q and len(q) > n:
            for op in q.popleft():
                self.retire(op)

    def retire(self, op: WgmmaOp) -> None:
        ctx = self.ex.ctx
        a_dt, b_dt = KINDS[op.kind]
        k = instruction_k(op.kind)
        rows_d, cols_d = d_fragment(op.n)
        if op.a_fi is not None:
            a = op.a_region.data.reshape(-1)[op.a_fi.reshape(-1)].view(a_dt).reshape(64, k)
        else:
            nb = 16
            raw = op.a_region.data[op.lanes][:, op.a_col : op.a_col + nb]
            self._initialised(op, op.a_region, op.a_col, nb, "A operand")
            vals = np.ascontiguousarray(raw).view(a_dt)
            ra, ca = a_fragment(a_dt.itemsize)
            a = np.zeros((64, k), dtype=a_dt)
            a[ra, ca] = vals
        b = op.b_region.data.reshape(-1)[op.b_fi.reshape(-1)].view(b_dt).reshape(op.n, k)
        nbytes = op.n * 2
        acc = np.zeros((64, op.n), dtype=np.float64)
        if op.scale_d:
            self._initialised(op, op.d_region, op.d_col, nbytes, "accumulator")
            old = np.ascontiguousarray(op.d_region.data[op.lanes][:, op.d_col : op.d_col + nbytes])
            acc[rows_d, cols_d] = old.view(np.float32)
        acc = acc + a.astype(np.float64) @ b.astype(np.float64).T
        out = np.ascontiguousarray(acc.astype(np.float32)[rows_d, cols_d]).view(np.uint8)
        op.d_region.data[op.lanes[:, None], op.d_col + np.arange(nbytes)] = out
        r = op.d_region
        d_cols = op.d_col + np.arange(nbytes)
        if r.init is not None:
            r.init[op.lanes[:, None], d_cols] = True
        if r.acc_busy is not None:
            r.acc_busy[op.lanes[:, None], d_cols] -= 1
        if op.a_fi is None and op.a_region.a_busy is not None:
            op.a_region.a_busy[op.lanes[:, None], op.a_col + np.arange(16)] -= 1
        for region, fi in ((op.b_region, op.b_fi), (op.a_region, op.a_fi)):
            if (
                fi is not None
                and region.shadow is not None
                and region.shadow.async_reads is not None
            ):
                region.shadow.end_async_read(fi.reshape(-1))
        # The other warps of the warpgroup learn that the operation's reads are over.
        warps = np.unique(ctx.lanes.warp_of_lane[op.lanes])
        w0 = warps[:1]
        col = ctx.local_warp(w0)[0]
        ctx.vc[warps, col] = np.maximum(ctx.vc[warps, col], op.epoch)

    def _initialised(self, op: WgmmaOp, r: Region, col: int, nbytes: int, role: str) -> None:
        ctx = self.ex.ctx
        if r.init is None or not ctx.check:
            return
        ok = r.init[op.lanes][:, col : col + nbytes]
        if ok.all():
            return
        row, c = (int(x[0]) for x in np.nonzero(~ok))
        raise UninitializedReadError(
            f"a wgmma reads its {role} register `{r.name}` byte {col + c} (retired at this "
            f"wgmma_wait), which the thread never wrote{ctx.where()}"
            + (" (scale_d = 0 does not read the accumulator)" if role == "accumulator" else ""),
            accesses=[
                ctx.access("wgmma issued", [int(op.lanes[row])], ctx.stmt_of(op.stmt)),
                ctx.access("wgmma_wait", [int(op.lanes[row])]),
            ],
            buffer=r.name,
        )

    def finish(self) -> None:
        ctx = self.ex.ctx
        pending = [(wg, ops) for wg, ops in self.open.items() if ops]
        pending += [(wg, g) for wg, q in self.groups.items() for g in q if g]
        if pending and ctx.check:
            wg, ops = pending[0]
            raise WgmmaHazardError(
                f"the block ends with wgmma operations of warpgroup {wg} that no wgmma_wait "
                f"retired{ctx.where()}: their accumulators are never written",
                accesses=[ctx.access("wgmma issued", ops[0].lanes[:1], ctx.stmt_of(ops[0].stmt))],
            )
        for wg in list(self.groups):
            self.wait(wg, 0)


# -- issuing ---------------------------------------------------------------------------------------


def _flag(text: str, what: str) -> bool:
    t = text.strip()
    if t in ("0", "false"):
        return False
    if t in ("1", "true"):
        return True
    raise InterpretUnsupportedError(f"{what}: a transpose flag is 0 or 1, got {text!r}")


def _wg_uniform(ex: ThreadExecutor, e: Any, mask: Mask, lanes: np.ndarray, what: str) -> int:
    v = ex.ev.eval(e, mask)
    if isinstance(v, Pointer):
        raise InterpretUnsupportedError(f"{what}: `{e}` is an address, a value was expected")
    vals = np.broadcast_to(v, (mask.n,))[lanes]
    if (vals != vals[0]).any():
        k = int(np.flatnonzero(vals != vals[0])[0])
        raise WgmmaHazardError(
            f"{what}: `{e}` differs between the threads of the warpgroup ({int(vals[0])} and "
            f"{int(vals[k])}){ex.ctx.where()}: it must be the same in all 128",
            accesses=[ex.ctx.access(what, lanes[[0, k]])],
        )
    return int(vals[0])


def _registers(
    ex: ThreadExecutor, e: Any, mask: Mask, lanes: np.ndarray, nbytes: int, what: str
) -> tuple[Region, int]:
    """The register row offset of `nbytes` bytes at `address_of(reg[i])`, the same i in every
    lane of the warpgroup."""
    p = ex.ev.eval(e, mask)
    if not isinstance(p, Pointer) or p.view.region.kind != "local":
        raise InterpretUnsupportedError(
            f"{what}: `{e}` must be address_of a register array element"
        )
    elem = np.broadcast_to(p.elem, (mask.n,))[lanes]
    if (elem != elem[0]).any():
        raise WgmmaHazardError(
            f"{what}: `{e}` names different registers in different threads{ex.ctx.where()}",
            accesses=[ex.ctx.access(what, lanes[:1])],
        )
    view = p.view
    start = view.byte_offset + int(elem[0]) * view.itemsize
    if start < view.byte_offset or start + nbytes > view.byte_offset + view.span * view.itemsize:
        raise OutOfBoundsError(
            f"{what}: {nbytes} register bytes from `{e}` run past the end of `{view.name}` "
            f"({view.span} x {view.buffer.dtype}){ex.ctx.where()}",
            accesses=[ex.ctx.access(what, lanes[:1])],
            buffer=view.name,
        )
    return view.region, start


def _operand(
    ex: ThreadExecutor, desc: int, rows: int, k: int, dt: np.dtype, k_major: bool, what: str
) -> tuple[Region, np.ndarray]:
    d = decode(desc)
    if d.reserved:
        raise WgmmaHazardError(
            f"{what}: descriptor {desc:#018x} has reserved bits set ({d.reserved:#x})"
            f"{ex.ctx.where()}",
            accesses=[ex.ctx.access(what, None)],
        )
    if d.base_offset:
        raise InterpretUnsupportedError(
            f"{what}: descriptor {desc:#018x} has a base offset ({d.base_offset}); tsir's "
            "operands start on their swizzle pattern's alignment and wgmma_desc leaves it 0"
        )
    addr = operand_addresses(d, rows, k, dt.itemsize, k_major)
    lo, hi = int(addr.min()), int(addr.max()) + dt.itemsize
    region, off = hopper(ex, what).space.locate(ex, lo, hi - lo, what)
    rel = addr - (lo - off)
    return region, rel[..., None] + np.arange(dt.itemsize)


def _async_read(ex: ThreadExecutor, region: Region, fi: np.ndarray, lane: int, what: str) -> None:
    sh = region.shadow
    ctx = ex.ctx
    if sh is None or not ctx.check:
        return
    flat = fi.reshape(-1)
    sh.read(ctx, flat, np.full(flat.shape[0], lane, dtype=np.int64), region.name, 0)
    sh.check_fenced(ctx, flat, lane, what, region.name, 0)
    sh.begin_async_read(flat, ASYNC_WGMMA, ctx.stmt_id(), lane)


def _check_fenced_registers(
    ex: ThreadExecutor, r: Region, lanes: np.ndarray, col: int, nbytes: int, role: str, what: str
) -> None:
    ctx = ex.ctx
    if r.wfence is None or not ctx.check:
        return
    last = r.wfence[lanes][:, col : col + nbytes]
    bad = last == ctx.wgmma_fences[lanes][:, None]
    if bad.any():
        row, c = (int(x[0]) for x in np.nonzero(bad))
        raise WgmmaHazardError(
            f"{what}: its {role} register `{r.name}` (byte {col + c}) was written by ordinary code "
            f"after the warpgroup's last wgmma_fence{ctx.where()}: call tsir::wgmma_fence() "
            "between those writes and the wgmma",
            accesses=[ctx.access(what, [int(lanes[row])])],
            buffer=r.name,
        )


def _mark(r: Region, lanes: np.ndarray, col: int, nbytes: int, acc: bool, stmt: int) -> None:
    if r.acc_busy is None:
        r.acc_busy = np.zeros(r.data.shape, dtype=np.int16)
        r.a_busy = np.zeros(r.data.shape, dtype=np.int16)
        r.busy_stmt = np.full(r.data.shape, -1, dtype=np.int32)
    assert r.a_busy is not None and r.busy_stmt is not None
    cols = col + np.arange(nbytes)
    (r.acc_busy if acc else r.a_busy)[lanes[:, None], cols] += 1
    r.busy_stmt[lanes[:, None], cols] = stmt


def _issue(ex: ThreadExecutor, e: Call, targs: tuple[str, ...], mask: Mask, rs: bool) -> Any:
    name = f"wgmma_{'rs' if rs else 'ss'}<{', '.join(targs)}>"
    h = hopper(ex, name)
    want = 3 if rs else 4
    if not 2 <= len(targs) <= want:
        raise InterpretUnsupportedError(f"{e.op}: template arguments KIND, N and the transposes")
    kind = parse_kind(targs[0])
    if kind is None:
        raise InterpretUnsupportedError(f"{e.op}: unknown KIND {targs[0]!r} (tsir::WgmmaKind)")
    n = int(targs[1])
    flags = [_flag(t, e.op) for t in targs[2:]] + [False] * (want - len(targs))
    trans_a, trans_b = (False, flags[0]) if rs else (flags[0], flags[1])
    if n % 8 or not 8 <= n <= 256:
        raise InterpretUnsupportedError(f"{e.op}: wgmma N is 8..256 in steps of 8")
    if kind > 1 and (trans_a or trans_b):
        raise InterpretUnsupportedError(f"{e.op}: 8-bit wgmma operands must be K-major")
    a_dt, b_dt = KINDS[kind]
    k = instruction_k(kind)
    ctx = ex.ctx
    stmt = ctx.stmt_id()
    args = e.args
    for wg, lanes in warpgroups(ex, mask, name):
        d_region, d_col = _registers(ex, args[0], mask, lanes, n * 2, name)
        if not rs:
            desc_a = _wg_uniform(ex, args[1], mask, lanes, name)
            a_region, a_fi = _operand(ex, desc_a, 64, k, a_dt, not trans_a, f"{name} operand A")
            a_col = 0
        else:
            a_region, a_col = _registers(ex, args[1], mask, lanes, 16, name)
            a_fi = None
        desc_b = _wg_uniform(ex, args[2], mask, lanes, name)
        b_region, b_fi = _operand(ex, desc_b, n, k, b_dt, not trans_b, f"{name} operand B")
        scale_d = _wg_uniform(ex, args[3], mask, lanes, name) != 0
        lane0 = int(lanes[0])
        if a_fi is not None:
            _async_read(ex, a_region, a_fi, lane0, f"{name} operand A")
        _async_read(ex, b_region, b_fi, lane0, f"{name} operand B")
        _check_fenced_registers(ex, d_region, lanes, d_col, n * 2, "accumulator", name)
        if rs:
            _check_fenced_registers(ex, a_region, lanes, a_col, 16, "A", name)
        _mark(d_region, lanes, d_col, n * 2, True, stmt)
        if rs:
            _mark(a_region, lanes, a_col, 16, False, stmt)
        w0 = ctx.lanes.warp_of_lane[lanes[:1]]
        epoch = int(ctx.vc[w0, ctx.local_warp(w0)][0])
        op = WgmmaOp(
            kind,
            n,
            wg,
            lanes,
            stmt,
            scale_d,
            d_region,
            d_col,
            b_region,
            b_fi,
            a_region,
            a_fi,
            a_col,
            epoch,
        )
        h.wgmma.open.setdefault(wg, []).append(op)
    return _ZERO


@device_call("tsir.wgmma.wgmma_ss")
def _wgmma_ss(ex: ThreadExecutor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    """wgmma_ss<KIND, N, TRANS_A, TRANS_B>(&d[0], desc_a, desc_b, scale_d)."""
    return _issue(ex, e, targs, mask, rs=False)


@device_call("tsir.wgmma.wgmma_rs")
def _wgmma_rs(ex: ThreadExecutor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    """wgmma_rs<KIND, N, TRANS_B>(&d[0], &a[0], desc_b, scale_d): A's four registers per thread."""
    return _issue(ex, e, targs, mask, rs=True)


@device_call("tsir.wgmma.wgmma_fence")
def _wgmma_fence(ex: ThreadExecutor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    """wgmma.fence.sync.aligned: earlier register writes are ordered before later wgmmas."""
    hopper(ex, "wgmma_fence")
    for _, lanes in warpgroups(ex, mask, "wgmma_fence"):
        ex.ctx.wgmma_fences[lanes] += 1
    return _ZERO


@device_call("tsir.wgmma.wgmma_commit")
def _wgmma_commit(ex: ThreadExecutor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    """wgmma.commit_group.sync.aligned: the open batch becomes a group."""
    h = hopper(ex, "wgmma_commit")
    for wg, _ in warpgroups(ex, mask, "wgmma_commit"):
        h.wgmma.commit(wg)
    return _ZERO


@device_call("tsir.wgmma.wgmma_wait")
def _wgmma_wait(ex: ThreadExecutor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    """wgmma.wait_group.sync.aligned N: all but the N newest groups retire (oldest first)."""
    h = hopper(ex, "wgmma_wait")
    if len(targs) != 1 or not targs[0].isdigit() or int(targs[0]) > 7:
        raise InterpretUnsupportedError(f"{e.op}: wgmma_wait takes N in 0..7")
    for wg, _ in warpgroups(ex, mask, f"wgmma_wait<{targs[0]}>"):
        h.wgmma.wait(wg, int(targs[0]))
    return _ZERO


@device_call("tsir.wgmma.wgmma_fence_operand")
@device_call("tsir.wgmma.wgmma_fence_operands")
@device_call("tsir.wgmma.wgmma_fence_operands_u32")
def _fence_operands(ex: ThreadExecutor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    """A compiler-only fence (an empty asm with the registers as operands): no instruction, no
    access; the argument (`acc[i]`, or `address_of(acc[i])` for the array form) is not read."""
    hopper(ex, e.op)
    arg = e.args[0] if e.args else None
    ok = isinstance(arg, BufferLoad) or (
        isinstance(arg, Call) and arg.op == "address_of" and isinstance(arg.args[0], BufferLoad)
    )
    if not ok:
        raise InterpretUnsupportedError(f"`{e}`: pass the register (acc[i] or address_of(acc[i]))")
    return _ZERO


@device_call("tsir.wgmma.wgmma_desc")
def _wgmma_desc(ex: ThreadExecutor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    """The 64-bit matrix descriptor of (shared address, LBO, SBO, layout type)."""
    addr, lbo, sbo, swz = (ex.ev.eval(a, mask).astype(np.uint64) for a in e.args)
    m18 = np.uint64(0x3FFFF)
    return (
        ((addr & m18) >> np.uint64(4))
        | (((lbo & m18) >> np.uint64(4)) << np.uint64(16))
        | (((sbo & m18) >> np.uint64(4)) << np.uint64(32))
        | ((swz & np.uint64(3)) << np.uint64(62))
    )


@device_call("tsir.wgmma.wgmma_desc_advance")
def _wgmma_desc_advance(ex: ThreadExecutor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    """desc + (bytes >> 4): the start address moved by `bytes`."""
    desc = ex.ev.eval(e.args[0], mask).astype(np.uint64)
    nbytes = ex.ev.eval(e.args[1], mask).astype(np.uint64)
    return desc + (nbytes >> np.uint64(4))


def _pack(ex: ThreadExecutor, e: Call, mask: Mask, dt: Any) -> Any:
    lo = ex.ev.eval(e.args[0], mask).astype(np.float32).astype(dt).view(np.uint16)
    hi = ex.ev.eval(e.args[1], mask).astype(np.float32).astype(dt).view(np.uint16)
    return lo.astype(np.uint32) | (hi.astype(np.uint32) << np.uint32(16))


@device_call("tsir.wgmma.pack_half2")
def _pack_half2(ex: ThreadExecutor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    """cvt.rn.f16x2.f32: two floats as one 32-bit register of halves (low half = lo)."""
    return _pack(ex, e, mask, np.float16)


@device_call("tsir.wgmma.pack_bfloat162")
def _pack_bfloat162(ex: ThreadExecutor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    return _pack(ex, e, mask, ml_dtypes.bfloat16)


def _stmatrix(ex: ThreadExecutor, e: Call, mask: Mask, trans: bool) -> Any:
    what = "stmatrix_x4_trans" if trans else "stmatrix_x4"
    h = hopper(ex, what)
    ex.full_warps(mask, what)
    ctx = ex.ctx
    addrs = lane_values(ex, e.args[0], mask).astype(np.int64).reshape(-1, 32)
    regs = np.stack([lane_values(ex, a, mask).astype(np.uint32) for a in e.args[1:5]], axis=-1)
    halves = regs.reshape(-1, 32, 4).view(np.uint16).reshape(-1, 32, 4, 2)
    lanes = mask.idx.reshape(-1, 32)
    j = np.arange(4)[:, None, None]
    r = np.arange(8)[None, :, None]
    c = np.arange(8)[None, None, :]
    if trans:
        src_lane, half = 4 * c + r // 2, r % 2 + 0 * c
    else:
        src_lane, half = 4 * r + c // 2, c % 2 + 0 * r
    for w in range(lanes.shape[0]):
        rows = halves[w][src_lane, j + 0 * src_lane, half]  # (4, 8, 8): matrix, row, column
        dst = addrs[w].reshape(4, 8)  # lane 8j + r gives row r of matrix j
        if (dst % 16).any():
            bad = int(np.flatnonzero(dst.reshape(-1) % 16)[0])
            raise MisalignedAccessError(
                f"{what}: row address {int(dst.reshape(-1)[bad]):#x} is not 16-byte aligned"
                f"{ctx.where()}",
                accesses=[ctx.access(what, [int(lanes[w][bad])])],
            )
        for q in range(32):
            region, off = h.space.locate(ex, int(dst.reshape(-1)[q]), 16, what)
            fi = off + np.arange(16)
            if region.shadow is not None and ctx.check:
                region.shadow.write(
                    ctx, fi, np.full(16, int(lanes[w][q]), dtype=np.int64), region.name, 0
                )
            region.data[0, fi] = np.ascontiguousarray(rows[q // 8, q % 8]).view(np.uint8)
    return _ZERO


@device_call("tsir.wgmma.stmatrix_x4")
def _stmatrix_x4(ex: ThreadExecutor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    """stmatrix.m8n8.x4.b16: register j of lane t holds (t / 4, 2 (t % 4) + {0,1}) of matrix j;
    lane 8j + r gives the address of row r of matrix j."""
    return _stmatrix(ex, e, mask, trans=False)


@device_call("tsir.wgmma.stmatrix_x4_trans")
def _stmatrix_x4_trans(ex: ThreadExecutor, e: Call, targs: tuple[str, ...], mask: Mask) -> Any:
    """The same with .trans: each matrix is stored transposed."""
    return _stmatrix(ex, e, mask, trans=True)
