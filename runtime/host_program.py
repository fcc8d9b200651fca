"""The host program: what the compiler tells the runtime about a compiled function.

`split_host_device` + codegen produce a `HostProgram`: the function's parameters (tensors and scalars,
in call order), the kernel launches to run, in order, on one stream, and the copy-engine transfers
(`CopyStep`, each placed before a launch) to run on a copy stream ordered against them by events. The runtime's `Launcher`
(`tsir.runtime.launch`) turns it into a callable. These classes only describe; they validate their own
well-formedness at construction, so a malformed program (a compiler bug) fails when it is built, not on
the user's first call.
"""

from __future__ import annotations

import ast
import keyword
from dataclasses import dataclass

from ..errors import TSIRError

__all__ = [
    "ARG_CTYPES",
    "COPY_NAMES",
    "CopyStep",
    "GRID_LIMITS",
    "SCALAR_DTYPES",
    "TENSOR_DTYPES",
    "HostProgram",
    "KernelArg",
    "LaunchStep",
    "ScalarParam",
    "TensorMapArg",
    "TensorParam",
    "WorkspaceParam",
]

# tsir dtype name -> DLPack dtype string as apache-tvm-ffi spells it (`str(tensor.dtype)`).
TENSOR_DTYPES: dict[str, str] = {
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
    "bfloat16": "bfloat16",
    "float32": "float32",
    "float64": "float64",
    "float8_e4m3": "float8_e4m3fn",
    "float8_e5m2": "float8_e5m2",
}

# Scalar parameter dtypes -> (kind, inclusive range for integers). float16 scalars are not supported:
# a kernel that needs one takes a float32 and converts.
SCALAR_DTYPES: dict[str, tuple[str, int, int]] = {
    "bool": ("bool", 0, 1),
    "int8": ("int", -(2**7), 2**7 - 1),
    "int16": ("int", -(2**15), 2**15 - 1),
    "int32": ("int", -(2**31), 2**31 - 1),
    "int64": ("int", -(2**63), 2**63 - 1),
    "uint8": ("int", 0, 2**8 - 1),
    "uint16": ("int", 0, 2**16 - 1),
    "uint32": ("int", 0, 2**32 - 1),
    "uint64": ("int", 0, 2**64 - 1),
    "float32": ("float", 0, 0),
    "float64": ("float", 0, 0),
}

# Kernel argument C type -> struct format of one 8-byte parameter slot (little-endian, padded).
ARG_CTYPES: dict[str, str] = {
    "ptr": "Q",
    "bool": "?7x",
    "int8": "b7x",
    "int16": "h6x",
    "int32": "i4x",
    "int64": "q",
    "uint8": "B7x",
    "uint16": "H6x",
    "uint32": "I4x",
    "uint64": "Q",
    "float32": "f4x",
    "float64": "d",
}

# Element types a TMA tensor map can describe (runtime/tensor_map.py; bool has no CUtensorMapDataType).
TMA_DTYPES = frozenset(TENSOR_DTYPES) - {"bool"}
_TMA_SWIZZLES = (0, 32, 64, 128)
_TMA_L2_PROMOTIONS = (0, 64, 128, 256)

# Hardware limits of a launch (CUDA: gridDim.x < 2**31, gridDim.y/z <= 65535).
GRID_LIMITS = (2**31 - 1, 65535, 65535)
_GRID_FUNCS = ("min", "max")


def _fail(what: str) -> TSIRError:
    return TSIRError(f"malformed host program: {what}", where="HostProgram")


def _check_ident(name: object, what: str) -> None:
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise _fail(f"{what} {name!r} is not a Python identifier")


