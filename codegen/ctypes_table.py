"""Target facts for CUDA C++: type spellings, constants, math function names per dtype."""

from __future__ import annotations

import math
import struct

from tsir.dtype import DataType
from tsir.errors import UnsupportedError

__all__ = ["c_type", "c_float_literal", "math_function", "vector_word", "HEADER_OF"]

_C_TYPES = {
    "bool": "bool",
    "int8": "signed char",
    "int16": "short",
    "int32": "int",
    "int64": "long long",
    "uint8": "unsigned char",
    "uint16": "unsigned short",
    "uint32": "unsigned int",
    "uint64": "unsigned long long",
    "float16": "half",
    "bfloat16": "__nv_bfloat16",
    "float32": "float",
    "float64": "double",
    "float8_e4m3": "__nv_fp8_e4m3",
    "float8_e5m2": "__nv_fp8_e5m2",
}

# The CUDA header that defines a type, included only when the type is used.
HEADER_OF = {
    "float16": "cuda_fp16.h",
    "bfloat16": "cuda_bf16.h",
    "float8_e4m3": "cuda_fp8.h",
    "float8_e5m2": "cuda_fp8.h",
}


def c_type(dt: DataType) -> str:
    if dt.lanes != 1:
        raise UnsupportedError(f"no scalar C type for the vector dtype {dt}")
    try:
        return _C_TYPES[dt.name]
    except KeyError:
        raise UnsupportedError(f"dtype {dt} has no CUDA spelling") from None


def c_float_literal(value: float, dt: DataType) -> str:
    """A CUDA constant of a floating dtype (exact: float32 values print with enough digits)."""
    if math.isnan(value):
        text = (
            "__int_as_float(0x7fffffff)"
            if dt.bits <= 32
            else "__longlong_as_double(0x7ff8000000000000LL)"
        )
    elif math.isinf(value):
        sign = "-" if value < 0 else ""
        text = (
            f"{sign}__int_as_float(0x7f800000)"
            if dt.bits <= 32 or dt.name != "float64"
            else f"{sign}__longlong_as_double(0x7ff0000000000000LL)"
        )
    elif dt.name == "float64":
        text = repr(float(value))
        if "e" not in text and "." not in text:
            text += ".0"
    else:
        f32 = struct.unpack("f", struct.pack("f", value))[0]
        text = repr(f32)
        if "e" not in text and "." not in text and "inf" not in text:
            text += ".0"
        text += "f"
    if dt.name == "float16":
        return f"__float2half({text})"
    if dt.name == "bfloat16":
        return f"__float2bfloat16({text})"
    if dt.name in ("float8_e4m3", "float8_e5m2"):
        return f"{c_type(dt)}({text})"
    return text


_MATH = {
    # op: (float32, float64, half/bfloat16)
    "exp": ("expf", "exp", "hexp"),
    "exp2": ("exp2f", "exp2", "hexp2"),
    "log": ("logf", "log", "hlog"),
    "log2": ("log2f", "log2", "hlog2"),
    "sqrt": ("sqrtf", "sqrt", "hsqrt"),
    "rsqrt": ("rsqrtf", "rsqrt", "hrsqrt"),
    "sin": ("sinf", "sin", "hsin"),
    "cos": ("cosf", "cos", "hcos"),
    "tanh": ("tanhf", "tanh", None),
    "floor": ("floorf", "floor", "hfloor"),
    "ceil": ("ceilf", "ceil", "hceil"),
    "round": ("roundf", "round", None),
    "tan": ("tanf", "tan", None),
    "exp10": ("exp10f", "exp10", "hexp10"),
    "log10": ("log10f", "log10", "hlog10"),
    "erf": ("erff", "erf", None),
    # Fast-math intrinsics: float32 only in CUDA (half types compute through them in float32);
    # float64 has no approximate variant and uses the accurate function.
    "__exp": ("__expf", "exp", None),
    "__exp10": ("__exp10f", "exp10", None),
    "__log": ("__logf", "log", None),
    "__log2": ("__log2f", "log2", None),
    "__log10": ("__log10f", "log10", None),
    "__tan": ("__tanf", "tan", None),
    "__cos": ("__cosf", "cos", None),
    "__sin": ("__sinf", "sin", None),
    "pow": ("powf", "pow", None),
    "fma": ("fmaf", "fma", "__hfma"),
    "abs_float": ("fabsf", "fabs", "__habs"),
    "max": ("fmaxf", "fmax", "__hmax"),
    "min": ("fminf", "fmin", "__hmin"),
}


def math_function(op: str, dt: DataType) -> str | None:
    """The CUDA function for a float math op on dt, or None when it must go through float32."""
    entry = _MATH.get(op)
    if entry is None:
        raise UnsupportedError(f"no CUDA spelling for the math op {op!r}")
    if dt.name == "float32":
        return entry[0]
    if dt.name == "float64":
        return entry[1]
    if dt.name in ("float16", "bfloat16"):
        return entry[2]
    return None


def vector_word(nbytes: int) -> str:
    """The unsigned type moving `nbytes` bytes in one access."""
    try:
        return {
            16: "uint4",
            8: "uint2",
            4: "unsigned int",
            2: "unsigned short",
            1: "unsigned char",
        }[nbytes]
    except KeyError:
        raise UnsupportedError(f"no {nbytes}-byte vector access") from None
