"""TMA tensor maps: validated, encoded on the host (`cuTensorMapEncodeTiled` through
`cuda.bindings.driver`), and cached per (device, pointer, dtype, shape, strides, box, swizzle).

A kernel that loads tiles with `cp.async.bulk.tensor` takes each map by value as a
`const __grid_constant__ tsir::TmaDescriptor` parameter (codegen/include/tsir/tma.h); the launcher
passes the 128 bytes that `TensorMap.address` points at.

Shapes, strides and boxes are given the way tsir and torch write them: outermost dimension first,
strides in elements. The driver wants them innermost first, strides in bytes and without the
innermost one; `encode_args` does that conversion. Every rule of the driver API that a tsir program
can break is checked first (`check_tensor_map`), so a bad map is a `TensorMapError` naming the rule
instead of CUDA_ERROR_INVALID_VALUE:

- rank 1..5; a dtype TMA can copy;
- the innermost dimension is contiguous (stride 1);
- the global address is 16-byte aligned;
- every dimension is 1..2**32 elements;
- every other stride is a multiple of 16 bytes and below 2**40 bytes;
- every box dimension is 1..256 elements, and the box's inner extent is a multiple of 16 bytes;
- with a swizzle, the box's inner extent is at most the swizzle width (32, 64 or 128 bytes).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from tsir.dtype import dtype as as_dtype
from tsir.errors import LaunchError
from tsir.layout.swizzle import SwizzleMode

__all__ = [
    "TensorMapError",
    "TensorMapSpec",
    "TensorMap",
    "TensorMapCache",
    "aligned_copy",
    "check_tensor_map",
    "encode_args",
    "tensor_map",
    "default_cache",
]

MAX_RANK: Final = 5
MAX_BOX: Final = 256
MAX_DIM: Final = 1 << 32
MAX_STRIDE_BYTES: Final = 1 << 40

# tsir dtype name -> CUtensorMapDataType member name. fp8 travels as UINT8 (TMA only moves bytes).
_TMA_DTYPES: Final = {
    "uint8": "UINT8",
    "int8": "UINT8",
    "float8_e4m3": "UINT8",
    "float8_e5m2": "UINT8",
    "uint16": "UINT16",
    "int16": "UINT16",
    "float16": "FLOAT16",
    "bfloat16": "BFLOAT16",
    "uint32": "UINT32",
    "int32": "INT32",
    "float32": "FLOAT32",
    "uint64": "UINT64",
    "int64": "INT64",
    "float64": "FLOAT64",
}


class TensorMapError(LaunchError):
    """A tensor map that breaks a TMA rule (the message names the rule and the fix)."""


@dataclass(frozen=True, slots=True)
class TensorMapSpec:
    """What one tensor map describes. Outermost dimension first; strides in elements."""

    dtype: str
    address: int
    shape: tuple[int, ...]
    strides: tuple[int, ...]
    box: tuple[int, ...]
    swizzle: SwizzleMode = SwizzleMode.NONE
    l2_promotion: int = 128
    """L2 fetch granularity in bytes: 0 (none), 64, 128 or 256."""
    oob_nan: bool = False
    """Fill out-of-bounds elements with NaN instead of zero (floating-point types only)."""

    @property
    def element_bytes(self) -> int:
        return as_dtype(self.dtype).bits // 8


def check_tensor_map(spec: TensorMapSpec, what: str = "the tensor") -> None:
    """Raise TensorMapError naming the first TMA rule `spec` breaks."""

    def fail(rule: str, found: str, fix: str) -> None:
        raise TensorMapError(f"cannot describe {what} for TMA: {rule}; {found}. {fix}")

    rank = len(spec.shape)
    if not 1 <= rank <= MAX_RANK:
        fail("a tensor map has 1 to 5 dimensions", f"got {rank}", "Reshape or split the copy.")
    if len(spec.strides) != rank or len(spec.box) != rank:
        fail(
            "shape, strides and box have one entry per dimension",
            f"got {len(spec.shape)}, {len(spec.strides)} and {len(spec.box)}",
            "Pass matching tuples.",
        )
    if as_dtype(spec.dtype).name not in _TMA_DTYPES:
        fail(
            "TMA copies 8/16/32/64-bit integer and floating-point elements",
            f"got {spec.dtype}",
            "Use cp.async for this tensor.",
        )
    esize = spec.element_bytes
    if spec.strides[-1] != 1:
        fail(
            "the innermost dimension must be contiguous (stride 1)",
            f"its stride is {spec.strides[-1]} elements",
            "Copy from a contiguous view, or make the contiguous dimension the last one.",
        )
    if spec.address % 16:
        fail(
            "the global base address must be 16-byte aligned",
            f"it is {spec.address:#x} ({spec.address % 16} bytes past a 16-byte boundary)",
            "Allocate (or slice) the tensor at a 16-byte boundary.",
        )
    for d, n in enumerate(spec.shape):
        if not 1 <= n <= MAX_DIM:
            fail("every dimension has 1 to 2**32 elements", f"dimension {d} has {n}", "")
    for d, s in enumerate(spec.strides[:-1]):
        nbytes = s * esize
        if nbytes % 16 or not 0 < nbytes < MAX_STRIDE_BYTES:
            fail(
                "every stride but the innermost must be a positive multiple of 16 bytes "
                "below 2**40",
                f"dimension {d} has a stride of {s} elements = {nbytes} bytes",
                "Pad the rows (a leading dimension that is a multiple of "
                f"{16 // esize if esize < 16 else 1} elements), or use cp.async.",
            )
    for d, b in enumerate(spec.box):
        if not 1 <= b <= MAX_BOX:
            fail(
                "every box dimension has 1 to 256 elements",
                f"box dimension {d} is {b}",
                "Load the tile with several boxes.",
            )
    inner = spec.box[-1] * esize
    if inner % 16:
        fail(
            "the box's inner extent must be a multiple of 16 bytes",
            f"it is {spec.box[-1]} x {esize} = {inner} bytes",
            "Widen the tile's contiguous extent.",
        )
    if spec.swizzle is not SwizzleMode.NONE and inner > spec.swizzle.value:
        fail(
            f"with the {spec.swizzle.value}-byte swizzle the box's inner extent may be at most "
            f"{spec.swizzle.value} bytes",
            f"it is {inner} bytes",
            f"Load the tile as {inner // spec.swizzle.value} boxes of "
            f"{spec.swizzle.value // esize} elements (tsir.layout.wgmma_layouts.tma_boxes).",
        )
    if spec.l2_promotion not in (0, 64, 128, 256):
        fail("L2 promotion is 0, 64, 128 or 256 bytes", f"got {spec.l2_promotion}", "")
    if spec.oob_nan and not as_dtype(spec.dtype).is_float:
        fail("NaN out-of-bounds fill needs a floating-point type", f"got {spec.dtype}", "")


@dataclass(frozen=True, slots=True)
class EncodeArgs:
    """`cuTensorMapEncodeTiled`'s arguments (innermost first, strides in bytes)."""

    data_type: str
    rank: int
    address: int
    global_dim: tuple[int, ...]
    global_strides: tuple[int, ...]
    box_dim: tuple[int, ...]
    element_strides: tuple[int, ...]
    swizzle: str
    l2_promotion: str
    oob_fill: str


