"""The authoritative argument checks: pure functions over plain data, so every error is testable on CPU.

`bind_arguments(program, infos)` takes one `TensorInfo` per tensor parameter and the Python value of
each scalar, checks everything a launch needs, and returns the device and the value of every name a
launch reads (tensor data pointers, dynamic symbols, scalars). The generated fast path
(launch_codegen.py) checks the same things more cheaply and conservatively; whenever it is unsure it
calls back into this module, which either raises the precise error or accepts the call. Every message
names the argument and says expected vs found.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tsir.errors import LaunchError

from .dlpack import CUDA_DEVICE_TYPES, TensorInfo, device_str
from .host_program import GRID_LIMITS, SCALAR_DTYPES, TENSOR_DTYPES, HostProgram, TensorParam

__all__ = [
    "Binding",
    "bind_arguments",
    "check_count",
    "check_scalar",
    "ctype_range",
    "grid_error",
    "tsir_dtype",
]

_FLOAT32_MAX = 3.4028234663852886e38

# This process's symmetric heap as [start, end) (tsir.runtime.dist keeps it current; [0, 0] when no
# group exists). A list updated in place: generated fast paths hold a reference to it.
SYMMETRIC_HEAP: list[int] = [0, 0]
_DTYPE_FROM_DLPACK = {v: k for k, v in TENSOR_DTYPES.items()}


@dataclass(frozen=True, slots=True)
class Binding:
    """The result of binding: the tensors' device and every value a launch reads, by name."""

    device: tuple[int, int]
    values: dict[str, Any]


def tsir_dtype(dlpack_dtype: str) -> str:
    """tvm-ffi's dtype spelling in tsir's (`float8_e4m3fn` -> `float8_e4m3`)."""
    return _DTYPE_FROM_DLPACK.get(dlpack_dtype, dlpack_dtype)


def ctype_range(ctype: str) -> tuple[int, int] | None:
    """Inclusive integer range of a kernel argument C type (None for ptr and floats)."""
    if ctype in ("ptr", "float32", "float64"):
        return None
    _, lo, hi = SCALAR_DTYPES[ctype]
    return lo, hi


def check_count(program: HostProgram, nargs: int, name: str) -> None:
    n = len(program.params)
    if nargs != n:
        raise LaunchError(
            f"{program.signature(name)} takes {n} argument{'s' * (n != 1)}, got {nargs}"
        )


def _fmt_shape(shape: Sequence[int | str]) -> str:
    return f"[{', '.join(str(d) for d in shape)}]"


def _compact_strides(shape: Sequence[int]) -> tuple[int, ...]:
    out, acc = [], 1
    for d in reversed(shape):
        out.append(acc)
        acc *= d
    return tuple(reversed(out))


def _is_compact(shape: Sequence[int], strides: Sequence[int]) -> bool:
    """Row-major compact; a size-1 dim may have any stride, an empty tensor is always compact."""
    if 0 in shape:
        return True
    expected = 1
    for d, s in zip(reversed(shape), reversed(strides)):
        if d != 1:
            if s != expected:
                return False
            expected *= d
    return True


def _is_bool(value: Any) -> bool:
    tp = type(value)
    return tp is bool or (tp.__module__ == "numpy" and tp.__name__ in ("bool", "bool_"))


