"""Functions and modules."""

from __future__ import annotations

from typing import Any

from .buffer import Buffer
from .expr import Var
from .node import Node, binder, node
from .stmt import Stmt

__all__ = [
    "PrimFunc",
    "DeviceKernel",
    "Module",
    "FAST_MATH_ATTR",
    "IMPORT_ATTR",
    "fast_math_error",
]

# `T.func_attr({"fast_math": mode})`: how NVRTC compiles the function's CUDA (one translation unit
# per function; runtime/kernel.py maps the modes to options), the function's kernels only:
#   False  IEEE float32, the default: subnormals kept, correctly rounded division and square root;
#   "ftz"  float32 subnormal inputs and results flushed to zero, nothing else changed (-ftz=true):
#          exp2 is one ex2.approx.ftz, the same bits as the default for arguments >= -126;
#   True   --use_fast_math: flushed subnormals, approximate division, square root and
#          transcendentals (expf, logf, sinf, ... as their __ intrinsics).
FAST_MATH_ATTR = "fast_math"
# `T.import_source(code)`: the CUDA sources the function's kernels include, in order.
IMPORT_ATTR = "tsir.import_source"


@node
class PrimFunc(Node):
    """A user function: buffer and scalar parameters, and a host body holding kernel launches.

    `params` are Buffers (tensors passed by the caller) and Vars (scalars); dynamic dimensions are the
    Vars that appear in parameter buffer shapes.
    """

    name: str
    params: tuple[Buffer | Var, ...] = binder()
    body: Stmt
    attrs: tuple[tuple[str, Any], ...] = ()

    def attr(self, key: str, default: Any = None) -> Any:
        for k, v in self.attrs:
            if k == key:
                return v
        return default

    def with_attr(self, key: str, value: Any) -> PrimFunc:
        attrs = tuple((k, v) for k, v in self.attrs if k != key) + ((key, value),)
        return self.replace(attrs=attrs)

    @property
    def buffer_params(self) -> tuple[Buffer, ...]:
        return tuple(p for p in self.params if isinstance(p, Buffer))

    def dynamic_vars(self) -> tuple[Var, ...]:
        seen: dict[Var, None] = {}
        for b in self.buffer_params:
            for d in b.shape:
                if isinstance(d, Var):
                    seen.setdefault(d, None)
        return tuple(seen)


def fast_math_error(value: Any) -> str | None:
    """Why `value` is not a fast-math mode (None when it is one)."""
    if isinstance(value, bool) or (isinstance(value, str) and value == "ftz"):
        return None
    return (
        f"fast_math={value!r} is not a mode: use False (IEEE float32, the default), 'ftz' (float32 "
        f"subnormals flushed to zero, nothing else changed) or True (NVRTC --use_fast_math)"
    )


@node
class DeviceKernel(Node):
    """One `__global__` function after SplitHostDevice."""

    name: str
    params: tuple[Buffer | Var, ...] = binder()
    grid: tuple[Any, ...]
    threads: tuple[int, ...]
    block_vars: tuple[Var, ...] = binder()
    thread_vars: tuple[Var, ...] = binder()
    body: Stmt
    dyn_shared_bytes: int = 0


@node
class Module(Node):
    """A host function (its launches refer to kernels by name) and its device kernels."""

    host: PrimFunc
    kernels: tuple[DeviceKernel, ...]

    def kernel(self, name: str) -> DeviceKernel:
        for k in self.kernels:
            if k.name == name:
                return k
        raise KeyError(name)
