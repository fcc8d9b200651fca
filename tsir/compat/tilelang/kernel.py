"""TileLang's compiled-kernel object over a `tsir.runtime.Kernel`: outputs allocated and returned
(`out_idx`), `get_kernel_source()`, `get_profiler()`, and the report of pass configs."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

import tsir  # compat sits above the whole package

from ... import knobs
from ...buffer import Buffer
from ...errors import LaunchError, UnsupportedError
from ...expr import IntImm, Var
from ...function import PrimFunc
from ...stmt import For, Stmt
from ...visitor import Mutator
from .profiler import Profiler, TensorSupplyType, torch_dtype

__all__ = ["JITKernel", "PassConfigKey", "resolve_target", "check_pass_configs", "compile_func"]


class PassConfigKey:
    """TileLang's pass-config keys (values are the strings TileLang uses)."""

    TL_DISABLE_TMA_LOWER = "tl.disable_tma_lower"
    TL_DISABLE_WARP_SPECIALIZED = "tl.disable_warp_specialized"
    TL_ENABLE_FAST_MATH = "tl.enable_fast_math"
    TL_DISABLE_FAST_MATH = "tl.disable_fast_math"
    TL_CONFIG_INDEX_BITWIDTH = "tl.config_index_bitwidth"
    TL_DISABLE_SAFE_MEMORY_ACCESS = "tl.disable_safe_memory_legalize"
    TL_DISABLE_VECTORIZE_256 = "tl.disable_vectorize_256"
    TL_DISABLE_DYNAMIC_TAIL_SPLIT = "tl.disable_dynamic_tail_split"
    TL_ENABLE_AGGRESSIVE_SHARED_MEMORY_MERGE = "tl.enable_aggressive_shared_memory_merge"
    TIR_DISABLE_VECTORIZE = "tir.disable_vectorize"
    TL_DEBUG_MERGE_SHARED_MEMORY_ALLOCATIONS = "tl.debug_merge_shared_memory_allocations"


# Configs tsir honours: each turns into what tsir does for it (see `apply_pass_configs`).
_HONOURED = {
    "tl.disable_tma_lower": lambda v: (
        "T.Pipelined loops copy with cp.async, not TMA (as `T.Pipelined(..., tma=False)`)"
        if v
        else "TMA where the copies allow it (tsir's default)"
    ),
    "tl.disable_warp_specialized": lambda v: (
        "no producer warpgroup (as `T.Pipelined(..., warp_specialize=False)`)"
        if v
        else "warp-specialized where it qualifies (tsir's default)"
    ),
    "tl.enable_fast_math": lambda v: (
        "compiled with NVRTC's --use_fast_math" if v else "precise math (tsir's default)"
    ),
    "tl.disable_fast_math": lambda v: (
        "precise math (tsir's default)" if v else "precise math unless tl.enable_fast_math"
    ),
}

# Configs that ask for something tsir never does, or only tune: accepted, listed in the report.
_NO_EFFECT = {
    "tl.disable_dynamic_tail_split": lambda v: "tsir does not split dynamic tails",
    "tl.enable_aggressive_shared_memory_merge": lambda v: (
        "tsir always plans all shared buffers of a kernel into one allocation"
    ),
    "tl.debug_merge_shared_memory_allocations": lambda v: (
        "no shared-memory merge debugging output in tsir"
    ),
    "tl.disable_vectorize_256": lambda v: "tsir's vector accesses are at most 128 bits",
}


class _PipelineOptions(Mutator):
    """Every `T.Pipelined` loop that does not choose for itself gets `tma`/`warp_specialize`."""

    def __init__(self, options: dict[str, bool]):
        super().__init__()
        self.options = options

    def visit_For(self, s: For) -> Stmt:
        s = self.generic_visit(s)
        if s.annotation("num_stages") is None:
            return s
        extra = tuple((k, v) for k, v in self.options.items() if s.annotation(k) is None)
        return s.replace(annotations=s.annotations + extra) if extra else s