def encode_args(spec: TensorMapSpec) -> EncodeArgs:
    """The driver's view of a checked spec."""
    esize = spec.element_bytes
    l2 = "NONE" if spec.l2_promotion == 0 else f"L2_{spec.l2_promotion}B"
    return EncodeArgs(
        data_type=_TMA_DTYPES[as_dtype(spec.dtype).name],
        rank=len(spec.shape),
        address=spec.address,
        global_dim=tuple(reversed(spec.shape)),
        global_strides=tuple(s * esize for s in reversed(spec.strides[:-1])),
        box_dim=tuple(reversed(spec.box)),
        element_strides=(1,) * len(spec.shape),
        swizzle=spec.swizzle.tma_name.removeprefix("CU_TENSOR_MAP_SWIZZLE_"),
        l2_promotion=l2,
        oob_fill="NAN_REQUEST_ZERO_FMA" if spec.oob_nan else "NONE",
    )


@dataclass(frozen=True, slots=True, eq=False)
class TensorMap:
    """An encoded tensor map: `address` is the host address of its 128 bytes, 64-byte aligned
    (what a kernel parameter pointer passes), `raw` keeps their storage alive."""

    spec: TensorMapSpec
    raw: Any
    address: int

    def to_bytes(self) -> bytes:
        import ctypes

        return ctypes.string_at(self.address, 128)


MAP_BYTES: Final = 128
MAP_ALIGN: Final = 64


