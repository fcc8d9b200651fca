"""Tile operators by their documented semantics (DESIGN "Semantics the API fixes", the ops'
docstrings in tsir/tileop), on whole per-block arrays. Only the ops' fields are read here; none of
their lowering code is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..buffer import BufferRegion
from ..expr import const_value
from ..tileop import AtomicAdd, Copy, CumSum, Fill, FinalizeReducer
from ..tileop.gemm import Gemm
from ..tileop.reduce import Reduce
from .errors import InterpretUnsupportedError
from .lanes import Mask
from .memory import View
from .values import NARROW_FLOATS, cast_array

if TYPE_CHECKING:
    from .tile import TileExecutor

__all__ = ["TileOps"]

_F32 = np.dtype(np.float32)


class TileOps:
    def __init__(self, ex: TileExecutor):
        self.ex = ex
        self.dist: Any = None  # the multi-rank extension (phase 2) when ranks > 1
        self._table = {
            Copy: self.copy, Fill: self.fill, Gemm: self.gemm, Reduce: self.reduce, CumSum: self.cumsum,
            AtomicAdd: self.atomic_add, FinalizeReducer: self.finalize_reducer,
        }

    def run(self, op: Any) -> None:
        fn = self._table.get(type(op))
        if fn is None and self.dist is not None:
            fn = self.dist.tile_op(type(op))
        if fn is None:
            raise InterpretUnsupportedError(
                f"the tile-level interpreter has no semantics for the tile operator {type(op).__name__} "
                f"({getattr(op, 'op_name', '?')})"
            )
        fn(op)

    # -- regions -----------------------------------------------------------------------------------
    def _box(self, r: BufferRegion) -> tuple[View, list[int], list[int]]:
        ev = self.ex.ev
        view = ev.view(r.buffer)
        mins = [ev.uniform_int(x.min, f"a region start of `{r.buffer.name}`") for x in r.region]
        exts = [ev.uniform_int(x.extent, f"a region extent of `{r.buffer.name}`") for x in r.region]
        return view, mins, exts

    def _offsets(self, view: View, mins: list[int], exts: list[int]) -> tuple[np.ndarray, np.ndarray | None]:
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
        if oob is None:
            typed[0, base + off] = values
        else:
            keep = ~np.broadcast_to(oob, exts)
            typed[0, base + off[keep]] = values[keep]

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
            raise InterpretUnsupportedError(f"T.copy: source extents {list(src.shape)} vs destination {want}")
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
            raise InterpretUnsupportedError(f"T.gemm operand `{r.buffer.name}` is not a 2-D tile: {ext}")
        return self.read(r).reshape(ext[-2], ext[-1])

    def reduce(self, op: Reduce) -> None:
        """dst = reduce(src, dim) (values cast to dst's dtype first, |x| for abs kinds); with
        clear=False the result is combined with dst's previous values."""
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
        else:
            raise InterpretUnsupportedError(f"reduction kind {op.kind!r}")
        dst_ext = self._extents(op.dst)
        if not op.clear:
            old = self.read(op.dst).astype(wide).reshape(r.shape)
            if op.kind in ("sum", "abssum"):
                r = old + r
            elif op.kind in ("max", "absmax"):
                r = np.fmax(old, r) if wide is np.float64 else np.maximum(old, r)
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

    def atomic_add(self, op: AtomicAdd) -> None:
        """dst += src element-wise (the order among blocks does not matter to the sum)."""
        src = self._squeeze(self.read(op.src))
        dst_ext = self._extents(op.dst)
        cur = self.read(op.dst)
        ddt = op.dst.buffer.dtype
        add = cast_array(src, op.src.buffer.dtype, ddt).reshape(dst_ext)
        if ddt.name in NARROW_FLOATS:
            out = (cur.astype(_F32) + add.astype(_F32)).astype(cur.dtype)
        else:
            out = cur + add
        self.write(op.dst, out)

    def finalize_reducer(self, op: FinalizeReducer) -> None:
        """Nothing to do: at the tile level a reducer's updates are combined as they happen."""


def _np(dt: Any) -> np.dtype:
    from .values import np_dtype

    return np_dtype(dt)


def _f64() -> Any:
    from ..dtype import DataType

    return DataType("float64")


_ = const_value
