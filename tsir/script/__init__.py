"""The script forms: a Python function's source, parsed with `ast`, drives the builder `tsir.T`.

- `tsir.script.prim_func(fn)` (also `@T.prim_func`): parameters annotated `T.Tensor(shape, dtype)`.
- `tsir.script.build_jit(fn, args, kwargs)`: TileLang's current `@tilelang.jit` body form.
- `tsir.script.macro(fn)`: a helper inlined at each call, rewritten the same way.

Both give the same IR the builder gives for the same program (tests compare them structurally).
"""

from .annot import Buffer, FragmentBuffer, LocalBuffer, SharedBuffer, Tensor, TensorSpec
from .forms import Macro, macro, prim_func
from .jit import JitBuild, build_jit, const, empty, is_jit_body

__all__ = [
    "prim_func",
    "macro",
    "Macro",
    "Tensor",
    "Buffer",
    "SharedBuffer",
    "FragmentBuffer",
    "LocalBuffer",
    "TensorSpec",
    "build_jit",
    "JitBuild",
    "is_jit_body",
    "const",
    "empty",
]
