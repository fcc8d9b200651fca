"""What the rewritten function calls (as `__ts.<name>`): Python-or-IR decisions made at run time.

Each helper looks at the value it gets: a Python value keeps Python's meaning (a parse-time
decision), an IR expression becomes IR. See transform.py for the rewrite that calls these.
"""

from __future__ import annotations

import builtins
import operator
from collections.abc import Callable
from typing import Any

from ..buffer import Buffer
from ..builder import math_lang as M
from ..builder import structure as T  # the builder below the `T` namespace (which imports this)
from ..builder.frame import Frame, builder_stack
from ..dtype import DataType
from ..errors import BuildError, UnsupportedError, user_location
from ..expr import IntImm, PrimExpr, convert
from .annot import TensorSpec, is_dtype_annotation
from .jit_body import declare_tensor

__all__ = [
    "Scope",
    "cond",
    "If",
    "Else",
    "loop",
    "range_loop",
    "is_ir_loop",
    "while_cond",
    "and_",
    "or_",
    "not_",
    "ifexp",
    "binop",
    "var_load",
    "bound",
    "dead_unless",
    "annotate",
    "annotated_value",
    "assert_",
    "scripted",
]

If = T.If
Else = T.Else
_MISSING = object()


def _frames() -> list[Frame]:
    stack = builder_stack()
    return stack[-1].frames if stack else []


def _is_value(x: Any) -> bool:
    return isinstance(x, (PrimExpr, int, float)) and not isinstance(x, Buffer)


class Scope:
    """Per-call bookkeeping of one rewritten function: where each Python name was bound."""

    def __init__(self) -> None:
        self.entry = len(_frames())
        self.bound: dict[str, Frame | None] = {}

    def depth(self) -> int:
        return len(_frames())

    def assign(self, name: str, local_vars: dict[str, Any], value: Any) -> Any:
        old = local_vars.get(name, _MISSING)
        if isinstance(old, Buffer) and old.scope == "local.var" and not isinstance(value, Buffer):
            old[0] = value  # `v = x` on a T.alloc_var stores (TileLang's scalar variables)
            return old
        frames = _frames()
        here = frames[-1] if frames else None
        if old is not _MISSING and not isinstance(old, Dead) and name in self.bound:
            where = self.bound[name]
            live = where is not None and builtins.any(f is where for f in frames)
            if live and where is not here and (_is_value(old) or _is_value(value)):
                kind = (
                    {
                        "serial": "loop",
                        "parallel": "T.Parallel loop",
                        "pipelined": "loop",
                        "unrolled": "loop",
                        "vectorized": "loop",
                    }.get(here.kind, here.kind)
                    if here is not None
                    else "scope"
                )
                raise BuildError(
                    f"`{name}` was bound outside this run-time {kind} and is rebound inside it: a "
                    f"Python name holds an expression, not storage, so the new value would not "
                    f"reach the code after the {kind}. Use `{name} = T.alloc_var(dtype)` (or "
                    f"T.alloc_local) and assign to it"
                )
        self.bound[name] = here
        return value

    def returning(self, value: Any) -> Any:
        if len(_frames()) > self.entry:
            raise BuildError(
                "`return` inside a T.Kernel, a run-time loop or a run-time `if` cannot be built; "
                "return at the end of the function"
            )
        return value

    def jump(self, loop_depth: int, what: str) -> None:
        if len(_frames()) > loop_depth:
            raise UnsupportedError(
                f"`{what}` inside a run-time loop or `if` is not supported (TileLang's "
                "T.loop_break); guard the rest of the body with an `if` instead",
                loc=user_location(),
            )


class Dead:
    """What a name bound inside a run-time loop or `if` holds after it: any use raises."""

    def __init__(self, name: str, line: int, why: str):
        self._msg = (
            f"`{name}` was bound {why} (line {line}) and does not exist after it; bind it before "
            f"the loop or `if` (a T.alloc_var for a value computed inside)"
        )

    def _fail(self, *args: Any, **kwargs: Any) -> Any:
        raise BuildError(self._msg)

    __getattr__ = __getitem__ = __call__ = __index__ = __iter__ = __bool__ = _fail
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _fail
    __truediv__ = __rtruediv__ = __floordiv__ = __rfloordiv__ = __mod__ = __rmod__ = _fail
    __lt__ = __le__ = __gt__ = __ge__ = __neg__ = _fail


def bound(local_vars: dict[str, Any]) -> frozenset[str]:
    return frozenset(local_vars)


def dead_unless(
    local_vars: dict[str, Any], name: str, before: frozenset[str], line: int, why: str
) -> Any:
    if name in before and name in local_vars:
        return local_vars[name]
    return Dead(name, line, why)


def _as_ir_cond(x: PrimExpr) -> PrimExpr:
    return x if x.dtype.is_bool else x != convert(0, x.dtype)


def cond(x: Any) -> Any:
    """True/False for a Python (or constant) condition, else the IR condition."""
    if isinstance(x, Buffer):
        return True
    if isinstance(x, PrimExpr):
        if isinstance(x, IntImm):
            return builtins.bool(x.value)
        return _as_ir_cond(x)
    if isinstance(x, Dead):
        x._fail()
    return builtins.bool(x)


