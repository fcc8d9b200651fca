"""Pass infrastructure: a pass is a pure function on IR with a registered name.

Each pass is registered in `tsir.passes` by name and as the apache-tvm-ffi global function
`tsir.transform.<Name>`, so a pipeline can be listed, reordered and called from any TVM-FFI host.

The TVM-FFI registration waits for tvm_ffi: importing it also imports torch when torch is
installed (and may build torch's DLPack extension), seconds that `tsir.compile` does not need. A
pass registers at once when tvm_ffi is already loaded, else right after something imports it (a
one-shot `sys.meta_path` entry), so `tvm_ffi.get_global_func` finds every pass in either order.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final

from tsir import knobs
from tsir.errors import InternalError, SourceLocation, TSIRError
from tsir.stmt import Stmt
from tsir.target import Target
from tsir.visitor import walk

__all__ = [
    "Pass",
    "register_pass",
    "get",
    "registered",
    "PassContext",
    "Decision",
    "user_errors",
]


def _first_span(ir: Any) -> SourceLocation | None:
    """The first statement of `ir` (pre-order) that carries a user line: the kernel, usually."""
    for n in walk(ir):
        if isinstance(n, Stmt) and n.span is not None:
            return n.span
    return None


@contextmanager
def user_errors(stage: str, ir: Any) -> Iterator[None]:
    """Errors leaving a stage (a pass, codegen) name it and the user's line: a TSIRError raised
    without a location gets the innermost statement being walked (`tsir.visitor.note_span`), else
    the kernel's line; any other exception is a tsir bug, reported as a short `InternalError`
    (TSIR_DEBUG=1 lets the original propagate with its traceback)."""
    try:
        yield
    except TSIRError as exc:
        if exc.where is None or exc.loc is None:
            exc.where = exc.where or stage
            exc.loc = exc.loc or getattr(exc, "tsir_span", None) or _first_span(ir)
            exc.args = (exc._render(),)
        raise
    except Exception as exc:
        if knobs.debug:
            raise
        loc = getattr(exc, "tsir_span", None) or _first_span(ir)
        raise InternalError(exc, stage, loc) from None


@dataclass(frozen=True)
class Decision:
    """A decision a pass made against what the program asked for (TSIR_EXPLAIN, `report`)."""

    pass_name: str
    message: str
    span: SourceLocation | None = None

    def __str__(self) -> str:
        where = f"{self.span.filename}:{self.span.lineno}: " if self.span is not None else ""
        return f"{where}{self.message} [{self.pass_name}]"


@dataclass(frozen=True)
class PassContext:
    """What every pass may read: the target. Passes get it as their second argument, and record
    in `report` (through `explain`) every request they could not honour."""

    target: Target
    report: list[Decision] = field(default_factory=list)

    def explain(self, pass_name: str, message: str, span: SourceLocation | None = None) -> None:
        self.report.append(Decision(pass_name, message, span))


@dataclass(frozen=True)
class Pass:
    """A named IR transformation `fn(ir, ctx) -> ir` that never mutates its input."""

    name: str
    fn: Callable[[Any, PassContext], Any]
    doc: str

    def __call__(self, ir: Any, ctx: PassContext) -> Any:
        return self.fn(ir, ctx)


_REGISTRY: dict[str, Pass] = {}


def register_pass(name: str) -> Callable[[Callable[[Any, PassContext], Any]], Pass]:
    """Register `fn` as pass `name` here and as the TVM-FFI global `tsir.transform.<name>`."""

    def wrap(fn: Callable[[Any, PassContext], Any]) -> Pass:
        if name in _REGISTRY:
            raise ValueError(f"pass {name!r} registered twice")
        p = Pass(name, fn, (fn.__doc__ or "").strip())
        _REGISTRY[name] = p
        _register_ffi(p)
        return p

    return wrap


_FFI: Final = "tvm_ffi"
_ffi_pending: list[Pass] = []


def _register_ffi(p: Pass) -> None:
    ffi = sys.modules.get(_FFI)
    if ffi is not None and hasattr(ffi, "register_global_func"):
        _register_with(ffi, p)
        return
    _ffi_pending.append(p)
    if not any(isinstance(f, _RegisterAfterImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _RegisterAfterImport())


def _register_with(ffi: Any, p: Pass) -> None:
    def call(ir: Any, target: Any = None) -> Any:
        # No target: the default every entry point uses (tsir.knobs.target, TSIR_TARGET).
        return p.fn(ir, PassContext(Target.parse(target if target is not None else knobs.target)))

    call.__name__ = p.name
    ffi.register_global_func(f"tsir.transform.{p.name}", call, override=True)


def _register_pending(ffi: Any) -> None:
    while _ffi_pending:
        _register_with(ffi, _ffi_pending.pop(0))


class _RegisterAfterImport:
    """A one-shot `sys.meta_path` finder: finds nothing itself, but when tvm_ffi is imported it
    wraps the real loader so the pending passes register as soon as the module has run. Without
    tvm_ffi installed the passes stay unregistered, as an eager import would have left them."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != _FFI:
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        # the other finders, as without this one; Any: the spec gets a duck-typed loader
        spec: Any = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _RegisteringLoader(spec.loader, self)
        return spec


class _RegisteringLoader:
    """`inner` (tvm_ffi's loader), registering the pending passes after `exec_module`; anything
    else (resource readers, `get_data`) is the inner loader's."""

    def __init__(self, inner: Any, finder: _RegisterAfterImport) -> None:
        self.inner = inner
        self.finder = finder

    def create_module(self, spec: Any) -> Any:
        return self.inner.create_module(spec)

    def exec_module(self, module: Any) -> None:
        # the module keeps the real loader: after its import tvm_ffi looks as it would without us
        module.__loader__ = module.__spec__.loader = self.inner
        try:
            self.inner.exec_module(module)
        except BaseException:
            sys.meta_path.insert(0, self.finder)  # a failed import: try again on the next one
            raise
        _register_pending(module)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def get(name: str) -> Pass:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise TSIRError(
            f"no pass named {name!r}; registered: {', '.join(sorted(_REGISTRY))}"
        ) from None


def registered() -> dict[str, Pass]:
    return dict(_REGISTRY)
