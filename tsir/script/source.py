"""Reading a function's source, rewriting it once, and running it with errors at the user's lines."""

from __future__ import annotations

import ast
import inspect
import textwrap
import traceback
import weakref
from collections.abc import Callable
from types import CodeType, FunctionType, TracebackType
from typing import Any

from ..errors import BuildError, SourceLocation, TSIRError
from . import runtime
from .transform import HELPERS, transform_function

__all__ = ["parse_function", "rewritten", "run_script", "def_location"]

_CACHE: weakref.WeakKeyDictionary[CodeType, tuple[CodeType, str]] = weakref.WeakKeyDictionary()


def _code(fn: Callable[..., Any]) -> CodeType:
    code = getattr(fn, "__code__", None)
    if not isinstance(code, CodeType):
        raise BuildError(f"the script forms take a Python function, got {fn!r}")
    return code


def def_location(fn: Callable[..., Any]) -> SourceLocation:
    code = _code(fn)
    import linecache

    return SourceLocation(
        code.co_filename,
        code.co_firstlineno,
        linecache.getline(code.co_filename, code.co_firstlineno),
    )


def parse_function(fn: Callable[..., Any]) -> ast.FunctionDef:
    """The `def` of `fn` as an AST whose line numbers are those of its file."""
    code = _code(fn)
    try:
        lines, first = inspect.getsourcelines(fn)
    except (OSError, TypeError) as exc:
        raise BuildError(
            f"cannot read the source of `{fn.__name__}` ({exc}); the script forms parse the "
            "function's source, so it must be defined in a file (not typed at a REPL or exec'd)",
            loc=def_location(fn),
        ) from None
    src = textwrap.dedent("".join(lines))
    try:
        tree = ast.parse(src)
    except SyntaxError as exc:
        raise BuildError(f"cannot parse `{fn.__name__}`: {exc.msg}", loc=def_location(fn)) from None
    ast.increment_lineno(tree, first - 1)
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == code.co_name:
            if isinstance(node, ast.AsyncFunctionDef):
                raise BuildError(
                    f"`{fn.__name__}` is async; kernels are plain functions", loc=def_location(fn)
                )
            return node
    raise BuildError(
        f"cannot find the `def {code.co_name}` of {fn!r} in its source", loc=def_location(fn)
    )


def _compiled(fn: Callable[..., Any]) -> tuple[CodeType, str]:
    code = _code(fn)
    hit = _CACHE.get(code)
    if hit is None:
        fdef = parse_function(fn)
        module = transform_function(fdef)
        hit = (compile(module, code.co_filename, "exec"), fdef.name)
        _CACHE[code] = hit
    return hit


def rewritten(fn: Callable[..., Any]) -> FunctionType:
    """`fn` with its body rewritten to drive the builder; its closure's values become globals."""
    if getattr(fn, "__tsir_scripted__", False):
        return fn
    module_code, name = _compiled(fn)
    ns: dict[str, Any] = dict(fn.__globals__)
    code = _code(fn)
    for var, cell in zip(code.co_freevars, fn.__closure__ or ()):
        try:
            ns[var] = cell.cell_contents
        except ValueError:
            pass  # a closure variable not bound yet (defined later in the enclosing function)
    ns[HELPERS] = runtime
    exec(module_code, ns)
    new = ns[name]
    new.__defaults__ = fn.__defaults__
    new.__kwdefaults__ = fn.__kwdefaults__
    return new


def _user_frame(tb: TracebackType | None, filename: str) -> SourceLocation | None:
    found = None
    for frame, lineno in traceback.walk_tb(tb):
        if frame.f_code.co_filename == filename:
            import linecache

            found = SourceLocation(filename, lineno, linecache.getline(filename, lineno))
    return found


def run_script(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run the rewritten `fn`; a Python error inside it becomes a BuildError at the user's line."""
    new = rewritten(fn)
    filename = _code(fn).co_filename
    try:
        return new(*args, **kwargs)
    except TSIRError as exc:
        if exc.loc is None:
            exc.loc = _user_frame(exc.__traceback__, filename)
            exc.args = (exc._render(),)
        raise
    except Exception as exc:  # noqa: BLE001  (any Python error in the user's body gets their line)
        loc = _user_frame(exc.__traceback__, filename)
        raise BuildError(
            f"{type(exc).__name__}: {exc}{_hint(exc)}", loc=loc or def_location(fn)
        ) from exc


_HINTS = {
    "data": "buffer views (`T.Tensor(shape, dtype, buf.data)`, T.view) are not supported by tsir yet",
    "access_ptr": "raw pointers (`buf.access_ptr`) are not supported by tsir",
    "scope": "tsir buffers expose `.scope` as a field, not a method",
}


def _hint(exc: Exception) -> str:
    name = getattr(exc, "name", None)
    if isinstance(exc, AttributeError) and type(getattr(exc, "obj", None)).__name__ == "Buffer":
        hint = _HINTS.get(str(name))
        if hint:
            return f" ({hint})"
    return ""
