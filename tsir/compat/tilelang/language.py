"""`tilelang.language` over tsir: `from tsir.compat.tilelang import language as T`.

Names with TileLang's meaning are tsir's own (`tsir.T`) or thin spellings over them. Names tsir
does not implement raise a `TSIRError` naming the TileLang feature when they are used (never an
accepted-and-ignored argument). `PRESENT`, `DIFFERENT` and `MISSING` below are the source of the
coverage table in docs/tilelang_coverage.md.
"""

from __future__ import annotations

from typing import Any

from ...builder import lang as _T
from ...builder.lang import (  # noqa: F401  (re-exported with TileLang's meaning)
    Pipelined,  # noqa: F401
    abs,
    alloc_reducer,
    alloc_shared,
    annotate_layout,
    cast,
    ceil,
    ceildiv,
    clear,
    cos,
    cumsum,
    exp,
    exp2,
    fill,
    finalize_reducer,
    floor,
    get_block_binding,
    get_thread_binding,
    if_then_else,
    infinity,
    log,
    log2,
    max,
    min,
    round,
    rsqrt,
    sin,
    sqrt,
    sync_threads,
    sync_warp,
    tanh,
    unroll,
    vectorized,
)
from ...builder.views import alloc_global, reshape, view  # noqa: F401
from ...dtype import DataType as _DataType
from ...dtype import dtype as _as_dtype
from ...errors import BuildError, UnsupportedError, user_location
from ...script import (  # noqa: F401
    Buffer,
    FragmentBuffer,
    LocalBuffer,
    SharedBuffer,
    Tensor,
    const,
    empty,
    macro,
)
from ...script import prim_func as _script_prim_func
from ...stmt import ForKind as _ForKind
from . import hopper as _hopper
from . import ops as _ops
from .hopper import *  # noqa: F403  (warp roles, mbarriers, TMA loads, setmaxnreg; T.copy(barrier=))
from .layout import Fragment, Layout  # noqa: F401  (TileLang's T.Fragment / T.Layout)
from .missing import HOPPER, MISSING, MissingFeature, missing_messages
from .ops import *  # noqa: F403  (atomics, reductions, warp values, math, call_extern, T.print)
from .promotion import tilelang_promotion


def prim_func(fn: Any) -> Any:
    """`@T.prim_func`: tsir's script form, built with TileLang's implicit dtype promotion
    (promotion.py; tsir's own `T.prim_func` keeps DESIGN's explicit casts)."""
    with tilelang_promotion():
        return _script_prim_func(fn)


# -- dtypes ----------------------------------------------------------------------------------------


class dtype(str):  # noqa: N801  (TileLang's spelling: `dtype: T.dtype = T.float16`)
    """A dtype name that is also a constant maker: `T.float16(0.5)`; compares equal to its name."""

    def __new__(cls, name: str) -> dtype:
        return super().__new__(cls, str(_as_dtype(name)))

    def __call__(self, value: Any = 0) -> Any:
        return getattr(_T, str(self))(value)

    @property
    def bits(self) -> int:
        return _as_dtype(str(self)).bits


_DTYPES = {
    "bool": "bool",
    "int8": "int8",
    "int16": "int16",
    "int32": "int32",
    "int64": "int64",
    "uint8": "uint8",
    "uint16": "uint16",
    "uint32": "uint32",
    "uint64": "uint64",
    "float16": "float16",
    "half": "float16",
    "bfloat16": "bfloat16",
    "float32": "float32",
    "float": "float32",
    "float64": "float64",
    "double": "float64",
    "float8_e4m3": "float8_e4m3",
    "float8_e4m3fn": "float8_e4m3",
    "float8_e5m2": "float8_e5m2",
}
for _n, _d in _DTYPES.items():
    globals()[_n] = dtype(_d)

# -- structure -------------------------------------------------------------------------------------


def Kernel(
    *grid: Any,
    threads: Any = 128,
    cluster_dims: Any = None,
    is_cpu: bool = False,
    prelude: Any = None,
) -> Any:
    """`with T.Kernel(gx, gy, threads=128) as (bx, by):`."""
    for key, value, what in (
        ("cluster_dims", cluster_dims, "thread-block clusters"),
        ("prelude", prelude, "a CUDA prelude"),
    ):
        if value is not None:
            raise UnsupportedError(
                f"T.Kernel({key}=...): {what} are not supported by tsir", loc=user_location()
            )
    if is_cpu:
        raise UnsupportedError(
            "T.Kernel(is_cpu=True): tsir generates CUDA only", loc=user_location()
        )
    return _T.Kernel(*grid, threads=threads)