@dataclass(frozen=True, slots=True)
class TensorParam:
    """A tensor parameter.

    `shape` entries are ints (fixed) or symbol names (bound from the first tensor that uses them,
    checked against every later use). `strides` (in elements) None means compact row-major; entries
    may also be symbols. `align` is the required byte alignment of the data pointer.
    """

    name: str
    dtype: str
    shape: tuple[int | str, ...]
    strides: tuple[int | str, ...] | None = None
    align: int = 16
    symmetric: bool = False  # must lie in this rank's symmetric heap (tsir.runtime.dist)

    def __post_init__(self) -> None:
        _check_ident(self.name, "tensor parameter name")
        if self.dtype not in TENSOR_DTYPES:
            raise _fail(
                f"tensor {self.name!r} has dtype {self.dtype!r}; known: {sorted(TENSOR_DTYPES)}"
            )
        dims = [("shape", self.shape)] + (
            [("strides", self.strides)] if self.strides is not None else []
        )
        for field, values in dims:
            if not isinstance(values, tuple):
                raise _fail(
                    f"tensor {self.name!r} {field} must be a tuple, got {type(values).__name__}"
                )
            for v in values:
                if isinstance(v, str):
                    _check_ident(v, f"symbol in {self.name!r} {field}")
                elif not isinstance(v, int) or isinstance(v, bool) or (field == "shape" and v < 0):
                    raise _fail(
                        f"tensor {self.name!r} {field} entry {v!r} is not a symbol or a valid int"
                    )
        if self.strides is not None and len(self.strides) != len(self.shape):
            raise _fail(
                f"tensor {self.name!r} has {len(self.shape)} dims but {len(self.strides)} strides"
            )
        if not isinstance(self.align, int) or self.align < 1 or self.align & (self.align - 1):
            raise _fail(f"tensor {self.name!r} align {self.align!r} is not a power of two")

    def type_str(self) -> str:
        """`float32[M, 64]`, with `strides=(...)` when declared."""
        text = f"{self.dtype}[{', '.join(str(d) for d in self.shape)}]"
        if self.symmetric:
            text = f"symmetric {text}"
        if self.strides is not None:
            text += f" strides=({', '.join(str(s) for s in self.strides)})"
        return text


@dataclass(frozen=True, slots=True)
class ScalarParam:
    """A scalar parameter, passed by the user as a Python number in parameter order."""

    name: str
    dtype: str

    def __post_init__(self) -> None:
        _check_ident(self.name, "scalar parameter name")
        if self.dtype not in SCALAR_DTYPES:
            raise _fail(
                f"scalar {self.name!r} has dtype {self.dtype!r}; known: {sorted(SCALAR_DTYPES)}"
            )

    def type_str(self) -> str:
        return self.dtype


@dataclass(frozen=True, slots=True)
class WorkspaceParam:
    """Scratch global memory (`T.alloc_global`) the launcher allocates for each call, on the
    call's stream, passes to the kernels that use it (a "ptr" KernelArg of this name) and frees
    after the last launch. Not an argument of the call; its contents start undefined. `shape`
    entries are ints or symbol names (bound from the tensors)."""

    name: str
    dtype: str
    shape: tuple[int | str, ...]

    def __post_init__(self) -> None:
        _check_ident(self.name, "workspace name")
        if self.dtype not in TENSOR_DTYPES:
            raise _fail(
                f"workspace {self.name!r} has dtype {self.dtype!r}; known: {sorted(TENSOR_DTYPES)}"
            )
        for v in self.shape:
            if isinstance(v, str):
                _check_ident(v, f"symbol in workspace {self.name!r} shape")
            elif not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise _fail(
                    f"workspace {self.name!r} shape entry {v!r} is not a symbol or an int >= 0"
                )


@dataclass(frozen=True, slots=True)
class KernelArg:
    """One kernel parameter: a tensor's data pointer (ctype "ptr") or a symbol's / scalar's value."""

    name: str
    ctype: str

    def __post_init__(self) -> None:
        if self.ctype not in ARG_CTYPES:
            raise _fail(
                f"kernel argument {self.name!r} has ctype {self.ctype!r}; known: {sorted(ARG_CTYPES)}"
            )