def check_scalar(name: str, dtype: str, value: Any) -> int | float | bool:
    """A scalar argument as the Python value to pack, range-checked for `dtype`."""
    kind, lo, hi = SCALAR_DTYPES[dtype]
    if kind == "bool":
        if _is_bool(value):
            return bool(value)
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise LaunchError(
            f"argument {name!r}: expected a bool, got {type(value).__name__} {value!r}"
        )
    if kind == "int":
        if _is_bool(value):
            raise LaunchError(
                f"argument {name!r}: expected an integer ({dtype}), got bool {value!r}"
            )
        try:
            v = operator.index(value)
        except TypeError:
            raise LaunchError(
                f"argument {name!r}: expected an integer ({dtype}), got {type(value).__name__} {value!r}"
            ) from None
        if not lo <= v <= hi:
            raise LaunchError(f"argument {name!r}: {v} does not fit {dtype} (range [{lo}, {hi}])")
        return v
    if _is_bool(value) or isinstance(value, (str, bytes)) or not hasattr(type(value), "__float__"):
        raise LaunchError(
            f"argument {name!r}: expected a number ({dtype}), got {type(value).__name__} {value!r}"
        )
    try:
        v = float(value)
    except OverflowError:
        raise LaunchError(f"argument {name!r}: {value!r} overflows {dtype}") from None
    if dtype == "float32" and math.isfinite(v) and abs(v) > _FLOAT32_MAX:
        raise LaunchError(
            f"argument {name!r}: {v!r} overflows float32 (largest finite value {_FLOAT32_MAX!r})"
        )
    return v


def _bind_tensor(
    p: TensorParam,
    info: TensorInfo,
    values: dict[str, Any],
    where: dict[str, str],
    device: tuple[int, int] | None,
    first: str | None,
) -> None:
    if info.device[0] not in CUDA_DEVICE_TYPES:
        hint = (
            "; move it to the GPU first (e.g. .cuda() / .to('cuda'))" if info.device[0] == 1 else ""
        )
        raise LaunchError(
            f"argument {p.name!r}: expected a CUDA tensor, got {device_str(info.device)}{hint}"
        )
    if device is not None and info.device != device:
        raise LaunchError(
            f"argument {p.name!r} is on {device_str(info.device)} but argument {first!r} is on "
            f"{device_str(device)}; all tensor arguments must be on one device"
        )
    want = TENSOR_DTYPES[p.dtype]
    if info.dtype != want:
        raise LaunchError(
            f"argument {p.name!r}: expected dtype {p.dtype}, got {tsir_dtype(info.dtype)}"
        )
    if len(info.shape) != len(p.shape):
        raise LaunchError(
            f"argument {p.name!r}: expected {len(p.shape)} dimension{'s' * (len(p.shape) != 1)} "
            f"(shape {_fmt_shape(p.shape)}), got {len(info.shape)} (shape {_fmt_shape(info.shape)})"
        )

    def bind(sym: str, value: int, what: str) -> None:
        if sym not in values:
            values[sym] = value
            where[sym] = f"argument {p.name!r} {what}"
        elif values[sym] != value:
            raise LaunchError(
                f"argument {p.name!r}: {what} is {sym}, which {where[sym]} set to {values[sym]}, "
                f"but here it is {value} (shape {_fmt_shape(info.shape)})"
            )

    for i, (want_dim, got) in enumerate(zip(p.shape, info.shape)):
        if isinstance(want_dim, str):
            bind(want_dim, got, f"dimension {i}")
        elif want_dim != got:
            raise LaunchError(
                f"argument {p.name!r}: dimension {i} must be {want_dim}, got {got} "
                f"(expected shape {_fmt_shape(p.shape)}, got {_fmt_shape(info.shape)})"
            )
    empty = 0 in info.shape
    if p.strides is None:
        if not _is_compact(info.shape, info.strides):
            raise LaunchError(
                f"argument {p.name!r}: expected a compact row-major tensor (strides "
                f"{_fmt_shape(_compact_strides(info.shape))}), got strides {_fmt_shape(info.strides)}; "
                f"pass {p.name}.contiguous()"
            )
    else:
        for i, (want_s, got) in enumerate(zip(p.strides, info.strides)):
            if isinstance(want_s, str):
                if got < 0:
                    raise LaunchError(
                        f"argument {p.name!r}: stride {i} is the symbol {want_s}, which must be >= 0, got {got}"
                    )
                bind(want_s, got, f"stride {i}")
            elif want_s != got and info.shape[i] != 1 and not empty:
                raise LaunchError(
                    f"argument {p.name!r}: stride {i} must be {want_s}, got {got} (expected strides "
                    f"{_fmt_shape(p.strides)}, got {_fmt_shape(info.strides)})"
                )
    if p.symmetric and not empty:
        _check_symmetric(p, info)
    offset = info.ptr % p.align
    if offset and not empty:
        raise LaunchError(
            f"argument {p.name!r}: data pointer 0x{info.ptr:x} is not aligned to {p.align} bytes "
            f"(it is {offset} bytes past a {p.align}-byte boundary, e.g. a slice starting mid-vector); "
            f"pass {p.name}.contiguous() or a freshly allocated tensor"
        )
    values[p.name] = info.ptr


