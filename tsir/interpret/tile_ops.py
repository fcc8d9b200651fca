"""Tile operators by their documented semantics (DESIGN "Semantics the API fixes", the ops'
docstrings in tsir/tileop), on whole per-block arrays. Only the ops' fields are read here; none of
their lowering code is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..buffer import BufferRegion
from ..dtype import DataType
from ..tileop import (
    AtomicAdd,
    AtomicMax,
    AtomicMin,
    AtomicOp,
    Copy,
    CumMax,
    CumSum,
    Fill,
    FinalizeReducer,
)
from ..tileop.gemm import Gemm
from ..tileop.im2col import Im2Col
from ..tileop.reduce import Reduce
from ..tileop.tma_copy import TmaCopy
from .dist_tile import DIST_TILE_OPS
from .errors import InterpretUnsupportedError
from .lanes import Mask
from .memory import View
from .values import NARROW_FLOATS, cast_array, np_dtype

if TYPE_CHECKING:
    from .tile import TileExecutor

__all__ = ["TileOps"]

_F32 = np.dtype(np.float32)
_BITS = {"bitand": np.bitwise_and, "bitor": np.bitwise_or, "bitxor": np.bitwise_xor}


class TileOps:
    def __init__(self, ex: TileExecutor):
        self.ex = ex
        self._table = {
            Copy: self.copy,
            Fill: self.fill,
            Gemm: self.gemm,
            Reduce: self.reduce,
            CumSum: self.cumsum,
            CumMax: self.cummax,
            AtomicAdd: self.atomic,
            AtomicMax: self.atomic,
            AtomicMin: self.atomic,
            FinalizeReducer: self.finalize_reducer,
            Im2Col: self.im2col,
            # At the tile level copies are synchronous and mbarrier calls no-ops (tile.py): an
            # explicit TMA load is its copy.
            TmaCopy: lambda op: self.copy(op.as_copy()),
        }

    def run(self, op: Any, mask: Mask) -> None:
        fn = self._table.get(type(op))
        if fn is not None:
            fn(op)
            return

        dfn = DIST_TILE_OPS.get(type(op))
        if dfn is None:
            raise InterpretUnsupportedError(
                "the tile-level interpreter has no semantics for the tile operator "
                f"{type(op).__name__} "
                f"({getattr(op, 'op_name', '?')})"
            )
        dfn(self.ex, op, mask)

    # -- regions -----------------------------------------------------------------------------------
    def _box(self, r: BufferRegion) -> tuple[View, list[int], list[int]]:
        ev = self.ex.ev
        view = ev.view(r.buffer)
        mins = [ev.uniform_int(x.min, f"a region start of `{r.buffer.name}`") for x in r.region]
        exts = [ev.uniform_int(x.extent, f"a region extent of `{r.buffer.name}`") for x in r.region]
        return view, mins, exts

    def _offsets(
        self, view: View, mins: list[int], exts: list[int]
    ) -> tuple[np.ndarray, np.ndarray | None]:
        idx = []
        nd = len(exts)
        for d, (lo, n) in enumerate(zip(mins, exts)):
            shape = [1] * nd
            shape[d] = n
            idx.append((lo + np.arange(n, dtype=np.int64)).reshape(shape))
        return view.offsets(idx)

    def read(self, r: BufferRegion) -> np.ndarray:
        """The region's elements (shape: its extents); elements outside the buffer read zero."""
        view, mins, exts = self._box(r)
        off, oob = self._offsets(view, mins, exts)
        off = np.broadcast_to(off, exts)
        typed = view.region.typed(view.npdt)
        assert typed is not None
        base = view.byte_offset // view.itemsize
        if view.region.group_of_lane is not None and typed.shape[0] > 1:
            # Per-thread registers (T.alloc_local): the op reads every thread's copy, which must
            # agree for its one tile-level result to mean anything.
            copies = typed[
                :, base + (off if oob is None else np.where(np.broadcast_to(oob, exts), 0, off))
            ]
            if (copies != copies[:1]).any():
                raise InterpretUnsupportedError(
                    f"a tile operator reads `{view.name}` ({r.buffer.scope}), whose copies differ "
                    f"between threads: its tile-level meaning is ambiguous"
                )
        if oob is None:
            return typed[0, base + off]
        oob = np.broadcast_to(oob, exts)
        vals = typed[0, base + np.where(oob, 0, off)]
        return np.where(oob, view.npdt.type(0), vals)

    def write(self, r: BufferRegion, values: np.ndarray) -> None:
        """Store `values` (shape: the region's extents); elements outside the buffer are skipped."""
        view, mins, exts = self._box(r)
        off, oob = self._offsets(view, mins, exts)
        off = np.broadcast_to(off, exts)
        values = np.broadcast_to(values.astype(view.npdt), exts)
        typed = view.region.typed(view.npdt)
        assert typed is not None
        base = view.byte_offset // view.itemsize
        # Per-thread registers (T.alloc_local): every thread runs the op on its own copy.
        rows = slice(None) if view.region.group_of_lane is not None else 0
        if oob is None:
            typed[rows, base + off] = values
        else:
            keep = ~np.broadcast_to(oob, exts)
            typed[rows, base + off[keep]] = values[keep]

    @staticmethod
    def _squeeze(a: np.ndarray) -> np.ndarray:
        return a.reshape([n for n in a.shape if n != 1])

    def _extents(self, r: BufferRegion) -> list[int]:
        return [self.ex.ev.uniform_int(x.extent, "a region extent") for x in r.region]

    # -- ops ---------------------------------------------------------------------------------------
    def copy(self, op: Copy) -> None:
        """Element-wise, non-unit extents matched in order, casting; zero-fill / skip outside."""
        src = self._squeeze(self.read(op.src))
        dst_ext = self._extents(op.dst)
        want = [n for n in dst_ext if n != 1]
        if list(src.shape) != want:
            raise InterpretUnsupportedError(
                f"T.copy: source extents {list(src.shape)} vs destination {want}"
            )
        v = cast_array(src, op.src.buffer.dtype, op.dst.buffer.dtype)
        self.write(op.dst, v.reshape(dst_ext))

    def fill(self, op: Fill) -> None:
        value = self.ex.ev.eval(op.value, Mask.full(1))
        if value.shape[0] != 1:
            raise InterpretUnsupportedError("T.fill with a value that differs between threads")
        v = cast_array(value, op.value.dtype, op.dst.buffer.dtype)
        self.write(op.dst, np.broadcast_to(v.reshape(()), self._extents(op.dst)))

    def gemm(self, op: Gemm) -> None:
        """C += A @ B (A, B transposed when asked), products and sums in float64, C rounded once."""
        a = self._matrix(op.A)
        b = self._matrix(op.B)
        if op.transpose_A:
            a = a.T
        if op.transpose_B:
            b = b.T
        prod = a.astype(np.float64) @ b.astype(np.float64)
        c_ext = self._extents(op.C)
        if op.clear_accum:
            out = prod
        else:
            out = self._squeeze(self.read(op.C)).astype(np.float64).reshape(prod.shape) + prod
        self.write(op.C, cast_array(out, _f64(), op.C.buffer.dtype).reshape(c_ext))

    def _matrix(self, r: BufferRegion) -> np.ndarray:
        ext = self._extents(r)
        if any(n != 1 for n in ext[:-2]):
            raise InterpretUnsupportedError(
                f"T.gemm operand `{r.buffer.name}` is not a 2-D tile: {ext}"
            )
        return self.read(r).reshape(ext[-2], ext[-1])

    def reduce(self, op: Reduce) -> None:
        """dst = reduce(src, dim) (values cast to dst's dtype first, |x| for abs kinds, the bit
        kinds in dst's integer type); with clear=False the result is combined with dst's
        previous values."""
        src = self.read(op.src)
        sdt, ddt = op.src.buffer.dtype, op.dst.buffer.dtype
        x = cast_array(src, sdt, ddt)
        wide = np.float64 if ddt.is_float else np.int64
        x = x.astype(wide)
        if op.kind in ("absmax", "abssum") and not ddt.is_unsigned:
            x = np.abs(x)
        dim = op.dim if src.ndim > 1 else 0
        if op.kind in ("sum", "abssum"):
            r = x.sum(axis=dim)
        elif op.kind in ("max", "absmax"):
            r = np.fmax.reduce(x, axis=dim) if wide is np.float64 else x.max(axis=dim)
        elif op.kind == "min":
            r = np.fmin.reduce(x, axis=dim) if wide is np.float64 else x.min(axis=dim)
        elif op.kind in _BITS:
            x = cast_array(src, sdt, ddt)  # in the destination's own integer type
            r = _BITS[op.kind].reduce(x, axis=dim)
        else:
            raise InterpretUnsupportedError(f"reduction kind {op.kind!r}")
        dst_ext = self._extents(op.dst)
        if not op.clear:
            old = self.read(op.dst).astype(wide).reshape(r.shape)
            if op.kind in ("sum", "abssum"):
                r = old + r
            elif op.kind in ("max", "absmax"):
                r = np.fmax(old, r) if wide is np.float64 else np.maximum(old, r)
            elif op.kind in _BITS:
                r = _BITS[op.kind](self.read(op.dst).reshape(r.shape), r)
            else:
                r = np.fmin(old, r) if wide is np.float64 else np.minimum(old, r)
        out = r.astype(np.float64).astype(_np(ddt)) if ddt.is_float else r.astype(_np(ddt))
        self.write(op.dst, out.reshape(dst_ext))

    def cumsum(self, op: CumSum) -> None:
        """Inclusive prefix sum along `dim` (from the end with reverse), accumulated in the
        destination's dtype one element after the other."""
        src = self.read(op.src)
        ddt = op.dst.buffer.dtype
        x = cast_array(src, op.src.buffer.dtype, ddt)
        x = np.moveaxis(x, op.dim, 0)
        if op.reverse:
            x = x[::-1]
        out = np.empty_like(x)
        acc = np.zeros(x.shape[1:], dtype=x.dtype)
        narrow = ddt.name in NARROW_FLOATS
        for t in range(x.shape[0]):
            acc = (acc.astype(_F32) + x[t].astype(_F32)).astype(x.dtype) if narrow else acc + x[t]
            out[t] = acc
        if op.reverse:
            out = out[::-1]
        self.write(op.dst, np.moveaxis(out, 0, op.dim))

    def cummax(self, op: CumMax) -> None:
        """Inclusive running maximum along `dim` (from the end with reverse), in the destination's
        dtype; a NaN is dropped unless everything before it was NaN (fmax, as the device's max)."""
        x = cast_array(self.read(op.src), op.src.buffer.dtype, op.dst.buffer.dtype)
        x = np.moveaxis(x, op.dim, 0)
        if op.reverse:
            x = x[::-1]
        ddt = op.dst.buffer.dtype
        if ddt.is_float:  # max is exact: run it in float32/64, then back to the dtype
            wide = x.astype(_F32 if ddt.name in NARROW_FLOATS else x.dtype)
            out = np.fmax.accumulate(wide, axis=0).astype(x.dtype)
        else:
            out = np.maximum.accumulate(x, axis=0)
        if op.reverse:
            out = out[::-1]
        self.write(op.dst, np.moveaxis(out, 0, op.dim))

    def atomic(self, op: AtomicOp) -> None:
        """dst = update(dst, src) element-wise (add, or max/min ignoring a NaN operand as fmaxf
        does); the order among blocks does not matter to the result."""
        src = self._squeeze(self.read(op.src))
        dst_ext = self._extents(op.dst)
        cur = self.read(op.dst)
        ddt = op.dst.buffer.dtype
        new = cast_array(src, op.src.buffer.dtype, ddt).reshape(dst_ext)
        wide = _F32 if ddt.name in NARROW_FLOATS else cur.dtype
        a, b = cur.astype(wide), new.astype(wide)
        if op.kind == "add":
            out = a + b
        elif ddt.is_float:
            out = np.fmax(a, b) if op.kind == "max" else np.fmin(a, b)
        else:
            out = np.maximum(a, b) if op.kind == "max" else np.minimum(a, b)
        self.write(op.dst, out.astype(cur.dtype))

    def im2col(self, op: Im2Col) -> None:
        """The tile of rows nhw_step*P.. and columns c_step*Q.. of the im2col matrix: the image
        zero-padded by `pad`, each output pixel's window (kernel x kernel taps, `dilation` apart,
        windows `stride` apart) flattened in (kh, kw, c) order; zero past the matrix."""
        img = self.read(op.img)
        n, h, w, c = img.shape
        k, s, d, pad = op.kernel, op.stride, op.dilation, op.pad
        padded = np.zeros((n, h + 2 * pad, w + 2 * pad, c), dtype=img.dtype)
        padded[:, pad : pad + h, pad : pad + w, :] = img
        oh = (h + 2 * pad - d * (k - 1) - 1) // s + 1
        ow = (w + 2 * pad - d * (k - 1) - 1) // s + 1
        taps = [
            padded[
                :, kh * d : kh * d + s * (oh - 1) + 1 : s, kw * d : kw * d + s * (ow - 1) + 1 : s, :
            ]
            for kh in range(k)
            for kw in range(k)
        ]
        matrix = np.stack(taps, axis=3).reshape(n * oh * ow, k * k * c)
        p, q = self._extents(op.col)
        ev = self.ex.ev
        r0 = ev.uniform_int(op.nhw_step, "T.im2col nhw_step") * p
        c0 = ev.uniform_int(op.c_step, "T.im2col c_step") * q
        tile = np.zeros((p, q), dtype=img.dtype)
        part = matrix[max(r0, 0) : r0 + p, max(c0, 0) : c0 + q]
        tile[: part.shape[0], : part.shape[1]] = part
        self.write(op.col, tile)

    def finalize_reducer(self, op: FinalizeReducer) -> None:
        """Nothing to do: at the tile level a reducer's updates are combined as they happen."""


def _np(dt: Any) -> np.dtype:
    return np_dtype(dt)


def _f64() -> Any:
    return DataType("float64")
