"""The classic script form (`@T.prim_func` with annotated parameters) and `T.macro`."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from typing import Any

from ..builder import structure as T  # the builder below the `T` namespace (which imports this)
from ..errors import BuildError, TSIRError, UnsupportedError, _is_internal
from ..function import PrimFunc
from .annot import TensorSpec, is_dtype_annotation
from .source import def_location, run_script

__all__ = ["prim_func", "macro", "Macro", "param_annotations"]


def param_annotations(fn: Callable[..., Any]) -> dict[str, Any]:
    """`fn`'s parameter annotations as values (string annotations evaluated where `fn` was defined)."""
    raw = dict(getattr(fn, "__annotations__", {}))
    raw.pop("return", None)
    if not any(isinstance(v, str) for v in raw.values()):
        return raw
    # `from __future__ import annotations`: evaluate in the defining scope (closure, caller, module).
    ns: dict[str, Any] = dict(fn.__globals__)

    frame = sys._getframe(1)
    while frame is not None and _is_internal(frame.f_code.co_filename):
        frame = frame.f_back  # the scope that ran the decorator (a factory's locals)
    if frame is not None:
        ns.update(frame.f_locals)
    for var, cell in zip(fn.__code__.co_freevars, fn.__closure__ or ()):
        try:
            ns[var] = cell.cell_contents
        except ValueError:
            pass
    out = {}
    for k, v in raw.items():
        if isinstance(v, str):
            try:
                v = eval(v, ns)  # noqa: S307  (the user's own annotation text)
            except Exception as exc:  # noqa: BLE001
                raise BuildError(
                    f"cannot evaluate the annotation of `{k}`: {v!r} ({exc})", loc=def_location(fn)
                ) from None
        out[k] = v
    return out


def _declare(name: str, ann: Any, fn: Callable[..., Any]) -> Any:
    if isinstance(ann, TensorSpec):
        if ann.scope != "global":
            raise BuildError(
                f"parameter `{name}` of a prim_func is annotated {ann!r}; kernel parameters live in "
                "global memory (T.Tensor / T.Buffer)",
                loc=def_location(fn),
            )
        return T.param(name, ann.shape, ann.dtype)
    dt = is_dtype_annotation(ann)
    if dt is not None:
        return T.scalar(name, dt)
    if ann is inspect.Parameter.empty:
        raise BuildError(
            f"parameter `{name}` of `{fn.__name__}` has no annotation; write `{name}: T.Tensor(shape, "
            f"dtype)` (or a dtype such as T.int32 for a scalar)",
            loc=def_location(fn),
        )
    raise BuildError(
        f"parameter `{name}`: cannot use the annotation {ann!r} (expected T.Tensor or a dtype)",
        loc=def_location(fn),
    )


def prim_func(fn: Callable[..., Any]) -> PrimFunc:
    """Parse `fn` (parameters annotated `T.Tensor(shape, dtype)`/`T.Buffer`/a dtype) into a PrimFunc.

    The body runs once, now, with the closure's values as compile-time constants."""
    if not callable(fn):
        raise BuildError(f"@T.prim_func decorates a function, got {fn!r}")
    anns = param_annotations(fn)
    sig = inspect.signature(fn)
    with T.prim_func(fn.__name__) as f:
        args = []
        for p in sig.parameters.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise BuildError(
                    f"`{fn.__name__}`: *args/**kwargs parameters are not supported",
                    loc=def_location(fn),
                )
            try:
                args.append(_declare(p.name, anns.get(p.name, inspect.Parameter.empty), fn))
            except TSIRError as exc:
                if exc.loc is None or exc.loc.filename != fn.__code__.co_filename:
                    exc.loc = def_location(fn)
                    exc.args = (exc._render(),)
                raise
        run_script(fn, *args)
    assert f.func is not None
    return f.func


class Macro:
    """`@T.macro`: a helper whose body is inlined where it is called, with the same rewrite."""

    def __init__(self, fn: Callable[..., Any]):
        self.fn = fn
        self.__name__ = getattr(fn, "__name__", "macro")
        self.__doc__ = getattr(fn, "__doc__", None)
        self.__wrapped__ = fn

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if getattr(self.fn, "__tsir_scripted__", False):
            return self.fn(*args, **kwargs)
        return run_script(self.fn, *args, **kwargs)

    def __repr__(self) -> str:
        return f"<T.macro {self.__name__}>"


def macro(fn: Any = None, **options: Any) -> Any:
    """`@T.macro` or `@T.macro(hygienic=True)`."""
    if options:
        extra = set(options) - {"hygienic"}
        if extra or options.get("hygienic", True) is not True:
            raise UnsupportedError(
                f"T.macro options {options} are not supported (macros are hygienic)"
            )
    if fn is None:
        return Macro
    return Macro(fn)
