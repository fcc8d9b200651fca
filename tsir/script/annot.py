"""Parameter annotations of the script forms: `A: T.Tensor((M, K), dtype)` and its relatives.

An annotation is a `TensorSpec` (shape, dtype, scope). The parser turns a spec on a parameter into
`T.param`; `T.SharedBuffer`/`T.FragmentBuffer` only document a macro's parameters (macros receive
the buffers themselves).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..builder.views import view_data
from ..dtype import DataType
from ..dtype import dtype as as_dtype
from ..errors import BuildError, UnsupportedError, user_location

__all__ = [
    "TensorSpec",
    "Tensor",
    "Buffer",
    "SharedBuffer",
    "FragmentBuffer",
    "LocalBuffer",
    "is_dtype_annotation",
]


@dataclass(frozen=True)
class TensorSpec:
    """What `T.Tensor(shape, dtype)` denotes: a buffer of that shape, dtype and memory scope."""

    shape: tuple[Any, ...]
    dtype: DataType
    scope: str = "global"

    def __repr__(self) -> str:
        return f"T.Tensor({self.shape!r}, {str(self.dtype)!r}, scope={self.scope!r})"


def _shape(shape: Any, what: str) -> tuple[Any, ...]:
    if isinstance(shape, (list, tuple)):
        return tuple(shape)
    if isinstance(shape, int) or hasattr(shape, "dtype"):
        return (shape,)
    raise BuildError(f"{what}: the shape must be a tuple or list of dimensions, got {shape!r}")


class _SpecMaker:
    """`T.Tensor((M, K), dtype)` and `T.Tensor[(M, K), dtype]` both make a TensorSpec."""

    def __init__(self, name: str, scope: str):
        self.name = name
        self.scope = scope

    def __call__(self, shape: Any, dtype: Any = "float32", data: Any = None, **kwargs: Any) -> Any:
        if data is not None and not kwargs:
            # Inside a kernel: a view of `buf`'s storage (T.view), not an annotation.
            return view_data(
                data,
                _shape(shape, f"T.{self.name}"),
                dtype,
                f"T.{self.name}(shape, dtype, buf.data)",
            )
        if kwargs:
            raise UnsupportedError(
                f"T.{self.name}: the argument(s) {', '.join(sorted(kwargs))} are not supported "
                "(tsir buffers are compact, row-major and 16-byte aligned)",
                loc=user_location(),
            )
        return TensorSpec(_shape(shape, f"T.{self.name}"), as_dtype(dtype), self.scope)

    def __getitem__(self, key: Any) -> TensorSpec:
        if not isinstance(key, tuple) or len(key) != 2:
            raise BuildError(f"T.{self.name}[shape, dtype] takes a shape and a dtype, got {key!r}")
        return self(key[0], key[1])

    def __repr__(self) -> str:
        return f"T.{self.name}"


Tensor = _SpecMaker("Tensor", "global")
Buffer = _SpecMaker("Buffer", "global")
SharedBuffer = _SpecMaker("SharedBuffer", "shared.dyn")
FragmentBuffer = _SpecMaker("FragmentBuffer", "local.fragment")
LocalBuffer = _SpecMaker("LocalBuffer", "local")


def is_dtype_annotation(value: Any) -> DataType | None:
    """The dtype a scalar annotation (`n: T.int32`, `x: "float32"`) names, else None."""
    if isinstance(value, DataType):
        return value
    if isinstance(value, str):
        try:
            return as_dtype(value)
        except Exception:
            return None
    name = getattr(value, "__name__", None)
    if callable(value) and isinstance(name, str):
        try:
            dt = as_dtype(name)
        except Exception:
            return None
        return dt if str(dt) == name else None
    return None
