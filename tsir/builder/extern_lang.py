"""The escape hatch to hand-written CUDA: `T.call_extern(dtype, "fn", *args)`,
`T.import_source(src)` and `T.address_of(buf[i])` (TileLang's names and argument orders).

- `T.import_source(cuda_source)` adds CUDA source that the code generator puts into the
  translation unit after its `#include`s and before the kernels (in the order given); it is a
  function attribute (`"tsir.import_source"`), so it prints and rebuilds with the function.
- `T.call_extern(dtype, "fn", *args)` calls `fn` (defined by an imported source, or by CUDA).
  With dtype "handle" or "void" it is a statement, run where written; with a value dtype it runs
  once, where written, and returns its value (kept in a `T.alloc_var`), so using the value twice
  does not call `fn` twice. Arguments are expressions, Python strings (C string literals) and
  `T.address_of(buf[i])` pointers.
- Memory effects, conservatively: tsir cannot see into `fn`, so it assumes `fn` reads and writes
  all of every buffer it gets a pointer to (ThreadSync places barriers around it accordingly), and
  nothing else: `fn` must not reach shared memory other than through its pointer arguments. Global
  memory written through a pointer is not bounds-guarded. The interpreter cannot run `fn`; it
  raises `ExternCallError` naming it, so such kernels are checked on the GPU only.
"""

from __future__ import annotations

from typing import Any

from ..dtype import DataType
from ..dtype import dtype as as_dtype
from ..errors import BuildError
from ..expr import BufferLoad, Call, PrimExpr, StringImm, convert
from ..function import IMPORT_ATTR
from ..stmt import Evaluate
from .frame import current_builder
from .memory import alloc_var

__all__ = ["call_extern", "import_source", "address_of"]


def address_of(element: Any) -> PrimExpr:
    """`&buf[i]`: the address of one buffer element (a pointer argument of `T.call_extern`)."""
    if not isinstance(element, BufferLoad):
        raise BuildError(f"T.address_of takes one element of a buffer (`buf[i]`), got {element!r}")
    return Call(DataType("handle"), "address_of", (element,))


def _argument(x: Any) -> PrimExpr:
    return StringImm(x) if isinstance(x, str) else convert(x)


def call_extern(dtype: Any, func_name: str, *args: Any) -> PrimExpr | None:
    """Call the device function `func_name` (see the module docstring for its effects)."""
    b = current_builder("T.call_extern")
    if not isinstance(func_name, str) or not func_name.isidentifier():
        raise BuildError(
            f"T.call_extern: the function name must be a C identifier, got {func_name!r}"
        )
    if b.kernel is None:
        raise BuildError(
            f"T.call_extern(`{func_name}`) must be inside a T.Kernel (it is device code)"
        )
    dt = DataType("handle") if str(dtype) in ("handle", "void") else as_dtype(dtype)
    call = Call(dt, f"extern:{func_name}", tuple(_argument(a) for a in args))
    if dt.is_handle:
        b.frame.emit(Evaluate(call))
        return None
    result = alloc_var(dt)
    result[0] = call
    return result[0]


def import_source(source: str) -> None:
    """Add CUDA source to the function's translation unit (after the includes, before the
    kernels): device functions for `T.call_extern`."""
    b = current_builder("T.import_source")
    if not isinstance(source, str) or not source.strip():
        raise BuildError(f"T.import_source takes CUDA source text, got {source!r}")
    b.attrs[IMPORT_ATTR] = (*b.attrs.get(IMPORT_ATTR, ()), source)
