"""Data types: scalar element types and their vector forms."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from .errors import DTypeError

__all__ = ["DataType", "dtype", "DTypeLike", "bool_", "int32", "int64", "float32"]

# name -> (kind, bits). kind is one of "int", "uint", "float", "bfloat", "float8", "bool", "handle".
_SCALARS: dict[str, tuple[str, int]] = {
    "bool": ("bool", 8),
    "int8": ("int", 8),
    "int16": ("int", 16),
    "int32": ("int", 32),
    "int64": ("int", 64),
    "uint8": ("uint", 8),
    "uint16": ("uint", 16),
    "uint32": ("uint", 32),
    "uint64": ("uint", 64),
    "float16": ("float", 16),
    "bfloat16": ("bfloat", 16),
    "float32": ("float", 32),
    "float64": ("float", 64),
    "float8_e4m3": ("float8", 8),
    "float8_e5m2": ("float8", 8),
    "handle": ("handle", 64),
}

_ALIASES = {
    "float": "float32",
    "half": "float16",
    "double": "float64",
    "int": "int32",
    "bf16": "bfloat16",
    "fp16": "float16",
    "fp32": "float32",
    "fp64": "float64",
    "float8_e4m3fn": "float8_e4m3",
    "e4m3": "float8_e4m3",
    "e5m2": "float8_e5m2",
}


@dataclass(frozen=True, slots=True)
class DataType:
    """An element type, optionally a vector of `lanes` elements (`float32x4`)."""

    name: str
    lanes: int = 1

    def __post_init__(self) -> None:
        if self.name not in _SCALARS:
            raise ValueError(f"unknown dtype {self.name!r}; known: {', '.join(_SCALARS)}")
        if self.lanes < 1:
            raise ValueError(f"dtype lanes must be >= 1, got {self.lanes}")

    @property
    def kind(self) -> str:
        return _SCALARS[self.name][0]

    @property
    def bits(self) -> int:
        """Bits of one element (bool is stored in a byte)."""
        return _SCALARS[self.name][1]

    @property
    def bytes(self) -> int:
        """Bytes of the whole value, all lanes."""
        return self.bits * self.lanes // 8

    @property
    def element(self) -> DataType:
        return self if self.lanes == 1 else DataType(self.name)

    def with_lanes(self, lanes: int) -> DataType:
        return DataType(self.name, lanes)

    @property
    def is_bool(self) -> bool:
        return self.kind == "bool"

    @property
    def is_int(self) -> bool:
        """Signed or unsigned integer (not bool)."""
        return self.kind in ("int", "uint")

    @property
    def is_signed_int(self) -> bool:
        return self.kind == "int"

    @property
    def is_unsigned(self) -> bool:
        return self.kind == "uint"

    @property
    def is_float(self) -> bool:
        """Any floating-point type: IEEE, bfloat16, fp8."""
        return self.kind in ("float", "bfloat", "float8")

    @property
    def is_handle(self) -> bool:
        return self.kind == "handle"

    @property
    def is_vector(self) -> bool:
        return self.lanes > 1

    def min_value(self) -> int | float:
        if self.kind == "int":
            return -(1 << (self.bits - 1))
        if self.kind in ("uint", "bool"):
            return 0
        return -float("inf")

    def max_value(self) -> int | float:
        if self.kind == "int":
            return (1 << (self.bits - 1)) - 1
        if self.kind == "uint":
            return (1 << self.bits) - 1
        if self.kind == "bool":
            return 1
        return float("inf")

    def __str__(self) -> str:
        return self.name if self.lanes == 1 else f"{self.name}x{self.lanes}"

    def __repr__(self) -> str:
        return f"dtype({str(self)!r})"


DTypeLike = "DataType | str"


@cache
def _parse(text: str) -> DataType:
    name = _ALIASES.get(text, text)
    if name in _SCALARS:
        return DataType(name)
    # vector form: float32x4
    base, sep, lanes = name.rpartition("x")
    if sep and lanes.isdigit():
        base = _ALIASES.get(base, base)
        if base in _SCALARS:
            return DataType(base, int(lanes))
    raise ValueError(text)


def dtype(value: object) -> DataType:
    """Normalize a dtype given as a DataType, a string, or an object with a dtype name (numpy, torch)."""
    if isinstance(value, DataType):
        return value
    if isinstance(value, str):
        text = value
    else:
        text = str(value)
        if text.startswith("torch."):
            text = text[len("torch.") :]
    try:
        return _parse(text)
    except ValueError:
        known = ", ".join(n for n in _SCALARS if n != "handle")
        raise DTypeError(f"unknown dtype {value!r}; expected one of {known}") from None


bool_ = DataType("bool")
int32 = DataType("int32")
int64 = DataType("int64")
float32 = DataType("float32")
