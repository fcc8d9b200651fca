"""The printer: IR as the Python builder text that re-creates it (CONVENTIONS 10).

`print_func(f)` of a function built with `tsir.T` is Python: executed with `from tsir import T` (see
`rebuild`) it builds a function `structural_equal` to `f`. Indentation is 4 spaces; variables and
buffers print by name, and distinct objects that share a name within one printed function are told
apart in printing order (`i`, `i_1`, ...). Expressions follow `tsir.printer_expr`.

Forms of lowered IR, which the builder rebuilds too (programs rarely write them):

- `for tx in T.thread_binding(128, thread="threadIdx.x"):`; other loop annotations as
  `annotations=`;
- `T.Kernel(..., dyn_shared_bytes=N)`, `name="k"` when the kernel name is not the builder's default;
- `X = T.decl_buffer(shape, dtype, scope=..., data=pool, byte_offset=N)` (a view into `pool`);
- `T.alloc_buffer(...)` for allocations with strides, a non-default alignment or another scope;
- `with T.attr(key, value):`, `T.evaluate(expr)`, `T.call_intrin(...)`, `T.Ramp`, `T.Broadcast`;
- `T.func_attr({...})` for function attributes;
- a scoped statement (allocation, let, view) followed by statements outside its scope is wrapped in
  `with T.scope():`;
- a tile op prints its own builder form (`print_form`, beside the op in tsir/tileop/); one without
  a builder function, or whose fields its builder function would refuse, prints as
  `T.tile_op("<registered name>", field=value, ...)`, rebuilt through the registry;
- layouts and fragment plans print as the `tsir.layout` / `tsir.tileop` calls that make them;
- a binary node the Python operators would fold (`0 * 32`) is spelled out: `tsir.Mul(...)`.

What does not rebuild: `x: T.int32 = value` for a LetStmt (its scope: the rest of the block);
`T.call_kernel("k", *args, grid=, threads=, dyn_shared_bytes=)` and a
`DeviceKernel` as `with T.device_kernel("k", grid=, threads=, dyn_shared_bytes=) as f:` (a `Module`
prints as its host function followed by its kernels); an attribute whose value names buffers
allocated inside it (LayoutInference's `layout_map`, LowerTileOp's `shared_layout_map`); IR that
binds one variable in two places (builder text makes two variables of it).
"""

from __future__ import annotations

import hashlib
import linecache
import sys
from typing import Any

from .buffer import Buffer, BufferRegion
from .builder import lang as T
from .expr import PrimExpr
from .function import DeviceKernel, Module, PrimFunc
from .node import Node
from .printer_stmt import StmtPrinter
from .stmt import Stmt
from .structural import deep_recursion

__all__ = [
    "print_node",
    "print_expr",
    "print_func",
    "rebuild",
]


# -- public API -----------------------------------------------------------------------------------


def print_expr(expr: PrimExpr) -> str:
    """One expression as builder text (`a + b * c`, `T.cast(x, "float16")`)."""
    return _render(expr, None)[0]


def print_func(func: PrimFunc | DeviceKernel | Module, *, mark: Node | None = None) -> str:
    """A function (or device kernel, or module) as builder text; `mark` is underlined `^^^`."""
    return _render(func, mark)[0]


def print_node(node: Any, *, mark: Node | None = None) -> str:
    """Any node: functions and statements as builder text, expressions inline, others generic."""
    return _render(node, mark)[0]


def rebuild(text: str) -> PrimFunc:
    """Run the builder text of a function (what `print_func` prints) and return the function.

    The text runs under a real-looking file name with its lines in `linecache`, so the builder
    reads names off the source lines (`A_s = T.alloc_shared(...)` names the buffer `A_s`) exactly
    as for user code.
    """
    filename = f"/tsir-printed/{hashlib.sha1(text.encode()).hexdigest()[:16]}.py"
    linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
    # `tsir` is the package this module belongs to: loaded (it is never imported from in here).
    namespace: dict[str, Any] = {"T": T, "tsir": sys.modules["tsir"]}
    try:
        exec(compile(text, filename, "exec"), namespace)
    finally:
        linecache.cache.pop(filename, None)
    handle = namespace.get("f")
    func = getattr(handle, "func", None)
    if not isinstance(func, PrimFunc):
        raise ValueError("the text builds no function: expected `with T.prim_func(...) as f:`")
    return func


def _render(node: Any, mark: Node | None) -> tuple[str, bool]:
    """(text, whether `mark` was printed)."""
    with deep_recursion():
        return _render_node(node, mark)


def _render_node(node: Any, mark: Node | None) -> tuple[str, bool]:
    if isinstance(node, Module):
        parts = [_render(node.host, mark)]
        parts += [_render(k, mark) for k in node.kernels]
        header = f"# tsir.Module: the host function, then its {len(node.kernels)} device kernel(s)"
        return "\n\n".join([header, *(t for t, _ in parts)]), any(m for _, m in parts)
    p = StmtPrinter(mark)
    if isinstance(node, (PrimFunc, DeviceKernel)):
        p.func(node)
    elif isinstance(node, Stmt):
        p.stmts(node)
    elif isinstance(node, PrimExpr):
        p.emit(p.expr(node))
    elif isinstance(node, Buffer):
        p.emit(p.buffer_decl(node), node)
    elif isinstance(node, BufferRegion):
        p.emit(p.expr.region(node))
    elif hasattr(node, "print_form"):  # a tile op, or a statement that prints itself
        p.emit(node.print_form(p.expr), node)
    else:
        p.emit(p.expr.value(node))
    return "\n".join(p.lines), p.marked
