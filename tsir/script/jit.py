"""TileLang's current form: `T.const` dimensions, `T.Tensor` annotations in the body, `T.empty`
outputs and `return C`, built into a PrimFunc for one set of arguments.

    def matmul(A, B, block_M, block_N, block_K, dtype=T.float16):
        M, N, K = T.const("M, N, K")
        A: T.Tensor((M, K), dtype)
        B: T.Tensor((K, N), dtype)
        C = T.empty((M, N), dtype)
        with T.Kernel(...) as (bx, by): ...
        return C

`build_jit(matmul, args, kwargs)` binds the arguments; the `T.const` names take their values from
the shapes of the tensors passed for the annotated parameters (or from keyword arguments: that is
how `matmul.compile(M=1024, ...)` works without tensors).
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..buffer import Buffer
from ..builder import structure as T  # the builder below the `T` namespace (which imports this)
from ..errors import BuildError
from ..function import PrimFunc
from .jit_body import JitContext, const, declare_tensor, empty, is_tensor, jit_state
from .source import def_location, parse_function, run_script

__all__ = [
    "JitSignature",
    "JitBuild",
    "build_jit",
    "is_jit_body",
    "const",
    "empty",
    "declare_tensor",
]


@dataclass(frozen=True)
class JitSignature:
    """What the body's top level declares: const names, tensor annotations (name -> AST)."""

    consts: tuple[str, ...]
    tensor_dims: dict[str, tuple[str | None, ...]]  # parameter -> const name of each dim (or None)

    @property
    def tensor_params(self) -> tuple[str, ...]:
        return tuple(self.tensor_dims)


def _const_names(call: ast.Call) -> tuple[str, ...] | None:
    if isinstance(call.func, ast.Attribute) and call.func.attr == "const" and call.args:
        arg = call.args[0]
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            return tuple(n for n in arg.value.replace(",", " ").split() if n)
    return None


def _shape_names(ann: ast.expr) -> tuple[str | None, ...] | None:
    """The dims of `T.Tensor((M, K), dt)` / `T.Tensor[[M, K], dt]` that are bare names."""
    shape: ast.expr | None = None
    if isinstance(ann, ast.Call) and ann.args:
        shape = ann.args[0]
    elif isinstance(ann, ast.Subscript) and isinstance(ann.slice, ast.Tuple) and ann.slice.elts:
        shape = ann.slice.elts[0]
    if isinstance(shape, (ast.Tuple, ast.List)):
        return tuple(e.id if isinstance(e, ast.Name) else None for e in shape.elts)
    return None


def signature_of(fn: Callable[..., Any]) -> JitSignature:
    cached = getattr(fn, "__tsir_jit_signature__", None)
    if cached is not None:
        return cached
    fdef = parse_function(fn)
    consts: list[str] = []
    dims: dict[str, tuple[str | None, ...]] = {}
    for stmt in fdef.body:
        if isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Call):
            names = _const_names(stmt.value)
            if names:
                consts.extend(names)
        if (
            isinstance(stmt, ast.AnnAssign)
            and stmt.value is None
            and isinstance(stmt.target, ast.Name)
        ):
            dims[stmt.target.id] = _shape_names(stmt.annotation) or ()
    sig = JitSignature(tuple(consts), dims)
    try:
        fn.__tsir_jit_signature__ = sig  # pyright: ignore[reportFunctionMemberAccess]  # narrowed by a check above that the checker cannot follow
    except AttributeError:
        pass
    return sig


def is_jit_body(fn: Callable[..., Any]) -> bool:
    """True when `fn` is written in the current form (declares T.const, tensor annotations or
    T.empty outputs at its top level), False for a factory returning a prim_func."""
    fdef = parse_function(fn)
    for stmt in fdef.body:
        if isinstance(stmt, ast.AnnAssign) and stmt.value is None:
            return True
        if isinstance(stmt, (ast.Assign, ast.Expr)) and isinstance(stmt.value, ast.Call):
            f = stmt.value.func
            if isinstance(f, ast.Attribute) and f.attr in ("const", "empty"):
                return True
    return False


def bind_consts(
    fn: Callable[..., Any], arguments: dict[str, Any], given: dict[str, Any]
) -> dict[str, Any]:
    """Values of the T.const names: from keyword arguments, then from the tensors' shapes."""
    sig = signature_of(fn)
    values: dict[str, Any] = {k: v for k, v in given.items() if k in sig.consts}
    source: dict[str, str] = {k: "a keyword argument" for k in values}
    for pname, dims in sig.tensor_dims.items():
        t = arguments.get(pname)
        if not is_tensor(t):
            continue
        shape = tuple(int(d) for d in t.shape)
        for axis, cname in enumerate(dims):
            if cname is None or cname not in sig.consts or axis >= len(shape):
                continue
            if cname in values and values[cname] != shape[axis]:
                raise BuildError(
                    f"`{cname}` is {values[cname]} from {source[cname]} but {shape[axis]} from "
                    f"dimension {axis} of `{pname}` (shape {shape})",
                    loc=def_location(fn),
                )
            values[cname] = shape[axis]
            source[cname] = f"dimension {axis} of `{pname}`"
    return values


@dataclass
class JitBuild:
    func: PrimFunc
    inputs: list[str]  # parameters the caller passes, in call order
    outputs: list[str]  # parameters the kernel allocates and returns, in return order
    arguments: dict[str, Any]


def build_jit(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> JitBuild:
    sig = signature_of(fn)
    params = inspect.signature(fn)
    call_kwargs = {k: v for k, v in kwargs.items() if k in params.parameters}
    extra = {k: v for k, v in kwargs.items() if k not in params.parameters}
    unknown = set(extra) - set(sig.consts)
    if unknown:
        raise BuildError(
            f"`{fn.__name__}` has no parameter or T.const named {', '.join(sorted(unknown))}",
            loc=def_location(fn),
        )
    try:
        bound = params.bind_partial(*args, **call_kwargs)
    except TypeError as exc:
        raise BuildError(f"`{fn.__name__}`: {exc}", loc=def_location(fn)) from None
    bound.apply_defaults()
    arguments = dict(bound.arguments)
    missing = [p for p in params.parameters if p not in arguments and p not in sig.tensor_params]
    if missing:
        raise BuildError(
            f"`{fn.__name__}` is missing the argument(s) {', '.join(missing)}", loc=def_location(fn)
        )
    for p in sig.tensor_params:
        arguments.setdefault(p, None)
    consts = bind_consts(fn, arguments, {**extra, **call_kwargs})
    ctx = JitContext(consts, {p: arguments.get(p) for p in sig.tensor_params})
    state = jit_state()
    prev = getattr(state, "ctx", None)
    state.ctx = ctx
    try:
        with T.prim_func(fn.__name__) as f:
            ret = run_script(fn, **arguments)
    finally:
        state.ctx = prev
    outputs = _returned(ret, ctx, fn)
    assert f.func is not None
    return JitBuild(f.func, ctx.inputs, outputs, arguments)


def _returned(ret: Any, ctx: JitContext, fn: Callable[..., Any]) -> list[str]:
    if ret is None:
        return list(ctx.outputs)
    items = ret if isinstance(ret, (tuple, list)) else (ret,)
    names = []
    for r in items:
        if not isinstance(r, Buffer) or r.name not in ctx.outputs + ctx.inputs:
            raise BuildError(
                f"`{fn.__name__}` must return tensors made by T.empty (or its parameters), got {r!r}",
                loc=def_location(fn),
            )
        names.append(r.name)
    return names
