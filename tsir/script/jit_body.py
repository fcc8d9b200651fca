"""What runs inside the body of a `@tilelang.jit` function (the current form): `T.const`,
`T.empty` and the tensor annotations (`A: T.Tensor(shape, dtype)`, which the script transform turns
into `declare_tensor` calls), against the build context `build_jit` (tsir.script.jit) sets."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from ..buffer import Buffer
from ..builder import structure as T  # the builder below the `T` namespace (which imports this)
from ..builder.frame import infer_name
from ..dtype import dtype as as_dtype
from ..errors import BuildError
from ..expr import IntImm
from .annot import TensorSpec, is_dtype_annotation

__all__ = ["JitContext", "jit_state", "const", "empty", "declare_tensor", "is_tensor"]


@dataclass
class JitContext:
    consts: dict[str, Any]
    tensors: dict[str, Any]
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)


_state = threading.local()


def _ctx(what: str) -> JitContext:
    ctx = getattr(_state, "ctx", None)
    if ctx is None:
        raise BuildError(f"{what} is only meaningful in the body of a @tilelang.jit function")
    return ctx


def jit_state() -> Any:
    """The thread's build state (`.ctx`: the JitContext of the body being run, or None)."""
    return _state


def is_tensor(x: Any) -> TypeGuard[Any]:
    return hasattr(x, "shape") and hasattr(x, "dtype") and not isinstance(x, (Buffer, TensorSpec))


def const(names: str) -> Any:
    """`M, N, K = T.const("M, N, K")`: compile-time dimensions bound from the tensors passed."""
    ctx = _ctx("T.const")
    out = []
    for n in names.replace(",", " ").split():
        if n not in ctx.consts:
            raise BuildError(
                f"T.const: no value for `{n}`; it must be a dimension of a tensor annotation "
                f"(`A: T.Tensor(({n}, ...), dtype)`) given a tensor, or passed as `{n}=` to .compile()"
            )
        out.append(ctx.consts[n])
    return out[0] if len(out) == 1 else tuple(out)


def declare_tensor(name: str, value: Any, ann: Any) -> Any:
    ctx = _ctx(f"the annotation `{name}: ...`")
    dt = is_dtype_annotation(ann)
    if dt is not None:
        ctx.inputs.append(name)
        return T.scalar(name, dt)
    if not isinstance(ann, TensorSpec):
        raise BuildError(
            f"`{name}: {ann!r}`: a parameter annotation must be T.Tensor(shape, dtype) or a dtype"
        )
    if name not in ctx.tensors:
        raise BuildError(
            f"`{name}` is annotated as a tensor but is not a parameter of the function"
        )
    buf = T.param(name, ann.shape, ann.dtype)
    if is_tensor(value):
        _check_tensor(name, value, buf)
    ctx.inputs.append(name)
    return buf


def _check_tensor(name: str, t: Any, buf: Buffer) -> None:
    shape = tuple(int(d) for d in t.shape)
    want = tuple(d.value if isinstance(d, IntImm) else None for d in buf.shape)
    if len(shape) != len(want) or any(w is not None and w != s for w, s in zip(want, shape)):
        raise BuildError(
            f"`{name}` is declared with shape {tuple(str(d) for d in buf.shape)} but the tensor passed has shape {shape}"
        )
    tdt = str(t.dtype).replace("torch.", "")
    try:
        got = as_dtype(tdt)
    except Exception:
        return
    if got != buf.dtype:
        raise BuildError(f"`{name}` is declared {buf.dtype} but the tensor passed is {got}")


def empty(shape: Any, dtype: Any = "float32") -> Buffer:
    """`C = T.empty((M, N), dtype)`: an output, allocated by the kernel's caller and returned."""
    ctx = _ctx("T.empty")
    name = infer_name("out")
    if isinstance(shape, int) or hasattr(shape, "dtype"):
        shape = (shape,)
    buf = T.param(name, tuple(shape), dtype)
    ctx.outputs.append(name)
    return buf