def apply_pass_configs(
    func: PrimFunc, configs: dict[Any, Any] | None
) -> tuple[PrimFunc, tuple[str, ...]]:
    """`func` with the honoured configs' loop options, and the NVRTC options they ask for."""
    options: dict[str, bool] = {}
    nvrtc: tuple[str, ...] = ()
    for k, v in (configs or {}).items():
        key = _key(k)
        if key == "tl.disable_tma_lower" and v:
            options["tma"] = False
        elif key == "tl.disable_warp_specialized" and v:
            options["warp_specialize"] = False
        elif key == "tl.enable_fast_math" and v and not _key_true(configs, "tl.disable_fast_math"):
            nvrtc = ("--use_fast_math",)
    if options:
        func = func.replace(body=_PipelineOptions(options).visit(func.body))
    return func, nvrtc


def _key_true(configs: dict[Any, Any] | None, name: str) -> bool:
    return any(_key(k) == name and bool(v) for k, v in (configs or {}).items())


def _key(k: Any) -> str:
    return str(getattr(k, "value", k))


def check_pass_configs(configs: dict[Any, Any] | None) -> list[str]:
    """The report lines for `configs`; a config tsir cannot honour raises UnsupportedError."""
    report = []
    for k, v in (configs or {}).items():
        key = _key(k)
        if key in _HONOURED:
            report.append(f"pass config {key}={v!r}: {_HONOURED[key](v)}")
            continue
        why = _NO_EFFECT.get(key)
        if why is None:
            raise UnsupportedError(
                f"pass config {key!r}={v!r} is not supported by tsir (it would change how the kernel is "
                f"compiled in a way tsir cannot reproduce); remove it. Accepted with no effect: "
                f"{', '.join(sorted(_NO_EFFECT))}; honoured: {', '.join(sorted(_HONOURED))}"
            )
        report.append(f"pass config {key}={v!r}: no effect ({why(v)})")
    return report


_OTHER_BACKENDS = ("hip", "metal", "llvm", "c", "webgpu", "cutedsl", "rocm", "cpu")


def resolve_target(target: Any) -> str:
    """TileLang's target spellings to tsir's: "auto"/"cuda" -> the current GPU."""
    if target is None:
        return os.environ.get("TSIR_TILELANG_TARGET") or knobs.target
    t = str(getattr(target, "kind", target)).strip()
    if t in ("auto", "cuda", ""):
        return os.environ.get("TSIR_TILELANG_TARGET") or knobs.target
    if t.startswith("cuda") and "-arch=" in t:
        return t.split("-arch=")[1].split()[0]
    if t.split()[0] in _OTHER_BACKENDS:
        raise UnsupportedError(f"target {t!r}: tsir generates CUDA for NVIDIA GPUs only")
    return t


def compile_func(func: PrimFunc, target: Any, pass_configs: dict[Any, Any] | None = None) -> Any:
    func, nvrtc = apply_pass_configs(func, pass_configs)
    if not nvrtc:
        return tsir.compile(func, target=resolve_target(target))
    with knobs.override(nvrtc_options=(*knobs.nvrtc_options, *nvrtc)):
        return tsir.compile(func, target=resolve_target(target))


def _normalize_out_idx(out_idx: Any, n: int) -> list[int]:
    if out_idx is None:
        return []
    items = [out_idx] if isinstance(out_idx, int) else list(out_idx)
    out = []
    for i in items:
        if not isinstance(i, int) or not -n <= i < n:
            raise UnsupportedError(
                f"out_idx {out_idx!r}: every entry must be a parameter index in [-{n}, {n})"
            )
        out.append(i % n)
    return out