def and_(*thunks: Callable[[], Any]) -> Any:
    ir: PrimExpr | None = None
    last: Any = True
    for th in thunks:
        v = th()
        c = cond(v)
        if c is False:
            return v if ir is None else IntImm(0, DataType("bool"))
        if c is True:
            last = v
            continue
        ir = c if ir is None else ir & c
    return ir if ir is not None else last


def or_(*thunks: Callable[[], Any]) -> Any:
    ir: PrimExpr | None = None
    last: Any = False
    for th in thunks:
        v = th()
        c = cond(v)
        if c is True:
            return v if ir is None else IntImm(1, DataType("bool"))
        if c is False:
            last = v
            continue
        ir = c if ir is None else ir | c
    return ir if ir is not None else last


def not_(x: Any) -> Any:
    c = cond(x)
    if isinstance(c, builtins.bool):
        return not c
    return ~c


def ifexp(c: Any, then: Callable[[], Any], otherwise: Callable[[], Any]) -> Any:
    cv = cond(c)
    if cv is True:
        return then()
    if cv is False:
        return otherwise()
    return M.if_then_else(cv, then(), otherwise())


_BINOPS: dict[str, Callable[[Any, Any], Any]] = {
    "Add": operator.add,
    "Sub": operator.sub,
    "Mult": operator.mul,
    "Div": operator.truediv,
    "FloorDiv": operator.floordiv,
    "Mod": operator.mod,
    "Pow": operator.pow,
    "LShift": operator.lshift,
    "RShift": operator.rshift,
    "BitOr": operator.or_,
    "BitXor": operator.xor,
    "BitAnd": operator.and_,
    "MatMult": operator.matmul,
}


def binop(op: str, a: Any, b: Any) -> Any:
    """`a op= b` for a Name target (a T.alloc_var reads as its value)."""
    return _BINOPS[op](var_load(a), var_load(b))


def var_load(x: Any) -> Any:
    if isinstance(x, Buffer) and x.scope == "local.var":
        return x[0]
    return x


_IR_LOOPS = {T._loop.__code__, T._offset_loop.__code__}


def is_ir_loop(it: Any) -> bool:
    return getattr(it, "gi_code", None) in _IR_LOOPS


def loop(it: Any, has_else: bool) -> Any:
    if is_ir_loop(it):
        if has_else:
            raise UnsupportedError(
                "`for ... else` over a run-time loop is not supported", loc=user_location()
            )
        return it
    if isinstance(it, PrimExpr):
        raise BuildError(f"cannot iterate over the expression `{it}`; use T.serial(n) or range(n)")
    return iter(it)


def range_loop(rng: Any, *args: Any, **kwargs: Any) -> Any:
    """`range(...)` inside a kernel is a serial loop (TileLang's meaning); elsewhere, Python's."""
    if rng is not builtins.range:
        return rng(*args, **kwargs)
    stack = builder_stack()
    if not stack or stack[-1].kernel is None:
        return builtins.range(*args, **kwargs)
    if kwargs or not 1 <= len(args) <= 3:
        raise BuildError(f"range() takes 1 to 3 positional arguments, got {len(args)}")
    if len(args) == 3:
        step = args[2]
        if not (isinstance(step, int) and step == 1):
            raise UnsupportedError(
                f"range(..., step={step}) inside a kernel: loops with a step are not supported",
                loc=user_location(),
            )
        args = args[:2]
    return T.serial(*args)


def while_cond(x: Any) -> Any:
    c = cond(x)
    if not isinstance(c, builtins.bool):
        raise UnsupportedError(
            f"`while {c}:` on a run-time condition is not supported (no while loops in tsir's "
            "IR); use a T.serial loop with a guard",
            loc=user_location(),
        )
    return c


def annotate(name: str, local_vars: dict[str, Any], ann: Any) -> Any:
    """`A: T.Tensor((M, K), dtype)` in a jit body: declares the parameter `A`."""
    return declare_tensor(name, local_vars.get(name), ann)


def annotated_value(ann: Any, value: Any) -> Any:
    dt = is_dtype_annotation(ann)
    if dt is not None:
        return M.cast(value, dt) if isinstance(value, PrimExpr) else convert(value, dt)
    if isinstance(ann, TensorSpec) and not isinstance(value, Buffer):
        raise BuildError(f"a value annotated {ann!r} must be a buffer, got {value!r}")
    return value


def assert_(test: Any, msg: Any) -> None:
    c = cond(test)
    if not isinstance(c, builtins.bool):
        raise UnsupportedError(
            f"`assert {c}` on a run-time condition is not supported (TileLang's T.device_assert)",
            loc=user_location(),
        )
    if not c:
        raise BuildError(f"assertion failed: {msg}" if msg is not None else "assertion failed")


def scripted(fn: Any) -> Any:
    """Marks a def already rewritten (nested in a script): T.macro must not parse it again."""
    fn.__tsir_scripted__ = True
    return fn
