"""`tsir.T`: the builder users write kernels with (names follow TileLang's `T.*`).

The namespace gathers the builder's halves (structure, memory, element math, tile ops, TileScale's
distributed ops, the copy engine, NVSHMEM) and the script forms: `T.prim_func` is the builder's
`with T.prim_func("name") as f:` and, on a Python function, the script form's decorator.
"""

from __future__ import annotations

from typing import Any

from ..intrin import MATH_UNARY
from ..script import prim_func as _script_prim_func
from .atomic_lang import *  # noqa: F403  (T.atomic_add/max/min, T.atomic_addx2/x4)
from .atomic_lang import __all__ as _atomic_all
from .cpengine_lang import cp_engine_copy
from .debug_lang import print  # noqa: A004  (T.print: TileLang's name)
from .dist_lang import *  # noqa: F403  (T.put_block, T.wait_eq, ...: TileScale's distributed names)
from .dist_lang import __all__ as _dist_all
from .extern_lang import *  # noqa: F403  (T.call_extern, T.import_source, T.address_of)
from .extern_lang import __all__ as _extern_all
from .hopper_lang import *  # noqa: F403  (T.alloc_barrier, T.tma_copy, T.ws, ...: explicit Hopper control)
from .hopper_lang import __all__ as _hopper_all
from .math_ext import *  # noqa: F403  (T.pow, T.fma, T.sigmoid, T.clamp, T.isnan, T.reinterpret)
from .math_ext import __all__ as _math_ext_all
from .math_lang import *  # noqa: F403  (T.cast, T.exp, T.max, ...)
from .math_lang import __all__ as _math_all
from .math_lang import typed_constant
from .memory import *  # noqa: F403  (T.alloc_shared, T.copy, T.fill, ...)
from .memory import __all__ as _memory_all
from .nvshmem_lang import nvshmem
from .structure import *  # noqa: F403  (T.Kernel, T.Parallel, T.If, ...)
from .structure import __all__ as _structure_all
from .structure import _loop, _loop_name, _offset_loop  # noqa: F401  (compat drives loops)
from .structure import prim_func as _builder_prim_func
from .tile_lang import *  # noqa: F403  (T.gemm, T.reduce_*, T.annotate_layout)
from .tile_lang import __all__ as _tile_all
from .views import *  # noqa: F403  (T.view, T.reshape, T.alloc_global)
from .views import __all__ as _views_all
from .warp_lang import *  # noqa: F403  (T.shfl_*, T.warp_reduce_*)
from .warp_lang import __all__ as _warp_all

__all__ = [
    *_structure_all,
    *_memory_all,
    *_math_all,
    *_math_ext_all,
    *_dist_all,
    *_tile_all,
    *_warp_all,
    *_atomic_all,
    *_extern_all,
    "print",
    *_views_all,
    *_hopper_all,
    "cp_engine_copy",
    "nvshmem",
]
_ = MATH_UNARY


def prim_func(name: Any) -> Any:
    """`with T.prim_func("name") as f:` builds a function; `@T.prim_func` on a Python function whose
    parameters are annotated `T.Tensor(shape, dtype)` parses its source (the script form)."""
    if callable(name) and not isinstance(name, str):
        return _script_prim_func(name)
    return _builder_prim_func(name)


def __getattr__(name: str) -> Any:
    """`T.int64(5)`, `T.float16(0.5)`: typed constants (`math_lang.typed_constant`), resolved here
    rather than as globals so `bool`, `int` stay builtins."""
    return typed_constant(name)
