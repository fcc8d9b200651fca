"""The numpy side of the fuzz models: dtype rounding, C casts and tile copies.

Every generated program carries a `reference(inputs)` written in numpy with these helpers. They
restate the semantics DESIGN.md fixes for the public API, independently of the compiler:
- float values are held as float64 and rounded to their IR dtype where the program rounds them
  (stores, casts, half-precision arithmetic); bfloat16 rounding is round-to-nearest-even on the
  float32 bit pattern;
- a cast float -> int truncates toward zero (C semantics); int arithmetic is int64 here and the
  generator keeps every value far inside int32;
- `T.copy` reads zero outside the source and skips stores outside the destination.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "FLOATS",
    "INTS",
    "rnd",
    "cast",
    "load_tile",
    "store_tile",
    "atomic_tile",
    "np_dtype",
    "storage",
    "fdiv",
    "fmod",
    "trunc_div",
    "ulp_tol",
]

FLOATS = ("float32", "float16", "bfloat16")
INTS = ("int32",)


def _bf16(x: np.ndarray) -> np.ndarray:
    """Round float64 values to bfloat16 (nearest even), returned as float64."""
    f = np.asarray(x, dtype=np.float64).astype(np.float32)
    bits = f.view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    nan = np.isnan(f)
    out = rounded.astype(np.uint32).view(np.float32).astype(np.float64)
    return np.where(nan, np.nan, out)


def rnd(x: Any, dtype: str) -> np.ndarray:
    """`x` (float64 model values) rounded to what a `dtype` register holds."""
    a = np.asarray(x, dtype=np.float64)
    if dtype == "float32":
        return a.astype(np.float32).astype(np.float64)
    if dtype == "float16":
        return a.astype(np.float16).astype(np.float64)
    if dtype == "bfloat16":
        return _bf16(a)
    if dtype == "float64":
        return a
    raise ValueError(f"rnd: not a float dtype: {dtype}")


def cast(x: Any, dtype: str) -> np.ndarray:
    """`T.cast(x, dtype)`: float -> int truncates toward zero; int -> float rounds."""
    a = np.asarray(x)
    if dtype in INTS:
        if a.dtype.kind == "f":
            return np.trunc(a).astype(np.int64)
        return a.astype(np.int64)
    return rnd(a.astype(np.float64), dtype)


def np_dtype(dtype: str) -> Any:
    """The numpy dtype the model holds values of `dtype` in (float64 for every float)."""
    return np.int64 if dtype in INTS else np.float64


def storage(dtype: str) -> Any:
    """The numpy dtype a tensor of `dtype` is passed in (bfloat16 through ml_dtypes)."""
    if dtype == "bfloat16":
        import ml_dtypes

        return ml_dtypes.bfloat16
    return {"float32": np.float32, "float16": np.float16, "int32": np.int32}[dtype]


def fdiv(a: Any, b: Any) -> np.ndarray:
    """`a // b` on IR integers: floor division (DESIGN: as in TVM and TileLang)."""
    return np.floor_divide(a, b)


def fmod(a: Any, b: Any) -> np.ndarray:
    """`a % b` on IR integers: floor modulo."""
    return np.mod(a, b)


def trunc_div(a: Any, b: Any) -> np.ndarray:
    return np.trunc(np.asarray(a) / np.asarray(b)).astype(np.int64)


def _region(shape: tuple[int, ...], starts: tuple[int, ...], extents: tuple[int, ...]):
    """Source/destination slices of the in-bounds part of a region, or None when it is empty."""
    src, dst = [], []
    for n, s, e in zip(shape, starts, extents):
        lo, hi = max(s, 0), min(s + e, n)
        if hi <= lo:
            return None
        src.append(slice(lo, hi))
        dst.append(slice(lo - s, hi - s))
    return tuple(src), tuple(dst)


def load_tile(a: np.ndarray, starts: tuple[int, ...], extents: tuple[int, ...]) -> np.ndarray:
    """The region of `a` at `starts` with `extents`; elements outside `a` read zero."""
    out = np.zeros(extents, dtype=a.dtype)
    r = _region(a.shape, starts, extents)
    if r is not None:
        out[r[1]] = a[r[0]]
    return out


def store_tile(a: np.ndarray, starts: tuple[int, ...], tile: np.ndarray) -> None:
    """Write `tile` into `a` at `starts`; elements falling outside `a` are skipped."""
    r = _region(a.shape, starts, tile.shape)
    if r is not None:
        a[r[0]] = tile[r[1]]


def atomic_tile(a: np.ndarray, starts: tuple[int, ...], tile: np.ndarray) -> None:
    """`a[region] += tile`, skipping elements outside `a` (T.atomic_add of a tile)."""
    r = _region(a.shape, starts, tile.shape)
    if r is not None:
        a[r[0]] = a[r[0]] + tile[r[1]]


def accumulation_tol(dtype: str, terms: int) -> tuple[float, float]:
    """(rtol, atol) for a sum of `terms` values accumulated in `dtype` in an order the reference
    does not share (a reduction in the fragment's dtype, atomic adds from several blocks): each
    addition rounds by up to one unit roundoff u, and independent roundings grow as sqrt(terms),
    so 3 sqrt(terms) u (never below `ulp_tol`). Seen: 64 bfloat16 terms off by 6%."""
    unit = {"float32": 2.0**-24, "float16": 2.0**-11, "bfloat16": 2.0**-8}.get(dtype, 0.0)
    rtol, atol = ulp_tol(dtype)
    k = 3.0 * terms**0.5 * unit
    return max(rtol, k), max(atol, k)


def ulp_tol(dtype: str) -> tuple[float, float]:
    """(rtol, atol) for comparing a result of `dtype` that went through inexact math."""
    return {"float32": (1e-4, 1e-4), "float16": (2e-2, 2e-2), "bfloat16": (4e-2, 4e-2)}.get(
        dtype, (0.0, 0.0)
    )