def _check_symmetric(p: TensorParam, info: TensorInfo) -> None:
    """A symmetric parameter's tensor must lie inside this rank's symmetric heap: the kernel
    addresses its peers' copies at the same offset from their heaps."""
    start, end = SYMMETRIC_HEAP
    if start == end:
        raise LaunchError(
            f"argument {p.name!r} must be a symmetric tensor, but this process has no symmetric heap: "
            f"call tsir.runtime.dist.init() and allocate it with tsir.runtime.dist.empty/zeros"
        )
    from .launch_codegen import ITEMSIZE

    # the last element's offset + 1 (strides are >= 0 here: compactness was checked above)
    extent = 1 + sum((d - 1) * s for d, s in zip(info.shape, info.strides))
    nbytes = extent * ITEMSIZE[tsir_dtype(info.dtype)]
    if not (start <= info.ptr and info.ptr + nbytes <= end):
        raise LaunchError(
            f"argument {p.name!r} must be a symmetric tensor (allocated with "
            f"tsir.runtime.dist.empty/zeros, or a view of one), but its {nbytes} bytes at 0x{info.ptr:x} "
            f"are not inside this rank's symmetric heap [0x{start:x}, 0x{end:x})"
        )


def bind_arguments(program: HostProgram, args: Sequence[Any], name: str = "kernel") -> Binding:
    """Check every argument against `program` and return the values a launch reads.

    `args` holds, in parameter order, a `TensorInfo` for each tensor parameter and the Python value
    of each scalar parameter.
    """
    check_count(program, len(args), name)
    values: dict[str, Any] = {}
    where: dict[str, str] = {}
    device: tuple[int, int] | None = None
    first: str | None = None
    for p, arg in zip(program.params, args):
        if isinstance(p, TensorParam):
            if not isinstance(arg, TensorInfo):
                raise LaunchError(
                    f"argument {p.name!r}: expected a tensor, got {type(arg).__name__}"
                )
            _bind_tensor(p, arg, values, where, device, first)
            if device is None:
                device, first = arg.device, p.name
        else:
            values[p.name] = check_scalar(p.name, p.dtype, arg)
    for step in program.steps:
        for a in step.args:
            rng = ctype_range(a.ctype)
            v = values[a.name]
            if rng is not None and not rng[0] <= int(v) <= rng[1]:
                origin = where.get(a.name, f"argument {a.name!r}")
                raise LaunchError(
                    f"{a.name} = {v} (from {origin}) does not fit the {a.ctype} parameter {a.name!r} of "
                    f"kernel {step.kernel!r}; it was compiled for smaller sizes"
                )
    return Binding(device if device is not None else (2, -1), values)


def grid_error(program: HostProgram, step: int, dim: int, value: int) -> LaunchError:
    """The error for a grid extent that is negative or above CUDA's limit."""
    s = program.steps[step]
    axis = "xyz"[dim]
    if value < 0:
        return LaunchError(
            f"kernel {s.kernel!r}: grid dimension {axis} = {s.grid[dim]!r} evaluates to {value}, which is "
            f"negative; check the scalar arguments it reads"
        )
    return LaunchError(
        f"kernel {s.kernel!r}: grid dimension {axis} = {s.grid[dim]!r} evaluates to {value}, above CUDA's "
        f"limit of {GRID_LIMITS[dim]} blocks"
    )