@dataclass(frozen=True, slots=True)
class TensorMapArg:
    """One kernel parameter that is the TMA tensor map (a CUtensorMap: 128 bytes, 64-byte aligned,
    passed by value as a `const __grid_constant__` parameter) of tensor parameter `tensor`, for
    boxes of `box` elements (outermost dimension first) and a `swizzle` of 0 (none), 32, 64 or
    128 bytes. The launcher encodes it on the host from the tensor's pointer, shape and strides
    and caches it by (pointer, shape, strides): a launch with tensors seen before looks it up."""

    tensor: str
    box: tuple[int, ...]
    swizzle: int = 0
    l2_promotion: int = 128
    """L2 fetch granularity in bytes: 0 (none), 64, 128 or 256."""
    oob_nan: bool = False
    """Fill out-of-bounds elements with NaN instead of zero (floating-point tensors only)."""

    def __post_init__(self) -> None:
        _check_ident(self.tensor, "tensor-map tensor")
        what = f"tensor map of {self.tensor!r}"
        if not isinstance(self.box, tuple) or not 1 <= len(self.box) <= 5:
            raise _fail(f"{what}: box {self.box!r} must be a tuple of 1 to 5 extents")
        if any(type(b) is not int or not 1 <= b <= 256 for b in self.box):
            raise _fail(f"{what}: box {self.box!r} extents must be ints in 1..256")
        if self.swizzle not in _TMA_SWIZZLES:
            raise _fail(f"{what}: swizzle {self.swizzle!r} is not one of {_TMA_SWIZZLES}")
        if self.l2_promotion not in _TMA_L2_PROMOTIONS:
            raise _fail(f"{what}: l2_promotion {self.l2_promotion!r} not in {_TMA_L2_PROMOTIONS}")
        if type(self.oob_nan) is not bool:
            raise _fail(f"{what}: oob_nan {self.oob_nan!r} is not a bool")


@dataclass(frozen=True, slots=True)
class LaunchStep:
    """One `cuLaunchKernel`: `kernel` is the extern "C" symbol; `grid` holds Python expressions over
    symbol and integer scalar names (our codegen writes them; they are checked to use only names,
    integer literals, + - * // %, unary minus, min and max)."""

    kernel: str
    grid: tuple[str, str, str]
    block: tuple[int, int, int]
    dyn_smem: int
    args: tuple[KernelArg | TensorMapArg, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.kernel, str) or not self.kernel.isidentifier():
            raise _fail(f"kernel symbol {self.kernel!r} is not a C identifier")
        if len(self.grid) != 3 or not all(isinstance(g, str) for g in self.grid):
            raise _fail(
                f"kernel {self.kernel!r} grid must be three expression strings, got {self.grid!r}"
            )
        for g in self.grid:
            grid_names(g, self.kernel)
        if len(self.block) != 3 or any(not isinstance(b, int) or b < 1 for b in self.block):
            raise _fail(f"kernel {self.kernel!r} block {self.block!r} must be three positive ints")
        if self.block[0] * self.block[1] * self.block[2] > 1024 or self.block[2] > 64:
            raise _fail(
                f"kernel {self.kernel!r} block {self.block!r} exceeds CUDA's limits (1024 threads, z<=64)"
            )
        if not isinstance(self.dyn_smem, int) or self.dyn_smem < 0:
            raise _fail(f"kernel {self.kernel!r} dyn_smem {self.dyn_smem!r} must be an int >= 0")