class JITKernel:
    """A compiled TileLang kernel: `kernel(*inputs)` allocates the `out_idx` outputs, launches and
    returns them (one tensor, or a list); `kernel(*all_params)` when there is no `out_idx`."""

    def __init__(
        self,
        func: PrimFunc,
        out_idx: Any = None,
        target: Any = None,
        pass_configs: dict[Any, Any] | None = None,
        outputs: Sequence[str] | None = None,
        report: Sequence[str] = (),
    ):
        self.report: list[str] = [*report, *check_pass_configs(pass_configs)]
        self.func = func
        self.params = list(func.params)
        n = len(self.params)
        if outputs is not None:
            names = [getattr(p, "name", None) for p in self.params]
            self.out_idx = [names.index(o) for o in outputs]
        else:
            self.out_idx = _normalize_out_idx(out_idx, n)
        self.in_idx = [i for i in range(n) if i not in self.out_idx]
        self.kernel = compile_func(func, target, pass_configs)
        self.target = self.kernel.target
        # The compiler prints its own decisions under TSIR_EXPLAIN; these are the compat layer's.
        if knobs.explain:
            for line in self.report:
                print(f"[tsir explain] {func.name}: {line}", file=sys.stderr)
        self.report += self.kernel.report

    # -- TileLang's accessors ----------------------------------------------------------------------
    def get_kernel_source(self, kernel_only: bool = True) -> str:
        return str(self.kernel.cuda_source)

    def get_host_source(self) -> str:
        return str(self.kernel.asm["tsir"])

    def get_profiler(self, tensor_supply_type: Any = None) -> Any:
        return Profiler(self, tensor_supply_type or TensorSupplyType.Auto)

    @property
    def out_params(self) -> list[Buffer]:
        return [self.params[i] for i in self.out_idx]  # pyright: ignore[reportReturnType]  # narrowed by a check above that the checker cannot follow

    def output_shapes(self, *inputs: Any) -> list[tuple[int, ...]]:
        """Shapes of the outputs for these inputs (dynamic dims bound from the inputs' shapes)."""
        dims: dict[Var, int] = {}
        for i, t in zip(self.in_idx, inputs):
            p = self.params[i]
            if isinstance(p, Buffer) and hasattr(t, "shape"):
                for d, s in zip(p.shape, t.shape):
                    if isinstance(d, Var):
                        dims.setdefault(d, int(s))
        shapes = []
        for p in self.out_params:
            shape = []
            for d in p.shape:
                if isinstance(d, IntImm):
                    shape.append(d.value)
                elif isinstance(d, Var) and d in dims:
                    shape.append(dims[d])
                else:
                    raise LaunchError(
                        f"output `{p.name}`: dimension `{d}` is not bound by any input's shape"
                    )
            shapes.append(tuple(shape))
        return shapes

    def __call__(self, *args: Any, stream: Any = None) -> Any:
        n = len(self.params)
        if not self.out_idx:
            self.kernel(*args, stream=stream)
            return None
        if len(args) != len(self.in_idx):
            names = [getattr(self.params[i], "name", str(i)) for i in self.in_idx]
            raise LaunchError(
                f"`{self.func.name}` takes {len(self.in_idx)} inputs ({', '.join(names)}); the outputs are allocated and returned; got {len(args)} arguments"
            )
        outs = self._allocate(args)
        full: list[Any] = [None] * n
        for i, a in zip(self.in_idx, args):
            full[i] = a
        for i, o in zip(self.out_idx, outs):
            full[i] = o
        self.kernel(*full, stream=stream)
        return outs[0] if len(outs) == 1 else outs

    def _allocate(self, inputs: Sequence[Any]) -> list[Any]:
        import torch  # pyright: ignore[reportMissingImports]  # optional: torch is not a dependency of tsir

        device = next(
            (t.device for t in inputs if hasattr(t, "device") and getattr(t, "is_cuda", False)),
            None,
        )
        if device is None:
            device = torch.device("cuda", torch.cuda.current_device())
        out = []
        for p, shape in zip(self.out_params, self.output_shapes(*inputs)):
            out.append(torch.empty(shape, dtype=torch_dtype(str(p.dtype)), device=device))
        return out

    def __repr__(self) -> str:
        return f"<tsir.compat JITKernel {self.func.name} out_idx={self.out_idx} for {self.target}>"
