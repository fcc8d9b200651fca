"""TileLang's entry points over tsir: `import tsir.compat.tilelang as tilelang`.

`jit`, `compile`, `autotune`/`AutoTuner`, the kernel object (outputs allocated and returned,
`get_kernel_source()`, `get_profiler()`), `TensorSupplyType`, `PassConfigKey`, and `language`
(import as `T`). `python -m tsir.compat.tilelang run file.py` runs an unchanged TileLang file.
"""

from __future__ import annotations

from typing import Any

from ... import knobs
from ...dtype import dtype as _as_dtype
from . import language, layout
from .autotuner import AutoTuner, AutotuneResult, autotune
from .jit import JitFunction, compile, jit, lazy_jit
from .kernel import JITKernel, PassConfigKey
from .profiler import Profiler, TensorSupplyType, do_bench

__all__ = [
    "language",
    "layout",
    "jit",
    "lazy_jit",
    "compile",
    "autotune",
    "AutoTuner",
    "AutotuneResult",
    "JITKernel",
    "JitFunction",
    "PassConfigKey",
    "Profiler",
    "TensorSupplyType",
    "do_bench",
    "cdiv",
    "next_power_of_2",
    "disable_cache",
    "DataType",
]

__version__ = "0.1.6+tsir"


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


def next_power_of_2(n: int) -> int:
    return 1 if n <= 1 else 1 << (int(n) - 1).bit_length()


def disable_cache() -> None:
    """TileLang's kernel cache switch: tsir's compile cache is turned off for this process."""
    knobs.disable_cache = True


def DataType(name: Any) -> Any:  # noqa: N802  (tvm.DataType's spelling: .bits, .lanes)
    return _as_dtype(str(name))