def Parallel(*extents: Any, coalesced_width: Any = None, loop_layout: Any = None) -> Any:
    if coalesced_width is not None or loop_layout is not None:
        raise UnsupportedError(
            "T.Parallel(coalesced_width=/loop_layout=) is not supported; tsir picks the loop layout",
            loc=user_location(),
        )
    return _T.Parallel(*extents)


def serial(start: Any, stop: Any = None, step: Any = None, *, annotations: Any = None) -> Any:
    if step not in (None, 1) or annotations:
        raise UnsupportedError(
            "T.serial(start, stop, step) with a step, or with annotations, is not supported",
            loc=user_location(),
        )
    return _T.serial(start, stop)


Serial = serial
Unroll = unroll
Vectorized = vectorized


def grid(*extents: Any) -> Any:
    """`for i, j in T.grid(M, N)`: nested serial loops."""
    return _T._loop(_ForKind.SERIAL, extents, _T._loop_name("i"))


def alloc_fragment(shape: Any, dtype: Any, scope: str = "local.fragment") -> Any:
    if scope != "local.fragment":
        raise BuildError(f"T.alloc_fragment scope must be 'local.fragment', got {scope!r}")
    return _T.alloc_fragment(shape, dtype)


def alloc_local(shape: Any, dtype: Any, scope: str = "local") -> Any:
    if scope != "local":
        raise BuildError(f"T.alloc_local scope must be 'local', got {scope!r}")
    return _T.alloc_local(shape, dtype)


def alloc_var(dtype: Any, init: Any = None, scope: str = "local.var") -> Any:
    if scope != "local.var":
        raise BuildError(f"T.alloc_var scope must be 'local.var', got {scope!r}")
    return _T.alloc_var(dtype, init)


def dynamic(name: str, dtype: Any = "int32") -> Any:
    return _T.dynamic(name, dtype)


symbolic = dynamic


class _Dyn:
    """`T.dyn["K"]`: a named dynamic dimension."""

    def __getitem__(self, name: str) -> Any:
        return _T.dynamic(name)


dyn = _Dyn()


def get_thread_bindings() -> tuple[Any, ...]:
    b = _T.current_builder("T.get_thread_bindings")
    k = b.kernel
    if k is None:
        raise BuildError("T.get_thread_bindings must be used inside a T.Kernel")
    return tuple(k.thread_vars)


def get_block_bindings() -> tuple[Any, ...]:
    b = _T.current_builder("T.get_block_bindings")
    k = b.kernel
    if k is None:
        raise BuildError("T.get_block_bindings must be used inside a T.Kernel")
    return tuple(k.block_vars)


# -- tile ops --------------------------------------------------------------------------------------


class GemmWarpPolicy:
    """How T.gemm splits the tile over warps (TileLang's enum, by name)."""

    Square = "square"
    FullRow = "full_row"
    FullCol = "full_col"


def gemm(
    A: Any,
    B: Any,
    C: Any,
    transpose_A: bool = False,
    transpose_B: bool = False,
    policy: Any = GemmWarpPolicy.Square,
    clear_accum: bool = False,
    k_pack: int = 1,
    wg_wait: int = 0,
    **kwargs: Any,
) -> None:
    for opnd in (A, B):
        buf = getattr(opnd, "buffer", opnd)
        if getattr(buf, "dtype", None) is not None and buf.dtype.kind == "float8":
            raise UnsupportedError(HOPPER.format(what="fp8 T.gemm"), loc=user_location())
    if policy == GemmWarpPolicy.FullCol:
        raise UnsupportedError(
            "T.gemm(policy=GemmWarpPolicy.FullCol) is not supported; use Square or FullRow",
            loc=user_location(),
        )
    if k_pack != 1 or wg_wait != 0 or kwargs:
        names = ["k_pack"] * (k_pack != 1) + ["wg_wait"] * (wg_wait != 0) + sorted(kwargs)
        raise UnsupportedError(
            f"T.gemm({', '.join(names)}=...) is not supported (wgmma-specific)", loc=user_location()
        )
    _T.gemm(A, B, C, transpose_A, transpose_B, clear_accum, policy)


