"""`tilelang.jit` and `tilelang.compile` over tsir.

`@jit` takes either form:
- a body in the current form (`T.const`, tensor annotations, `T.empty`, `return C`): calling it
  with tensors compiles once per shape signature, caches, and returns the outputs;
  `f.compile(M=..., block_M=...)` gives the kernel;
- a factory returning a `@T.prim_func`: calling it with the factory's arguments compiles (once per
  argument values) and returns the kernel.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from ...errors import BuildError, UnsupportedError
from ...function import PrimFunc
from ...script import build_jit, is_jit_body
from .kernel import JITKernel
from .promotion import tilelang_promotion

__all__ = ["jit", "compile", "JitFunction", "lazy_jit"]

# jit() arguments TileLang has that tsir has no use for; each is reported, none silently dropped.
_JIT_NO_EFFECT = {
    "verbose": "tsir prints nothing while compiling",
    "debug_root_path": "tsir writes IR dumps with TSIR_DUMP_IR=dir instead",
    "execution_backend": "tsir always launches through its own NVRTC/driver runtime",
    "compile_flags": None,  # checked below
    "profiler": "the profiler is always available through get_profiler()",
}
# Legacy jit() arguments that configure the autotuner's correctness check.
_JIT_PROFILE_ARGS = (
    "supply_type",
    "ref_prog",
    "skip_check",
    "max_mismatched_ratio",
    "rtol",
    "atol",
    "manual_check_prog",
    "cache_input_tensors",
)


def _arg_key(x: Any) -> Any:
    if hasattr(x, "shape") and hasattr(x, "dtype") and not isinstance(x, PrimFunc):
        return ("tensor", tuple(int(s) for s in x.shape), str(x.dtype))
    try:
        hash(x)
        return x
    except TypeError:
        return ("repr", repr(x))


def compile(
    func: Any,
    out_idx: Any = None,
    target: Any = "auto",
    target_host: Any = None,
    execution_backend: Any = None,
    verbose: bool = False,
    pass_configs: dict[Any, Any] | None = None,
    compile_flags: Any = None,
) -> JITKernel:  # noqa: A001
    """`tilelang.compile(prim_func, out_idx=[-1])`: the kernel for a PrimFunc."""
    if not isinstance(func, PrimFunc):
        raise BuildError(f"tilelang.compile takes a @T.prim_func, got {func!r}")
    report = _extra_report(
        target_host=target_host,
        execution_backend=execution_backend,
        verbose=verbose,
        compile_flags=compile_flags,
    )
    return JITKernel(func, out_idx=out_idx, target=target, pass_configs=pass_configs, report=report)


def _extra_report(**kwargs: Any) -> list[str]:
    out = []
    for k, v in kwargs.items():
        if v in (None, False):
            continue
        if k == "compile_flags":
            raise UnsupportedError(
                f"compile_flags={v!r}: tsir compiles with NVRTC and its own options (set TSIR_NVRTC_OPTIONS)"
            )
        if k == "target_host":
            out.append(f"target_host={v!r}: no effect (tsir's host side is Python)")
            continue
        out.append(f"{k}={v!r}: no effect ({_JIT_NO_EFFECT.get(k, 'not used by tsir')})")
    return out


class JitFunction:
    """What `@tilelang.jit` returns."""

    def __init__(
        self,
        fn: Callable[..., Any],
        out_idx: Any = None,
        target: Any = "auto",
        pass_configs: dict[Any, Any] | None = None,
        **options: Any,
    ):
        self.fn = fn
        self.out_idx = out_idx
        self.target = target
        self.pass_configs = dict(pass_configs or {})
        self.profile_args = {k: options.pop(k) for k in list(options) if k in _JIT_PROFILE_ARGS}
        unknown = set(options) - set(_JIT_NO_EFFECT)
        if unknown:
            raise UnsupportedError(
                f"@tilelang.jit({', '.join(sorted(unknown))}=...) is not supported by tsir"
            )
        self.report = _extra_report(**options)
        self._cache: dict[Any, JITKernel] = {}
        self._is_body: bool | None = None
        functools.update_wrapper(self, fn)

    @property
    def is_body_form(self) -> bool:
        if self._is_body is None:
            self._is_body = is_jit_body(self.fn)
        return self._is_body

    def _kernel(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[JITKernel, list[Any]]:
        key = (
            tuple(_arg_key(a) for a in args),
            tuple(sorted((k, _arg_key(v)) for k, v in kwargs.items())),
        )
        if self.is_body_form:
            build = None
            kernel = self._cache.get(key)
            if kernel is None:
                with tilelang_promotion():
                    build = build_jit(self.fn, args, kwargs)
                kernel = JITKernel(
                    build.func,
                    target=self.target,
                    pass_configs=self.pass_configs,
                    outputs=build.outputs,
                    report=self.report,
                )
                kernel.input_names = build.inputs  # pyright: ignore[reportAttributeAccessIssue]  # narrowed by a check above that the checker cannot follow
                self._cache[key] = kernel
            return kernel, self._inputs(kernel, args, kwargs)
        kernel = self._cache.get(key)
        if kernel is None:
            with tilelang_promotion():
                func = self.fn(*args, **kwargs)
            if not isinstance(func, PrimFunc):
                raise BuildError(
                    f"@tilelang.jit function `{self.fn.__name__}` must return a @T.prim_func (or be written in the T.const/T.empty form), got {func!r}"
                )
            kernel = JITKernel(
                func,
                out_idx=self.out_idx,
                target=self.target,
                pass_configs=self.pass_configs,
                report=self.report,
            )
            self._cache[key] = kernel
        return kernel, []

    def _inputs(
        self, kernel: JITKernel, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> list[Any]:
        import inspect

        bound = inspect.signature(self.fn).bind_partial(
            *args, **{k: v for k, v in kwargs.items() if k in inspect.signature(self.fn).parameters}
        )
        names = [kernel.params[i].name for i in kernel.in_idx]
        return [bound.arguments.get(n) for n in names]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        kernel, inputs = self._kernel(args, kwargs)
        if not self.is_body_form:
            return kernel
        if any(x is None for x in inputs):
            names = [kernel.params[i].name for i in kernel.in_idx]
            missing = [n for n, x in zip(names, inputs) if x is None]
            raise BuildError(
                f"`{self.fn.__name__}` was called without the tensor(s) {', '.join(missing)}; use .compile(...) for a kernel without running it"
            )
        return kernel(*inputs)

    def compile(self, *args: Any, **kwargs: Any) -> JITKernel:
        """The kernel for these arguments (T.const values may be given by name)."""
        return self._kernel(args, kwargs)[0]

    def get_tir(self, *args: Any, **kwargs: Any) -> PrimFunc:
        return self.compile(*args, **kwargs).func

    def __repr__(self) -> str:
        return f"<tilelang.jit {self.fn.__name__} (tsir)>"


def jit(
    func: Callable[..., Any] | None = None,
    *,
    out_idx: Any = None,
    target: Any = "auto",
    pass_configs: dict[Any, Any] | None = None,
    **options: Any,
) -> Any:
    """`@tilelang.jit` or `@tilelang.jit(out_idx=[-1], pass_configs={...})`."""
    if func is not None:
        return JitFunction(func, out_idx, target, pass_configs, **options)

    def wrap(fn: Callable[..., Any]) -> JitFunction:
        return JitFunction(fn, out_idx, target, pass_configs, **options)

    return wrap


lazy_jit = jit
