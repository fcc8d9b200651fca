"""Memory: regions of bytes, the buffer views over them, pointers, and checked loads and stores.

A `Region` is one allocation, as bytes, with one row per *group*: one row for global memory, one
per block for shared memory, one per lane for registers. A `View` is a buffer over a region (a
byte offset, a dtype, a shape; after PlanSharedMemory several views share the shared-memory pool).
Shared tiles that still carry a layout (`shared_layout_map`, before LowerSharedLayout) are indexed
through it, so a tile written element-wise and read by `gemm_ss` through swizzled byte addresses
agree, as they do on the GPU.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..buffer import Buffer
from .context import RunContext
from .errors import (
    InterpretUnsupportedError,
    MisalignedAccessError,
    OutOfBoundsError,
    TileSemanticsError,
    UninitializedReadError,
    WgmmaHazardError,
)
from .hazards import SharedShadow
from .lanes import Mask
from .values import broadcast_lanes, np_dtype

__all__ = ["Region", "View", "Pointer", "Memory", "POISON"]

# Fresh shared memory and registers hold 0xFF bytes (NaN for floats, -1 for signed ints), so a read
# of memory nothing wrote shows up in the result instead of passing as zero.
POISON = 0xFF
_GLOBAL_SCOPES = ("global", "symmetric")


class Region:
    """One allocation as bytes: `data[group, byte]` (rows padded to 16 bytes)."""

    def __init__(
        self,
        name: str,
        kind: str,
        nbytes: int,
        groups: int,
        group_of_lane: np.ndarray | None,
        data: np.ndarray | None = None,
        poison: bool = True,
    ):
        self.name = name
        self.kind = kind  # "global" | "shared" | "local"
        self.nbytes = nbytes
        if data is None:
            row = max(16, -(-nbytes // 16) * 16)
            data = np.full((groups, row), POISON if poison else 0, dtype=np.uint8)
        self.data = data
        self.row = data.shape[1]
        self.groups = data.shape[0]
        self.group_of_lane = group_of_lane  # None: one group for every lane
        self._typed: dict[Any, np.ndarray] = {}
        self.shadow: SharedShadow | None = None
        self.init: np.ndarray | None = None  # registers: which bytes each lane wrote
        self.divergent: str | None = None  # why this memory cannot be used here (tile level)
        # Registers of kernels that use wgmma (wgmma_calls.py): per byte, the pending wgmma
        # operations using it as accumulator / as A operand, the statement that issued the last
        # one, and the lane's wgmma.fence count at its last ordinary write (-1: none).
        self.acc_busy: np.ndarray | None = None
        self.a_busy: np.ndarray | None = None
        self.busy_stmt: np.ndarray | None = None
        self.wfence: np.ndarray | None = None

    def typed(self, npdt: np.dtype) -> np.ndarray | None:
        """The rows viewed as `npdt` elements, or None when the row size is not a multiple."""
        v = self._typed.get(npdt)
        if v is None:
            if self.row % npdt.itemsize:
                return None
            v = self.data.view(npdt)
            self._typed[npdt] = v
        return v

    def groups_of(self, lanes: np.ndarray) -> np.ndarray:
        if self.group_of_lane is None:
            return np.zeros(lanes.shape[0], dtype=np.int64)
        return self.group_of_lane[lanes]


class View:
    """A buffer bound to memory: `region` bytes from `byte_offset`, elements of `dtype`."""

    def __init__(
        self,
        buffer: Buffer,
        region: Region,
        byte_offset: int,
        shape: tuple[int, ...],
        strides: tuple[int, ...] | None = None,
        table: np.ndarray | None = None,
    ):
        self.buffer = buffer
        self.region = region
        self.byte_offset = byte_offset
        self.npdt = np_dtype(buffer.dtype)
        self.itemsize = self.npdt.itemsize
        self.shape = shape
        rm: list[int] = []
        acc = 1
        for d in reversed(shape):
            rm.append(acc)
            acc *= d
        self.row_major = tuple(reversed(rm))
        self.strides = strides if strides else self.row_major
        # Layout table: logical row-major offset -> physical element offset (swizzled shared tiles).
        self.table = table
        self.span = View.span_for(shape, self.strides, table)
        self.name = buffer.name

    @staticmethod
    def span_for(
        shape: tuple[int, ...], strides: tuple[int, ...] | None, table: np.ndarray | None
    ) -> int:
        """Elements from the first to one past the last that the buffer can address."""
        if table is not None:
            return int(table.max()) + 1 if table.size else 0
        if not all(shape):
            return 0
        if not strides:
            return int(np.prod(shape, dtype=np.int64))
        return 1 + sum((d - 1) * s for d, s in zip(shape, strides))

    @property
    def scope(self) -> str:
        return self.buffer.scope

    def offsets(self, idx: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        """(element offsets, out-of-bounds mask or None) of index arrays (broadcast together)."""
        if len(idx) != len(self.shape):
            raise InterpretUnsupportedError(
                f"`{self.name}` has {len(self.shape)} dimensions but is indexed with {len(idx)}"
            )
        if all(i.shape == (1,) for i in idx) and self.table is None:  # one element: Python ints
            off_i, bad = 0, False
            for i, ext, st in zip(idx, self.shape, self.strides):
                v = int(i[0])
                bad = bad or v < 0 or v >= ext
                off_i += v * st
            return np.array([off_i], dtype=np.int64), (np.ones(1, dtype=bool) if bad else None)
        if any(i.ndim == 2 for i in idx):  # scalar indices beside a vector (Ramp) index
            idx = [i[:, None] if i.ndim == 1 else i for i in idx]
        oob: np.ndarray | None = None
        off: Any = 0
        strides = self.row_major if self.table is not None else self.strides
        for i, ext, st in zip(idx, self.shape, strides):
            if i.dtype != np.int64:
                i = i.astype(np.int64)
            bad = (i < 0) | (i >= ext)
            if bad.any():
                oob = bad if oob is None else (oob | bad)
            off = off + i * st if st != 1 else off + i
        off = np.asarray(off, dtype=np.int64)
        if self.table is not None:
            off = self.table[np.where(oob, 0, off) if oob is not None else off]
        return off, oob


class Pointer:
    """`&buffer[index]` per lane: a view and element offsets (shape (1,) or (L,)); `rank` (per
    lane, or None for this rank's memory) makes it the same address in another rank's memory."""

    def __init__(
        self,
        view: View,
        elem: np.ndarray,
        index: tuple[np.ndarray, ...],
        rank: np.ndarray | None = None,
    ):
        self.view = view
        self.elem = elem
        self.index = index
        self.rank = rank

    def byte_addr(self) -> np.ndarray:
        return self.view.byte_offset + self.elem * self.view.itemsize


class Memory:
    """Loads, stores and atomics on views, with bounds, alignment and the detectors."""

    def __init__(self, ctx: RunContext, detect: bool):
        self.ctx = ctx
        self.detect = detect and ctx.check

    # -- shared helpers ----------------------------------------------------------------------------
    def guarded(self, view: View) -> bool:
        """Out-of-bounds accesses of `view` read zero / are dropped instead of being reported:
        global memory before LegalizeSafeMemoryAccess, and anything when the detectors are off."""
        return not self.ctx.check or (self.ctx.global_guard and view.scope in _GLOBAL_SCOPES)

    def per_lane(self, view: View) -> bool:
        r = view.region
        return r.group_of_lane is not None or (
            self.detect and (r.shadow is not None or r.init is not None)
        )

    def _oob(
        self,
        view: View,
        idx: list[np.ndarray],
        oob: np.ndarray,
        lanes: np.ndarray | None,
        what: str,
    ) -> None:
        rows = oob.reshape(oob.shape[0], -1)
        k = int(np.flatnonzero(rows.any(axis=1))[0])
        j = int(np.flatnonzero(rows[k])[0])
        point = []
        for i in idx:
            a = i if i.ndim == oob.ndim else i[:, None]
            a = np.broadcast_to(a, oob.shape).reshape(oob.shape[0], -1)
            point.append(int(a[min(k, a.shape[0] - 1), j]))
        who = [int(lanes[min(k, lanes.shape[0] - 1)])] if lanes is not None and lanes.size else None
        raise OutOfBoundsError(
            f"out-of-bounds {what} of `{view.name}`{point} ({view.scope}, shape "
            f"{list(view.shape)}){self.ctx.where()}",
            accesses=[self.ctx.access(what, who)],
            buffer=view.name,
        )

    def _bytes(self, view: View, off: np.ndarray) -> np.ndarray:
        return view.byte_offset + off * view.itemsize

    def _check_bytes(
        self,
        view: View,
        g: np.ndarray,
        byte: np.ndarray,
        lanes: np.ndarray,
        write: bool,
        atomic: bool = False,
    ) -> None:
        """Detectors on the bytes of one access per entry: registers written, races, cp.async."""
        r = view.region
        if r.init is None and r.shadow is None and r.wfence is None and r.acc_busy is None:
            return
        size = view.itemsize
        start = byte.reshape(byte.shape[0], -1)
        lanes_e = np.repeat(lanes, start.shape[1] * size)
        fi = ((g[:, None] * r.row + start)[:, :, None] + np.arange(size)).reshape(-1)
        if r.acc_busy is not None or r.wfence is not None:
            self._wgmma_registers(view, fi, lanes_e, write)
        if r.init is not None:
            flat = r.init.reshape(-1)
            if write:
                flat[fi] = True
            else:
                bad = ~flat[fi]
                if bad.any():
                    k = int(np.flatnonzero(bad)[0])
                    elem = (int(fi[k] % r.row) - view.byte_offset) // size
                    raise UninitializedReadError(
                        f"read of register `{view.name}` element {elem} ({view.scope}), which the "
                        f"reading thread never wrote{self.ctx.where()}",
                        accesses=[self.ctx.access("read", [int(lanes_e[k])])],
                        buffer=view.name,
                        address=elem * size,
                    )
        if r.shadow is not None:
            if write:
                r.shadow.write(self.ctx, fi, lanes_e, view.name, view.byte_offset, atomic=atomic)
            else:
                r.shadow.read(self.ctx, fi, lanes_e, view.name, view.byte_offset)

    def _wgmma_registers(
        self, view: View, fi: np.ndarray, lanes_e: np.ndarray, write: bool
    ) -> None:
        """Registers of a wgmma kernel: no access to a pending accumulator, no write of a pending
        A operand; ordinary writes are remembered for the wgmma_fence check."""
        r = view.region
        if r.acc_busy is not None and self.ctx.check:
            assert r.a_busy is not None and r.busy_stmt is not None
            bad = r.acc_busy.reshape(-1)[fi] > 0
            role = "accumulator"
            if write and not bad.any():
                bad = r.a_busy.reshape(-1)[fi] > 0
                role = "A operand"
            if bad.any():
                k = int(np.flatnonzero(bad)[0])
                elem = (int(fi[k] % r.row) - view.byte_offset) // view.itemsize
                stmt = self.ctx.stmt_of(int(r.busy_stmt.reshape(-1)[fi[k]]))
                raise WgmmaHazardError(
                    f"{'write' if write else 'read'} of register `{view.name}` element {elem}, "
                    f"the {role} of a wgmma that no wgmma_wait has retired yet"
                    f"{self.ctx.where()}: wait for its group (tsir::wgmma_wait<N>) first",
                    accesses=[
                        self.ctx.access("wgmma issued", [int(lanes_e[k])], stmt),
                        self.ctx.access("write" if write else "read", [int(lanes_e[k])]),
                    ],
                    buffer=view.name,
                    address=elem * view.itemsize,
                )
        if write and r.wfence is not None:
            r.wfence.reshape(-1)[fi] = self.ctx.wgmma_fences[lanes_e]

    def _register_columns(self, view: View, elems: np.ndarray, mask: Mask, write: bool) -> None:
        """`_wgmma_registers` for a register access every lane makes at the same index."""
        r = view.region
        lanes = np.arange(mask.n) if mask.all else mask.idx
        cols = self._init_columns(view, elems)
        fi = (lanes[:, None] * r.row + cols[None, :]).reshape(-1)
        self._wgmma_registers(view, fi, np.repeat(lanes, cols.shape[0]), write)

    def _gather(self, view: View, g: np.ndarray, off: np.ndarray) -> np.ndarray:
        r = view.region
        typed = r.typed(view.npdt)
        if typed is not None and view.byte_offset % view.itemsize == 0:
            gi = g if off.ndim == 1 else g[:, None]
            return typed[gi, view.byte_offset // view.itemsize + off]
        byte = self._bytes(view, off)
        gi = g if off.ndim == 1 else g[:, None]
        raw = r.data[gi[..., None], byte[..., None] + np.arange(view.itemsize)]
        return np.ascontiguousarray(raw).view(view.npdt).reshape(off.shape)

    def _scatter(self, view: View, g: np.ndarray, off: np.ndarray, vals: np.ndarray) -> None:
        r = view.region
        typed = r.typed(view.npdt)
        gi = g if off.ndim == 1 else g[:, None]
        if typed is not None and view.byte_offset % view.itemsize == 0:
            typed[gi, view.byte_offset // view.itemsize + off] = vals
            return
        byte = self._bytes(view, off)
        raw = (
            np.ascontiguousarray(vals.astype(view.npdt))
            .view(np.uint8)
            .reshape(*off.shape, view.itemsize)
        )
        r.data[gi[..., None], byte[..., None] + np.arange(view.itemsize)] = raw

    def _alignment(
        self, view: View, byte: np.ndarray, lanes: np.ndarray, width: int, what: str
    ) -> None:
        bad = (byte % width) != 0
        if bad.any():
            k = int(np.flatnonzero(bad.reshape(bad.shape[0], -1).any(axis=1))[0])
            raise MisalignedAccessError(
                f"misaligned {what} of `{view.name}`: byte offset "
                f"{int(np.asarray(byte[k]).reshape(-1)[0])} is "
                f"not a multiple of {width}{self.ctx.where()}",
                accesses=[self.ctx.access(what, [int(lanes[k])])],
                buffer=view.name,
            )

    def _lanes_and_idx(
        self, idx: list[np.ndarray], mask: Mask
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        n = mask.n
        if mask.all:
            lanes = np.arange(n)
            return lanes, [broadcast_lanes(i, n) for i in idx]
        lanes = mask.idx
        return lanes, [
            i[lanes] if i.shape[0] > 1 else np.broadcast_to(i, (lanes.shape[0], *i.shape[1:]))
            for i in idx
        ]

    # -- loads and stores --------------------------------------------------------------------------
    def _registers_uniform(self, view: View, idx: list[np.ndarray]) -> np.ndarray | None:
        """Element offsets (1-D) of a register access whose index every lane shares, else None:
        the common case, served column-wise without per-lane gathers."""
        r = view.region
        if r.kind != "local" or r.group_of_lane is None or view.byte_offset % view.itemsize:
            return None
        if any(i.shape[0] != 1 for i in idx):
            return None
        off, oob = view.offsets(idx)
        if oob is not None:
            lanes = np.zeros(1, dtype=np.int64)
            self._oob(view, idx, oob, lanes if self.ctx.lanes.n else None, "access")
        return off.reshape(-1) + view.byte_offset // view.itemsize

    def _init_columns(self, view: View, elems: np.ndarray) -> np.ndarray:
        size = view.itemsize
        return (elems[:, None] * size + np.arange(size)).reshape(-1)

    def _usable(self, view: View) -> None:
        if view.region.divergent is not None:
            raise TileSemanticsError(view.region.divergent)

    def load(self, view: View, idx: list[np.ndarray], mask: Mask) -> np.ndarray:
        self._usable(view)
        vec = max(i.ndim for i in idx) == 2
        elems = self._registers_uniform(view, idx)
        if elems is not None:
            r = view.region
            if r.acc_busy is not None and self.detect:
                self._register_columns(view, elems, mask, write=False)
            if self.detect and r.init is not None:
                cols = self._init_columns(view, elems)
                sub = r.init[:, cols] if mask.all else r.init[mask.idx][:, cols]
                if not sub.all():
                    row, col = (int(x[0]) for x in np.nonzero(~sub))
                    lane = row if mask.all else int(mask.idx[row])
                    elem = int(cols[col]) // view.itemsize - view.byte_offset // view.itemsize
                    raise UninitializedReadError(
                        f"read of register `{view.name}` element {elem} ({view.scope}), which the "
                        f"reading thread never wrote{self.ctx.where()}",
                        accesses=[self.ctx.access("read", [lane])],
                        buffer=view.name,
                        address=elem * view.itemsize,
                    )
            typed = r.typed(view.npdt)
            assert typed is not None
            vals = typed[:, elems]
            return vals if vec else vals[:, 0]
        guard = self.guarded(view)
        if all(i.shape[0] == 1 for i in idx) and not self.per_lane(view):
            off, oob = view.offsets(idx)
            if oob is not None:
                if not guard:
                    self._oob(view, idx, oob, mask.idx[:1] if mask.any else None, "read")
                off = np.where(oob, 0, off)
            g = np.zeros(1, dtype=np.int64)
            out = self._gather(view, g, off)
            return np.where(oob, view.npdt.type(0), out) if oob is not None else out
        lanes, li = self._lanes_and_idx(idx, mask)
        off, oob = view.offsets(li)
        if vec and off.ndim == 1:
            off = off[:, None]
        g = view.region.groups_of(lanes)
        if oob is not None:
            if not guard:
                self._oob(view, li, oob, lanes, "read")
            off = np.where(oob, 0, off)
        elif self.detect:
            self._check_bytes(view, g, self._bytes(view, off), lanes, write=False)
        vals = self._gather(view, g, off)
        if oob is not None:
            vals = np.where(oob, view.npdt.type(0), vals)
        if mask.all:
            return vals
        out = np.zeros((mask.n, *vals.shape[1:]), dtype=vals.dtype)
        out[lanes] = vals
        return out

    def store(self, view: View, idx: list[np.ndarray], value: np.ndarray, mask: Mask) -> None:
        self._usable(view)
        guard = self.guarded(view)
        if value.dtype != view.npdt:
            value = value.astype(view.npdt)
        elems = self._registers_uniform(view, idx)
        if elems is not None:
            r = view.region
            if self.detect and (r.acc_busy is not None or r.wfence is not None):
                self._register_columns(view, elems, mask, write=True)
            typed = r.typed(view.npdt)
            assert typed is not None
            vals = value if value.ndim == 2 else value[:, None]
            if mask.all:
                typed[:, elems] = vals
                if self.detect and r.init is not None:
                    r.init[:, self._init_columns(view, elems)] = True
            else:
                lanes = mask.idx
                typed[lanes[:, None], elems] = vals[lanes] if vals.shape[0] > 1 else vals
                if self.detect and r.init is not None:
                    r.init[lanes[:, None], self._init_columns(view, elems)] = True
            return
        if all(i.shape[0] == 1 for i in idx) and value.shape[0] == 1 and not self.per_lane(view):
            off, oob = view.offsets(idx)
            if oob is not None:
                if not guard:
                    self._oob(view, idx, oob, mask.idx[:1], "write")
                keep = ~oob.reshape(-1)
                self._scatter(
                    view,
                    np.zeros(1, dtype=np.int64),
                    off.reshape(-1)[keep],
                    np.broadcast_to(value, off.shape).reshape(-1)[keep],
                )
                return
            self._scatter(view, np.zeros(1, dtype=np.int64), off, np.broadcast_to(value, off.shape))
            return
        lanes, li = self._lanes_and_idx(idx, mask)
        off, oob = view.offsets(li)
        vals = (
            value[lanes]
            if value.shape[0] > 1
            else np.broadcast_to(value, (lanes.shape[0], *value.shape[1:]))
        )
        if off.ndim == 1 and vals.ndim == 2:
            off = off[:, None]
        off = np.broadcast_to(off, vals.shape) if vals.ndim == 2 else off
        g = view.region.groups_of(lanes)
        if oob is not None:
            if not guard:
                self._oob(view, li, oob, lanes, "write")
            keep_rows = ~np.broadcast_to(oob, off.shape).reshape(off.shape[0], -1).any(axis=1)
            if off.ndim == 2:  # a vector partly outside: keep its elements inside
                inside = ~np.broadcast_to(oob, off.shape)
                g = np.broadcast_to(g[:, None], off.shape)[inside]
                off, vals, lanes = (
                    off[inside],
                    vals[inside],
                    np.broadcast_to(lanes[:, None], inside.shape)[inside],
                )
            else:
                g, off, vals, lanes = (
                    g[keep_rows],
                    off[keep_rows],
                    vals[keep_rows],
                    lanes[keep_rows],
                )
        if self.detect:
            self._check_bytes(view, g, self._bytes(view, off), lanes, write=True)
        self._scatter(view, g, off, vals)

    # -- pointers ----------------------------------------------------------------------------------
    def pointer(self, view: View, idx: list[np.ndarray]) -> Pointer:
        off, _ = view.offsets(idx)
        return Pointer(view, off, tuple(idx))

    def ptr_lanes(self, ptr: Pointer, mask: Mask) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(lanes, group rows, element offsets) of the active lanes of a pointer."""
        lanes = mask.idx
        e = ptr.elem[lanes] if ptr.elem.shape[0] > 1 else np.broadcast_to(ptr.elem, lanes.shape)
        return lanes, ptr.view.region.groups_of(lanes), e

    def check_span(self, ptr: Pointer, count: int, lanes: np.ndarray, what: str) -> None:
        """The `count` elements from each lane's pointer lie inside its buffer (its last "
        "dimension)."""
        v = ptr.view
        last = ptr.index[-1] if ptr.index else np.zeros(1, dtype=np.int64)
        last = last[lanes] if last.shape[0] > 1 else np.broadcast_to(last, lanes.shape)
        idx = [i[lanes] if i.shape[0] > 1 else np.broadcast_to(i, lanes.shape) for i in ptr.index]
        bad = (last < 0) | (last + count > v.shape[-1])
        for i, ext in zip(idx[:-1], v.shape[:-1]):
            bad = bad | (i < 0) | (i >= ext)
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            point = [int(i[k]) for i in idx]
            raise OutOfBoundsError(
                f"out-of-bounds {what} of {count} elements at `{v.name}`{point} ({v.scope}, shape "
                f"{list(v.shape)}){self.ctx.where()}",
                accesses=[self.ctx.access(what, [int(lanes[k])])],
                buffer=v.name,
            )

    def read_elems(self, ptr: Pointer, count: int, mask: Mask, what: str = "read") -> np.ndarray:
        """`count` consecutive elements from each active lane's pointer: shape (k, count)."""
        lanes, g, e = self.ptr_lanes(ptr, mask)
        self.check_span(ptr, count, lanes, what)
        off = e[:, None] + np.arange(count)
        if ptr.view.table is not None:
            raise InterpretUnsupportedError(
                f"a pointer into the laid-out tile `{ptr.view.name}` read as a span"
            )
        if self.detect:
            self._check_bytes(ptr.view, g, self._bytes(ptr.view, off), lanes, write=False)
        return self._gather(ptr.view, g, off)

    def write_elems(self, ptr: Pointer, vals: np.ndarray, mask: Mask, what: str = "write") -> None:
        lanes, g, e = self.ptr_lanes(ptr, mask)
        count = vals.shape[1]
        self.check_span(ptr, count, lanes, what)
        off = e[:, None] + np.arange(count)
        if self.detect:
            self._check_bytes(ptr.view, g, self._bytes(ptr.view, off), lanes, write=True)
        self._scatter(ptr.view, g, off, vals)

    def atomic_add(self, ptr: Pointer, value: np.ndarray, mask: Mask) -> np.ndarray:
        """`atomicAdd(ptr, value)` in every active lane, in lane order; returns the old values."""
        return self.atomic_update(ptr, value, mask, "add")

    def atomic_update(self, ptr: Pointer, value: np.ndarray, mask: Mask, op: str) -> np.ndarray:
        """An atomic read-modify-write (`op`: "add", "max" or "min"; max/min ignore a NaN
        operand, as fmaxf/fminf) in every active lane, in lane order; returns the old values."""
        view = ptr.view
        lanes, g, e = self.ptr_lanes(ptr, mask)
        guard = self.guarded(view)
        idx = [i[lanes] if i.shape[0] > 1 else np.broadcast_to(i, lanes.shape) for i in ptr.index]
        oob = np.zeros(lanes.shape, dtype=bool)
        for i, ext in zip(idx, view.shape):
            oob |= (i < 0) | (i >= ext)
        if oob.any():
            if not guard:
                self._oob(view, idx, oob, lanes, f"atomic {op}")
            keep = ~oob
            lanes, g, e = lanes[keep], g[keep], e[keep]
        vals = value[lanes] if value.shape[0] > 1 else np.broadcast_to(value, lanes.shape)
        vals = vals.astype(view.npdt)
        if self.detect:
            self._check_bytes(view, g, self._bytes(view, e), lanes, write=True, atomic=True)
        key = g * (view.region.row + 1) + e
        order = np.argsort(key, kind="stable")
        ks, vs = key[order], vals[order]
        start = np.ones(ks.shape, dtype=bool)
        start[1:] = ks[1:] != ks[:-1]
        base = self._gather(view, g[order], e[order])
        last = np.ones(ks.shape, dtype=bool)
        last[:-1] = ks[1:] != ks[:-1]
        if op == "add":
            # Old value of each add: the base plus the adds of earlier lanes on the same element.
            seg = np.cumsum(start) - 1
            wide = vs.astype(np.float64) if view.buffer.dtype.is_float else vs.astype(np.int64)
            excl = np.cumsum(wide) - wide  # adds of earlier lanes, all elements
            before = excl - excl[np.flatnonzero(start)][seg]  # ... on the same element
            olds = (base.astype(wide.dtype) + before).astype(view.npdt)
            finals = (olds.astype(wide.dtype) + wide)[last].astype(view.npdt)
        else:
            olds, finals = _sequential_minmax(base, vs, start, last, op)
        self._scatter(view, g[order][last], e[order][last], finals)
        out = np.zeros(mask.n, dtype=view.npdt)
        out[lanes[order]] = olds
        return out


def _sequential_minmax(
    base: np.ndarray, vs: np.ndarray, start: np.ndarray, last: np.ndarray, op: str
) -> tuple[np.ndarray, np.ndarray]:
    """(old value each update saw, final value per element) of lane-ordered atomic max/min
    updates, sorted by element (`start`/`last` mark each element's first/last update)."""
    floats = vs.dtype.kind in "fV"  # ml_dtypes' bfloat16/fp8 are kind "V"
    wide = np.float64 if floats else vs.dtype
    if floats:
        fn = np.fmax if op == "max" else np.fmin
    else:
        fn = np.maximum if op == "max" else np.minimum
    b, v = base.astype(wide), vs.astype(wide)
    olds = b.copy()
    firsts = np.flatnonzero(start)
    ends = np.append(firsts[1:], len(v))
    for lo, hi in zip(firsts, ends):
        if hi - lo > 1:  # several updates of one element: each sees the ones before it
            run = fn.accumulate(np.concatenate(([b[lo]], v[lo:hi])))
            olds[lo:hi] = run[:-1]
    finals = fn(olds, v)[last]
    return olds.astype(vs.dtype), finals.astype(vs.dtype)