def im2col(
    img: Any,
    col: Any,
    nhw_step: Any,
    c_step: Any,
    kernel: int,
    stride: int,
    dilation: int,
    pad: int,
    eviction_policy: Any = None,
    annotations: Any = None,
) -> None:
    """TileLang's im2col tile (a TMA im2col load on Hopper there; element-wise loads here)."""
    if eviction_policy not in (None, "evict_normal"):
        raise UnsupportedError(
            f"T.im2col(eviction_policy={eviction_policy!r}): tsir emits no cache-eviction hint "
            "for im2col loads; drop the argument",
            loc=user_location(),
        )
    if annotations:
        raise UnsupportedError("T.im2col(annotations=...) is not supported", loc=user_location())
    _T.im2col(img, col, nhw_step, c_step, kernel, stride, dilation, pad)


c2d_im2col = im2col


def use_swizzle(panel_size: int = 8, order: str = "row", enable: bool = True) -> None:
    if enable:
        _T.use_swizzle(panel_size, order)


def Cast(dtype: Any, value: Any) -> Any:  # noqa: N802  (TVM's spelling: dtype first)
    return _T.cast(value, dtype)


# -- everything else: missing names raise when used ------------------------------------------------

# Names with TileLang's meaning (possibly with fewer keyword arguments, each of which raises).
PRESENT = [
    "Kernel",
    "Parallel",
    "Pipelined",
    "serial",
    "Serial",
    "unroll",
    "Unroll",
    "vectorized",
    "Vectorized",
    "grid",
    "get_thread_binding",
    "get_thread_bindings",
    "get_block_binding",
    "get_block_bindings",
    "alloc_var",
    "alloc_local",
    "alloc_shared",
    "alloc_fragment",
    "empty",
    "copy",
    "fill",
    "clear",
    "cumsum",
    "finalize_reducer",
    "dynamic",
    "symbolic",
    "use_swizzle",
    "annotate_layout",
    "prim_func",
    "macro",
    "const",
    "Tensor",
    "Buffer",
    "SharedBuffer",
    "FragmentBuffer",
    "LocalBuffer",
    "dtype",
    *_DTYPES,
    "abs",
    "ceil",
    "ceildiv",
    "cos",
    "exp",
    "exp2",
    "floor",
    "if_then_else",
    "infinity",
    "log",
    "log2",
    "round",
    "rsqrt",
    "sin",
    "sqrt",
    "tanh",
    "max",
    "min",
    "cast",
    "Cast",
    "sync_threads",
    "sync_warp",
    "GemmWarpPolicy",
    "im2col",
    "c2d_im2col",
    "view",
    "reshape",
    "alloc_global",
    "Fragment",
    "Layout",
    *_ops.PRESENT,
    *_hopper.PRESENT,
]

# Names present with a narrower meaning or another form: name -> what differs.
DIFFERENT = {
    "gemm": (
        "mma.sync on sm_80+, wgmma on sm_90a (fp16/bf16; fp8 with transpose_B on sm_90a; fp32 "
        "accumulation); operands may be stage slices A_s[ko % stages, :, :]; policy "
        "Square/FullRow; no k_pack/wg_wait"
    ),
    **_ops.DIFFERENT,
    **_hopper.DIFFERENT,
    "alloc_reducer": "op sum/max/min, replication='all' only",
    "Pipelined": (
        "order=/stage=/group= accepted; tsir schedules the stages itself (TSIR_EXPLAIN says so); "
        "tsir's pingpong= turns two consumer warpgroups on sm_90a"
    ),
    "use_swizzle": "order='row' only",
}

MISSING.update(missing_messages(set(PRESENT) | set(DIFFERENT)))

__all__ = sorted(set(PRESENT) | set(DIFFERENT) | {"dyn"})


def __getattr__(name: str) -> Any:
    message = MISSING.get(name)
    if message is None:
        raise AttributeError(f"module 'tilelang.language' (tsir.compat) has no attribute {name!r}")
    raise MissingFeature(message.format(name=name), loc=user_location())


_ = _DataType
