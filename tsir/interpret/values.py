"""Values: IR dtypes as numpy dtypes, casts with C semantics, and the lane shapes of values.

A value is a numpy array. A scalar-typed value has shape (1,) when every lane holds the same value
(constants, loop counters, block-uniform scalars) and (L,) when it varies per lane; a vector-typed
value (`float16x8`) has shape (1, V) or (L, V). Values are never modified in place once made.
"""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np

from ..dtype import DataType

__all__ = ["np_dtype", "cast_array", "const_array", "is_uniform", "lanes_of", "broadcast_lanes"]

_NP: dict[str, Any] = {
    "bool": np.dtype(np.bool_),
    "int8": np.dtype(np.int8),
    "int16": np.dtype(np.int16),
    "int32": np.dtype(np.int32),
    "int64": np.dtype(np.int64),
    "uint8": np.dtype(np.uint8),
    "uint16": np.dtype(np.uint16),
    "uint32": np.dtype(np.uint32),
    "uint64": np.dtype(np.uint64),
    "float16": np.dtype(np.float16),
    "bfloat16": np.dtype(ml_dtypes.bfloat16),
    "float32": np.dtype(np.float32),
    "float64": np.dtype(np.float64),
    "float8_e4m3": np.dtype(ml_dtypes.float8_e4m3fn),
    "float8_e5m2": np.dtype(ml_dtypes.float8_e5m2),
}

# Types numpy computes badly or slowly: math goes through float32 and is rounded back on the way out.
NARROW_FLOATS = ("float16", "bfloat16", "float8_e4m3", "float8_e5m2")


def np_dtype(dt: DataType) -> np.dtype:
    """The numpy element type of an IR dtype (vector dtypes map to their element type)."""
    try:
        return _NP[dt.name]
    except KeyError:
        from .errors import InterpretUnsupportedError

        raise InterpretUnsupportedError(f"dtype {dt} has no numpy counterpart in the interpreter") from None


def cast_array(x: np.ndarray, src: DataType, dst: DataType) -> np.ndarray:
    """C's static_cast from `src` to `dst`, element-wise.

    Integers wrap (two's complement), floats round to nearest even (float16, bfloat16, fp8 on every
    conversion), float -> integer truncates toward zero, anything -> bool is `!= 0`. Half types
    convert to and from integers through float32, as the generated CUDA does.
    """
    to = np_dtype(dst)
    if x.dtype == to:
        return x
    if dst.is_bool:
        return x != 0
    if src.is_float and dst.is_int:
        f = x.astype(np.float64) if src.name not in NARROW_FLOATS else x.astype(np.float32)
        with np.errstate(invalid="ignore"):
            t = np.trunc(f)
            # Out-of-range and NaN conversions are undefined in C; give them a fixed value.
            lo, hi = float(dst.min_value()), float(dst.max_value())
            t = np.where(np.isfinite(t), np.clip(t, lo, hi), 0)
        if dst.bits == 64:
            return t.astype(to)
        return t.astype(np.int64).astype(to)
    if src.is_int and dst.name in NARROW_FLOATS:
        return x.astype(np.float32).astype(to)
    if src.name in NARROW_FLOATS and dst.name in NARROW_FLOATS:
        return x.astype(np.float32).astype(to)
    return x.astype(to)


_CONST_CACHE: dict[tuple[str, Any], np.ndarray] = {}


def const_array(value: Any, dt: DataType) -> np.ndarray:
    """A uniform scalar value (shape (1,)) of the dtype; shared, never to be modified."""
    key = (dt.name, value)
    arr = _CONST_CACHE.get(key)
    if arr is None:
        if dt.is_float:
            arr = np.array([float(value)], dtype=np.float64).astype(np_dtype(dt))
        elif dt.is_bool:
            arr = np.array([bool(value)])
        else:
            arr = np.array([int(value)], dtype=np.int64).astype(np_dtype(dt))
        arr.setflags(write=False)
        if len(_CONST_CACHE) < 100_000:
            _CONST_CACHE[key] = arr
    return arr


def is_uniform(x: np.ndarray) -> bool:
    return x.shape[0] == 1


def lanes_of(*xs: np.ndarray) -> int:
    """The lane count of a group of values (1 when all are uniform)."""
    n = 1
    for x in xs:
        if x.shape[0] != 1:
            n = x.shape[0]
    return n


def broadcast_lanes(x: np.ndarray, n: int) -> np.ndarray:
    """`x` with its lane axis expanded to `n` (a read-only view when it was uniform)."""
    if x.shape[0] == n:
        return x
    return np.broadcast_to(x, (n, *x.shape[1:]))