def grid_names(expr: str, kernel: str = "?") -> set[str]:
    """The names a grid expression reads; raises if it uses anything but the allowed subset."""
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except SyntaxError as e:
        raise _fail(f"kernel {kernel!r} grid expression {expr!r} does not parse: {e.msg}") from None
    names: set[str] = set()
    allowed_ops = (ast.Add, ast.Sub, ast.Mult, ast.FloorDiv, ast.Mod, ast.USub, ast.UAdd)
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            if node.id not in _GRID_FUNCS:
                _check_ident(node.id, f"name in kernel {kernel!r} grid expression")
                names.add(node.id)
        elif isinstance(node, ast.Call):
            if (
                not (isinstance(node.func, ast.Name) and node.func.id in _GRID_FUNCS)
                or node.keywords
            ):
                raise _fail(
                    f"kernel {kernel!r} grid expression {expr!r} calls something other than min/max"
                )
        elif isinstance(node, ast.Constant):
            if not isinstance(node.value, int) or isinstance(node.value, bool):
                raise _fail(
                    f"kernel {kernel!r} grid expression {expr!r} has non-integer literal {node.value!r}"
                )
        elif not isinstance(node, (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Load) + allowed_ops):
            raise _fail(f"kernel {kernel!r} grid expression {expr!r} uses {type(node).__name__}")
    return names


# Names a copy's expressions may read besides symbols and integer scalars: the rank table's values.
COPY_NAMES = ("__rank", "__num_ranks")


@dataclass(frozen=True, slots=True)
class CopyStep:
    """One copy-engine transfer, issued before launch `before` (== len(steps): after the last).

    `count` elements of tensor `src` from element `src_offset` (on rank `src_pe`, None: this rank) to
    tensor `dst` from `dst_offset` (on rank `dst_pe`); then, with a `flag`, `flag_value` is written
    (`flag_bytes` 4 or 8) to element `flag_offset` of tensor `flag` on the receiving rank (dst_pe, or
    this rank). Every expression is a Python expression as in LaunchStep.grid, which may also read
    `__rank` and `__num_ranks`."""

    before: int
    src: str
    src_offset: str
    dst: str
    dst_offset: str
    count: str
    src_pe: str | None = None
    dst_pe: str | None = None
    flag: str | None = None
    flag_offset: str = "0"
    flag_value: str = "0"
    flag_bytes: int = 4

    def exprs(self) -> tuple[str, ...]:
        out = (self.src_offset, self.dst_offset, self.count, self.flag_offset, self.flag_value)
        return out + tuple(e for e in (self.src_pe, self.dst_pe) if e is not None)

    def __post_init__(self) -> None:
        if not isinstance(self.before, int) or self.before < 0:
            raise _fail(f"copy step position {self.before!r} must be an int >= 0")
        for e in self.exprs():
            if not isinstance(e, str):
                raise _fail(f"copy step expression {e!r} is not a string")
            grid_names(e, "<copy engine>")
        if self.flag_bytes not in (4, 8):
            raise _fail(f"copy step flag_bytes {self.flag_bytes!r} must be 4 or 8")