def aligned_copy(address: int) -> tuple[Any, int]:
    """The 128 bytes at `address` copied into a buffer of our own at a 64-byte boundary (a
    CUtensorMap's alignment): (the buffer, to keep alive; the copy's address)."""
    import ctypes

    buffer = (ctypes.c_uint8 * (MAP_BYTES + MAP_ALIGN))()
    start = ctypes.addressof(buffer)
    aligned = (start + MAP_ALIGN - 1) // MAP_ALIGN * MAP_ALIGN
    ctypes.memmove(aligned, address, MAP_BYTES)
    return buffer, aligned


def _driver_encode(args: EncodeArgs) -> tuple[Any, int]:
    """Encode with the driver; the map is then copied to a 64-byte boundary of our own (the
    binding object's storage promises no alignment), which kernel parameters point at."""
    from .driver import check, driver

    drv = driver()
    tmap = check(
        drv.cuTensorMapEncodeTiled(
            getattr(drv.CUtensorMapDataType, f"CU_TENSOR_MAP_DATA_TYPE_{args.data_type}"),
            args.rank,
            args.address,
            [drv.cuuint64_t(x) for x in args.global_dim],
            [drv.cuuint64_t(x) for x in args.global_strides],
            [drv.cuuint32_t(x) for x in args.box_dim],
            [drv.cuuint32_t(x) for x in args.element_strides],
            drv.CUtensorMapInterleave.CU_TENSOR_MAP_INTERLEAVE_NONE,
            getattr(drv.CUtensorMapSwizzle, f"CU_TENSOR_MAP_SWIZZLE_{args.swizzle}"),
            getattr(drv.CUtensorMapL2promotion, f"CU_TENSOR_MAP_L2_PROMOTION_{args.l2_promotion}"),
            getattr(drv.CUtensorMapFloatOOBfill, f"CU_TENSOR_MAP_FLOAT_OOB_FILL_{args.oob_fill}"),
        ),
        "cuTensorMapEncodeTiled",
    )
    buffer, address = aligned_copy(int(tmap.getPtr()))
    return (tmap, buffer), address


class TensorMapCache:
    """Encoded maps by (device, spec), least recently used dropped past `capacity`. A tensor map
    holds a raw address: it stays valid while the memory it names does; re-encoding on a cache miss
    costs a few microseconds."""

    def __init__(
        self,
        capacity: int = 1024,
        encode: Callable[[EncodeArgs], tuple[Any, int]] = _driver_encode,
    ) -> None:
        self.capacity = capacity
        self._encode = encode
        self._maps: OrderedDict[tuple[int, TensorMapSpec], TensorMap] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, spec: TensorMapSpec, device: int = 0, what: str = "the tensor") -> TensorMap:
        key = (device, spec)
        with self._lock:
            found = self._maps.get(key)
            if found is not None:
                self._maps.move_to_end(key)
                self.hits += 1
                return found
        check_tensor_map(spec, what)
        raw, address = self._encode(encode_args(spec))
        made = TensorMap(spec, raw, address)
        with self._lock:
            self.misses += 1
            self._maps[key] = made
            while len(self._maps) > self.capacity:
                self._maps.popitem(last=False)
        return made

    def clear(self) -> None:
        with self._lock:
            self._maps.clear()


default_cache = TensorMapCache()


def tensor_map(
    tensor: Any,
    box: Sequence[int],
    swizzle: SwizzleMode = SwizzleMode.NONE,
    *,
    dtype: str | None = None,
    l2_promotion: int = 128,
    cache: TensorMapCache | None = None,
    what: str = "the tensor",
) -> TensorMap:
    """The tensor map of a torch-like tensor (`data_ptr()`, `shape`, `stride()`, `dtype`,
    `device.index`) for boxes of `box` elements (outermost first)."""
    name = dtype if dtype is not None else str(tensor.dtype).removeprefix("torch.")
    name = {"float8_e4m3fn": "float8_e4m3", "float8_e5m2": "float8_e5m2"}.get(name, name)
    spec = TensorMapSpec(
        dtype=name,
        address=int(tensor.data_ptr()),
        shape=tuple(int(n) for n in tensor.shape),
        strides=tuple(int(s) for s in tensor.stride()),
        box=tuple(int(b) for b in box),
        swizzle=swizzle,
        l2_promotion=l2_promotion,
    )
    device = getattr(getattr(tensor, "device", None), "index", None) or 0
    return (cache or default_cache).get(spec, device, what)
