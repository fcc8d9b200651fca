"""Tensors through DLPack (apache-tvm-ffi), streams of the frameworks that produced them.

tsir never imports torch or CuPy to accept their tensors: `tvm_ffi.from_dlpack` imports any object
with `__dlpack__` (and takes torch's C exchange API fast path when torch provides it). Only the
*current stream* of a framework needs the framework itself, and it is imported lazily, only when one
of its tensors is passed with `stream=None`.

`RawTensor` goes the other way: a minimal DLPack producer over memory tsir owns (a `cuMemAlloc`
pointer, a symmetric heap), for callers without torch or CuPy, and for tests.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tsir.errors import LaunchError

from .host_program import TENSOR_DTYPES

__all__ = [
    "CUDA_DEVICE_TYPES",
    "KDL_CPU",
    "KDL_CUDA",
    "KDL_CUDA_MANAGED",
    "RawTensor",
    "TensorInfo",
    "current_stream_fn",
    "device_str",
    "from_dlpack",
    "import_tensor",
    "normalize_stream",
    "tensor_info",
]

KDL_CPU = 1
KDL_CUDA = 2
KDL_CUDA_MANAGED = 13
CUDA_DEVICE_TYPES = (KDL_CUDA, KDL_CUDA_MANAGED)
_DEVICE_NAMES = {
    1: "cpu",
    2: "cuda",
    3: "cuda_host",
    4: "opencl",
    7: "vulkan",
    8: "metal",
    9: "vpi",
    10: "rocm",
    11: "rocm_host",
    12: "ext_dev",
    13: "cuda_managed",
    14: "oneapi",
    15: "webgpu",
    16: "hexagon",
    17: "maia",
}


def device_str(device: tuple[int, int]) -> str:
    """`cuda:0`, `cuda_managed:1`, `cpu` (a DLPack (device_type, device_id) pair)."""
    name = _DEVICE_NAMES.get(device[0], f"device_type {device[0]}")
    return name if device[0] == KDL_CPU else f"{name}:{device[1]}"


@dataclass(frozen=True, slots=True)
class TensorInfo:
    """What the binder needs to know about one tensor (strides in elements, dtype as tvm-ffi spells
    it: `float32`, `float8_e4m3fn`, ...). Plain data, so the checks are testable without a GPU."""

    shape: tuple[int, ...]
    strides: tuple[int, ...]
    dtype: str
    device: tuple[int, int]
    ptr: int


_from_dlpack: Callable[[Any], Any] | None = None


def from_dlpack() -> Callable[[Any], Any]:
    """`tvm_ffi.from_dlpack`, imported on first use (importing tvm_ffi also imports torch if present)."""
    global _from_dlpack
    if _from_dlpack is None:
        try:
            import tvm_ffi
        except ImportError as e:
            raise LaunchError(
                f"cannot import tvm_ffi ({e}); `pip install apache-tvm-ffi`"
            ) from None
        _from_dlpack = tvm_ffi.from_dlpack
    return _from_dlpack


def import_tensor(obj: Any, param: str, index: int) -> Any:
    """`tvm_ffi.from_dlpack(obj)`, or a LaunchError saying which argument is not a tensor."""
    if not hasattr(obj, "__dlpack__") and type(obj).__name__ != "PyCapsule":
        raise LaunchError(
            f"argument {param!r} (#{index + 1}): expected a tensor (an object with __dlpack__, such as a "
            f"torch tensor or a CuPy array), got {type(obj).__name__}"
        )
    try:
        return from_dlpack()(obj)
    except Exception as e:  # noqa: BLE001  (whatever the producer raised, reported with the argument)
        raise LaunchError(
            f"argument {param!r} (#{index + 1}): importing the {type(obj).__name__} through DLPack "
            f"failed: {type(e).__name__}: {e}"
        ) from None


def tensor_info(t: Any) -> TensorInfo:
    """A `TensorInfo` of a `tvm_ffi.Tensor`."""
    return TensorInfo(
        shape=tuple(t.shape),
        strides=tuple(t.strides),
        dtype=str(t.dtype),
        device=tuple(t.__dlpack_device__()),
        ptr=t.data_ptr(),
    )


# ---- the current stream of the framework whose tensor was passed ---------------------------------

_STREAM_FNS: dict[type, Callable[[int], int]] = {}


def _no_stream(device: int) -> int:
    return 0  # the legacy default stream


def _torch_stream_fn() -> Callable[[int], int]:
    import torch

    raw = getattr(
        torch._C, "_cuda_getCurrentRawStream", None
    )  # what torch.cuda.current_stream reads
    if raw is not None:
        return raw

    def current(device: int) -> int:
        return torch.cuda.current_stream(device).cuda_stream

    return current


def _cupy_stream_fn() -> Callable[[int], int]:
    import cupy

    def current(device: int) -> int:
        with cupy.cuda.Device(device):
            return cupy.cuda.get_current_stream().ptr

    return current


def current_stream_fn(tp: type) -> Callable[[int], int]:
    """For a tensor type, a function `device_id -> stream handle` giving its framework's current
    stream (torch, CuPy), or the legacy default stream 0 for others. Cached per type."""
    fn = _STREAM_FNS.get(tp)
    if fn is None:
        roots = {c.__module__.split(".", 1)[0] for c in tp.__mro__}
        if "torch" in roots:
            fn = _torch_stream_fn()
        elif "cupy" in roots or "cupy_backends" in roots:
            fn = _cupy_stream_fn()
        else:
            fn = _no_stream
        _STREAM_FNS[tp] = fn
    return fn


def normalize_stream(stream: Any) -> int:
    """A `stream=` argument as a raw CUstream handle: an int, an object with `__cuda_stream__()`
    (returning `(version, handle)`), `.cuda_stream` (torch), `.ptr` (CuPy) or a cuda.bindings CUstream."""
    if isinstance(stream, bool):
        pass
    elif isinstance(stream, int):
        if stream >= 0:
            return stream
        raise LaunchError(f"argument 'stream': a stream handle must be >= 0, got {stream}")
    elif hasattr(stream, "__cuda_stream__"):
        value = stream.__cuda_stream__()
        if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], int):
            return value[1]
        raise LaunchError(
            f"argument 'stream': {type(stream).__name__}.__cuda_stream__() returned {value!r}, "
            f"expected a (version, handle) pair"
        )
    elif hasattr(stream, "cuda_stream"):
        return int(stream.cuda_stream)
    elif hasattr(stream, "ptr"):
        return int(stream.ptr)
    elif type(stream).__name__ in ("CUstream", "cudaStream_t"):
        return int(stream)
    raise LaunchError(
        f"argument 'stream': expected None, an int handle, or a stream object (with __cuda_stream__, "
        f".cuda_stream or .ptr), got {type(stream).__name__}"
    )


# ---- RawTensor: a DLPack producer over raw memory -------------------------------------------------


class _DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class _DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class _DLTensor(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("device", _DLDevice),
        ("ndim", ctypes.c_int32),
        ("dtype", _DLDataType),
        ("shape", ctypes.POINTER(ctypes.c_int64)),
        ("strides", ctypes.POINTER(ctypes.c_int64)),
        ("byte_offset", ctypes.c_uint64),
    ]


_DELETER = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


class _DLManagedTensor(ctypes.Structure):
    _fields_ = [("dl_tensor", _DLTensor), ("manager_ctx", ctypes.c_void_p), ("deleter", _DELETER)]


# DLPack type codes (dlpack.h DLDataTypeCode) of each tvm-ffi dtype string.
_DL_CODES = {
    "int": 0,
    "uint": 1,
    "float": 2,
    "bfloat": 4,
    "bool": 6,
    "float8_e4m3fn": 10,
    "float8_e5m2": 12,
}
_LIVE: dict[
    int, tuple[Any, ...]
] = {}  # exported DLManagedTensors, kept alive until their deleter runs


def _dl_dtype(dtype: str) -> tuple[int, int]:
    name = TENSOR_DTYPES.get(dtype, dtype)
    if name in _DL_CODES:
        return _DL_CODES[name], 8
    for prefix in ("bfloat", "uint", "int", "float"):
        if name.startswith(prefix) and name[len(prefix) :].isdigit():
            return _DL_CODES[prefix], int(name[len(prefix) :])
    raise ValueError(f"RawTensor: unknown dtype {dtype!r}")


@_DELETER
def _deleter(ptr: int | None) -> None:
    if ptr:
        managed = _DLManagedTensor.from_address(ptr)
        _LIVE.pop(managed.manager_ctx or 0, None)


_PyCapsule_New = ctypes.pythonapi.PyCapsule_New
_PyCapsule_New.restype = ctypes.py_object
_PyCapsule_New.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
_PyCapsule_IsValid = ctypes.pythonapi.PyCapsule_IsValid
_PyCapsule_IsValid.restype = ctypes.c_int
_PyCapsule_IsValid.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
_PyCapsule_GetPointer = ctypes.pythonapi.PyCapsule_GetPointer
_PyCapsule_GetPointer.restype = ctypes.c_void_p
_PyCapsule_GetPointer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]


@ctypes.CFUNCTYPE(None, ctypes.c_void_p)
def _capsule_destructor(capsule: int | None) -> None:
    # Runs while the capsule dies (refcount 0), so it takes a raw pointer: an unconsumed capsule
    # still owns its tensor and must release it; a consumed one was renamed "used_dltensor".
    if capsule and _PyCapsule_IsValid(capsule, b"dltensor"):
        _deleter(_PyCapsule_GetPointer(capsule, b"dltensor"))


class RawTensor:
    """A DLPack view of raw memory: `RawTensor(ptr, (M, N), "float32", device=(2, 0))`.

    It does not own the memory; `owner` (any object) is kept alive as long as the view or any
    DLPack consumer of it lives. Exports legacy (unversioned) capsules, which every consumer accepts.
    """

    def __init__(
        self,
        ptr: int,
        shape: tuple[int, ...],
        dtype: str,
        device: tuple[int, int] = (KDL_CUDA, 0),
        strides: tuple[int, ...] | None = None,
        owner: Any = None,
    ) -> None:
        self.ptr = int(ptr)
        self.shape = tuple(int(d) for d in shape)
        self.dtype = dtype
        self.device = (int(device[0]), int(device[1]))
        self.strides = None if strides is None else tuple(int(s) for s in strides)
        self.owner = owner
        self._code, self._bits = _dl_dtype(dtype)

    def __dlpack_device__(self) -> tuple[int, int]:
        return self.device

    def __dlpack__(
        self,
        *,
        stream: Any = None,
        max_version: Any = None,
        dl_device: Any = None,
        copy: Any = None,
    ) -> Any:
        ndim = len(self.shape)
        shape = (ctypes.c_int64 * max(ndim, 1))(*self.shape)
        strides = None if self.strides is None else (ctypes.c_int64 * max(ndim, 1))(*self.strides)
        managed = _DLManagedTensor()
        t = managed.dl_tensor
        t.data = self.ptr
        t.device = _DLDevice(*self.device)
        t.ndim = ndim
        t.dtype = _DLDataType(self._code, self._bits, 1)
        t.shape = ctypes.cast(shape, ctypes.POINTER(ctypes.c_int64))
        if strides is not None:
            t.strides = ctypes.cast(strides, ctypes.POINTER(ctypes.c_int64))
        key = ctypes.addressof(managed)
        managed.manager_ctx = key
        managed.deleter = _deleter
        _LIVE[key] = (managed, shape, strides, self)
        dest = ctypes.cast(_capsule_destructor, ctypes.c_void_p).value
        return _PyCapsule_New(key, b"dltensor", dest)

    def __repr__(self) -> str:
        return f"RawTensor(0x{self.ptr:x}, {self.shape}, {self.dtype!r}, {device_str(self.device)})"