@dataclass(frozen=True, slots=True)
class HostProgram:
    """Parameters in call order, the launches to run, in order, on one stream, and the copy-engine
    transfers placed between them (`copies`, in program order)."""

    params: tuple[TensorParam | ScalarParam, ...]
    steps: tuple[LaunchStep, ...]
    copies: tuple[CopyStep, ...] = ()
    workspaces: tuple[WorkspaceParam, ...] = ()

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for p in self.params:
            if not isinstance(p, (TensorParam, ScalarParam)):
                raise _fail(f"parameter {p!r} is neither a TensorParam nor a ScalarParam")
            if p.name in seen:
                raise _fail(f"parameter name {p.name!r} is used twice")
            seen.add(p.name)
        symbols = self.symbols()
        for ws in self.workspaces:
            if not isinstance(ws, WorkspaceParam):
                raise _fail(f"workspace {ws!r} is not a WorkspaceParam")
            if ws.name in seen:
                raise _fail(f"workspace name {ws.name!r} is used twice")
            unknown = {d for d in ws.shape if isinstance(d, str)} - symbols
            if unknown:
                raise _fail(
                    f"workspace {ws.name!r} shape reads {sorted(unknown)}, which are not symbols"
                )
            seen.add(ws.name)
        clash = symbols & seen
        if clash:
            raise _fail(f"symbol(s) {sorted(clash)} share a name with a parameter")
        tensors = {p.name for p in self.params if isinstance(p, TensorParam)}
        pointers = tensors | {ws.name for ws in self.workspaces}
        int_scalars = {
            p.name
            for p in self.params
            if isinstance(p, ScalarParam) and SCALAR_DTYPES[p.dtype][0] != "float"
        }
        scalars = {p.name for p in self.params if isinstance(p, ScalarParam)}
        for step in self.steps:
            if not isinstance(step, LaunchStep):
                raise _fail(f"step {step!r} is not a LaunchStep")
            for g in step.grid:
                unknown = grid_names(g, step.kernel) - symbols - int_scalars
                if unknown:
                    raise _fail(
                        f"kernel {step.kernel!r} grid {g!r} reads {sorted(unknown)}, which are not "
                        f"symbols or integer scalars"
                    )
            for arg in step.args:
                if isinstance(arg, TensorMapArg):
                    self._check_tensor_map(step.kernel, arg)
                elif not isinstance(arg, KernelArg):
                    raise _fail(f"kernel {step.kernel!r} argument {arg!r} is not a KernelArg")
                elif arg.ctype == "ptr":
                    if arg.name not in pointers:
                        raise _fail(
                            f"kernel {step.kernel!r} pointer argument {arg.name!r} is not a tensor"
                        )
                elif arg.name not in symbols and arg.name not in scalars:
                    raise _fail(
                        f"kernel {step.kernel!r} argument {arg.name!r} is not a symbol or scalar"
                    )

        self._check_copies(tensors, symbols | int_scalars)

    def _check_tensor_map(self, kernel: str, arg: TensorMapArg) -> None:
        param = next((p for p in self.params if p.name == arg.tensor), None)
        if not isinstance(param, TensorParam):
            raise _fail(f"kernel {kernel!r} tensor map of {arg.tensor!r}: not a tensor parameter")
        if len(arg.box) != len(param.shape):
            raise _fail(
                f"kernel {kernel!r} tensor map of {arg.tensor!r}: box {arg.box} has "
                f"{len(arg.box)} dimensions, the tensor {len(param.shape)}"
            )
        if param.dtype not in TMA_DTYPES:
            raise _fail(
                f"kernel {kernel!r} tensor map of {arg.tensor!r}: TMA cannot copy {param.dtype}"
            )

    def tensor_maps(self) -> tuple[TensorMapArg, ...]:
        """The distinct tensor maps the steps pass, in order of first use (a map passed twice is
        built once)."""
        out: dict[TensorMapArg, None] = {}
        for step in self.steps:
            for arg in step.args:
                if isinstance(arg, TensorMapArg):
                    out.setdefault(arg)
        return tuple(out)

    def _check_copies(self, tensors: set[str], names: set[str]) -> None:
        last = 0
        for c in self.copies:
            if not isinstance(c, CopyStep):
                raise _fail(f"copy {c!r} is not a CopyStep")
            if not last <= c.before <= len(self.steps):
                raise _fail(
                    f"copy step before launch {c.before} is out of order or past the last launch"
                )
            last = c.before
            for t in (c.src, c.dst, c.flag):
                if t is not None and t not in tensors:
                    raise _fail(f"copy step operand {t!r} is not a tensor parameter")
            for e in c.exprs():
                unknown = grid_names(e, "<copy engine>") - names - set(COPY_NAMES)
                if unknown:
                    raise _fail(f"copy step expression {e!r} reads unknown names {sorted(unknown)}")

    def symbols(self) -> set[str]:
        """Every dynamic symbol named in a tensor shape or strides."""
        out: set[str] = set()
        for p in self.params:
            if isinstance(p, TensorParam):
                out.update(d for d in p.shape if isinstance(d, str))
                out.update(s for s in p.strides or () if isinstance(s, str))
        return out

    def signature(self, name: str = "kernel") -> str:
        """`add(a: float32[n], b: float32[n], n: int32)`: used in argument-count errors."""
        return f"{name}({', '.join(f'{p.name}: {p.type_str()}' for p in self.params)})"
