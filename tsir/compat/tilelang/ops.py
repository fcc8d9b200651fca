"""TileLang's names for the ops and element math of issue 12 (atomics, reductions, warp values,
math, the CUDA escape hatch, printing), with TileLang's parameter names, over tsir's builder.
language.py re-exports them; `PRESENT` and `DIFFERENT` here join its coverage lists."""

from __future__ import annotations

from typing import Any

from ...builder import lang as _T
from ...builder.lang import (  # noqa: F401  (TileLang's meaning and signature)
    __cos,
    __exp,
    __exp10,
    __log,
    __log2,
    __log10,
    __sin,
    __tan,
    address_of,
    atomic_addx2,
    atomic_addx4,
    atomic_max,
    atomic_min,
    clamp,
    erf,
    exp10,
    isinf,
    isnan,
    log10,
    pow,
    print,
    reinterpret,
    shfl_down,
    shfl_sync,
    shfl_up,
    shfl_xor,
    sigmoid,
    tan,
    warp_reduce_bitand,
    warp_reduce_bitor,
    warp_reduce_max,
    warp_reduce_min,
    warp_reduce_sum,
)
from ...errors import UnsupportedError, user_location

__all__ = [
    "atomic_add",
    "atomic_max",
    "atomic_min",
    "atomic_addx2",
    "atomic_addx4",
    "reduce",
    "reduce_sum",
    "reduce_max",
    "reduce_min",
    "reduce_absmax",
    "reduce_abssum",
    "reduce_bitand",
    "reduce_bitor",
    "reduce_bitxor",
    "warp_reduce_sum",
    "warp_reduce_max",
    "warp_reduce_min",
    "warp_reduce_bitand",
    "warp_reduce_bitor",
    "shfl_xor",
    "shfl_down",
    "shfl_up",
    "shfl_sync",
    "sigmoid",
    "erf",
    "pow",
    "clamp",
    "isnan",
    "isinf",
    "reinterpret",
    "tan",
    "exp10",
    "log10",
    "__log",
    "__log2",
    "__log10",
    "__tan",
    "__cos",
    "__sin",
    "__exp10",
    "__exp",
    "call_extern",
    "import_source",
    "address_of",
    "print",
]

REDUCE_TYPES = ("sum", "max", "min", "absmax", "abssum", "bitand", "bitor", "bitxor")


def atomic_add(
    dst: Any, value: Any, memory_order: Any = None, return_prev: bool = False, use_tma: bool = False
) -> Any:
    return _T.atomic_add(dst, value, memory_order, return_prev, use_tma)


def reduce(buffer: Any, out: Any, reduce_type: str, dim: int = -1, clear: bool = True) -> None:
    if reduce_type not in REDUCE_TYPES:
        raise UnsupportedError(
            f"T.reduce(reduce_type={reduce_type!r}) is not supported; it takes "
            f"{', '.join(REDUCE_TYPES)}",
            loc=user_location(),
        )
    _T.reduce(buffer, out, dim, reduce_type, clear)


def _reduce_fn(kind: str) -> Any:
    def fn(buffer: Any, out: Any, dim: int = -1, clear: bool = True) -> None:
        _T.reduce(buffer, out, dim, kind, clear)

    fn.__name__ = f"reduce_{kind}"
    fn.__doc__ = f"TileLang's `T.reduce_{kind}(buffer, out, dim=-1, clear=True)`."
    return fn


reduce_sum = _reduce_fn("sum")
reduce_max = _reduce_fn("max")
reduce_min = _reduce_fn("min")
reduce_absmax = _reduce_fn("absmax")
reduce_abssum = _reduce_fn("abssum")
reduce_bitand = _reduce_fn("bitand")
reduce_bitor = _reduce_fn("bitor")
reduce_bitxor = _reduce_fn("bitxor")


def call_extern(dtype: Any, func_name: str, *args: Any, span: Any = None) -> Any:
    if span is not None:
        raise UnsupportedError(
            "T.call_extern(span=...): TVM spans are not supported", loc=user_location()
        )
    return _T.call_extern(dtype, func_name, *args)


def import_source(source: Any = None) -> None:
    if source is None:
        raise UnsupportedError("T.import_source() needs the CUDA source text", loc=user_location())
    _T.import_source(source)


# Coverage (language.py joins these to its lists).
PRESENT = [n for n in __all__ if n not in ("atomic_add", "call_extern", "shfl_sync")]
DIFFERENT = {
    "atomic_add": "element or region form; use_tma=True and a scalar added to a whole region raise",
    "call_extern": (
        "memory effects assumed conservatively (reads and writes every buffer it gets a pointer "
        "to); the interpreter cannot run it"
    ),
    "shfl_sync": "the full mask only (every lane of the warp)",
}
