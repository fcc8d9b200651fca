"""The statement and function printer behind `tsir.printer` (its docstring lists the text forms).

`StmtPrinter` emits one line at a time at the current depth; a marked node's span (the sentinels
of `tsir.printer_expr`) becomes a `^^^` line beneath it. Tile ops, and statements that declare a
`print_form` (CpEngineCopy), print through their own `print_form(expr_printer)`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .buffer import Buffer
from .dtype import int32
from .expr import Add, Call, IntImm, PrimExpr, Sub, Var, const_value
from .function import DeviceKernel, PrimFunc
from .intrin import DEVICE_FUNCTIONS
from .node import Node, node_fields
from .printer_expr import (
    MARK_BEGIN,
    MARK_END,
    ExprPrinter,
    Namer,
    dtype_text,
    quote,
)
from .stmt import (
    Allocate,
    AttrStmt,
    BufferStore,
    DeclBuffer,
    Evaluate,
    For,
    ForKind,
    IfThenElse,
    KernelCall,
    KernelLaunch,
    LetStmt,
    SeqStmt,
    Stmt,
    TileOpStmt,
)
from .structural import structural_equal
from .visitor import walk

__all__ = ["StmtPrinter"]

_LOOP_FUNCS = {
    ForKind.SERIAL: "T.serial",
    ForKind.UNROLLED: "T.unroll",
    ForKind.VECTORIZED: "T.vectorized",
    ForKind.PARALLEL: "T.Parallel",
    ForKind.PIPELINED: "T.Pipelined",
    ForKind.THREAD_BINDING: "T.thread_binding",
}
_ALLOC_FUNCS = {
    "shared.dyn": "T.alloc_shared({shape}, {dtype})",
    "shared": 'T.alloc_shared({shape}, {dtype}, scope="shared")',
    "local.fragment": "T.alloc_fragment({shape}, {dtype})",
    "local": "T.alloc_local({shape}, {dtype})",
    "global": "T.alloc_global({shape}, {dtype})",
}
# Calls the builder emits as statements of their own: barriers, and the device functions that
# declare a statement-form builder function (fences).
_SYNC_CALLS = {
    "sync_threads": "T.sync_threads()",
    "sync_warp": "T.sync_warp()",
    **{f.name: f"{f.builder}()" for f in DEVICE_FUNCTIONS.values() if f.builder and f.statement},
}
_DEFAULT_ALIGN = 16  # what make_buffer gives every buffer the builder creates


class StmtPrinter:
    def __init__(self, mark: Node | None):
        self.namer = Namer()
        self.expr = ExprPrinter(self.namer, mark)
        self.mark = mark
        self.lines: list[str] = []
        self.depth = 0
        self.marked = False
        self.pending_mark = False
        self.func_name: str | None = None
        self.kernels_seen = 0
        self.declared: set[Var] = set()  # the function's parameters and dynamic dimensions so far
        self._dispatch: dict[type, Callable[[Any, bool], None]] = {}

    def emit(self, text: str, node: Any = None) -> None:
        """One line at the current depth; a marked node's span gets a `^^^` line beneath."""
        if self.pending_mark or (node is not None and node is self.mark):
            text = MARK_BEGIN + text + MARK_END
            self.pending_mark = False
        indent = "    " * self.depth
        if MARK_BEGIN not in text:
            self.lines.append(indent + text)
            return
        clean: list[str] = []
        carets: list[bool] = []
        level = 0
        for ch in text:
            if ch == MARK_BEGIN:
                level += 1
            elif ch == MARK_END:
                level -= 1
            else:
                clean.append(ch)
                carets.append(level > 0)
        self.lines.append(indent + "".join(clean))
        self.lines.append((" " * len(indent) + "".join("^" if c else " " for c in carets)).rstrip())
        self.marked = True

    def block(self, s: Stmt) -> None:
        self.depth += 1
        self.stmts(s)
        self.depth -= 1

    def stmts(self, s: Stmt) -> None:
        items = _flatten(s)
        if s is self.mark:
            self.pending_mark = True
        if not items:
            self.emit("pass")
        for k, x in enumerate(items):
            self.stmt(x, k == len(items) - 1)

    def stmt(self, s: Stmt, tail: bool) -> None:
        if s is self.mark:
            self.pending_mark = True
        fn = self._dispatch.get(type(s))
        if fn is None:
            fn = self._dispatch[type(s)] = getattr(self, f"_{type(s).__name__}", self._generic_stmt)
        if not tail and isinstance(s, (Allocate, LetStmt, DeclBuffer)):
            # Its scope ends before the statements that follow: keep them out of the block.
            self.emit("with T.scope():")
            self.depth += 1
            fn(s, True)
            self.depth -= 1
            return
        fn(s, tail)

    # -- functions --------------------------------------------------------------------------------
    def func(self, f: PrimFunc | DeviceKernel) -> None:
        self.func_name = f.name
        if isinstance(f, PrimFunc):
            self.emit(f"with T.prim_func({quote(f.name)}) as f:", f)
        else:
            kw = [f"grid={self.tuple(f.grid)}", f"threads={self.tuple(f.threads)}"]
            if f.dyn_shared_bytes:
                kw.append(f"dyn_shared_bytes={f.dyn_shared_bytes}")
            self.emit(f"with T.device_kernel({quote(f.name)}, {', '.join(kw)}) as f:", f)
        self.depth += 1
        for p in f.params:
            self.param(p)
        if isinstance(f, PrimFunc) and f.attrs:
            self.emit(f"T.func_attr({self.expr.value(dict(f.attrs))})")
        if isinstance(f, DeviceKernel):
            for d, v in enumerate(f.block_vars):
                self.emit(f"{self.namer.define(v, v.name)} = T.get_block_binding({d})")
            for d, v in enumerate(f.thread_vars):
                self.emit(f"{self.namer.define(v, v.name)} = T.get_thread_binding({d})")
        self.stmts(f.body)
        self.depth -= 1

    def param(self, p: Buffer | Var) -> None:
        if isinstance(p, Var) and p in self.declared:
            self.emit(f"T.scalar({self.namer(p)})", p)  # a dynamic dimension declared above
            return
        if isinstance(p, Var):
            self.declared.add(p)
            dt = "" if p.dtype == int32 else f", {dtype_text(p.dtype)}"
            self.emit(f"{self.namer.define(p, p.name)} = T.scalar({quote(p.name)}{dt})", p)
            return

        for v in walk((p.shape, p.strides)):
            if isinstance(v, Var) and v not in self.declared:
                self.declared.add(v)
                dt = "" if v.dtype == int32 else f", {dtype_text(v.dtype)}"
                self.emit(f"{self.namer.define(v, v.name)} = T.dynamic({quote(v.name)}{dt})")
        kw = "" if p.scope == "global" else f", scope={quote(p.scope)}"
        kw += self.buffer_extras(p)
        shape = self.tuple(p.shape)
        self.emit(
            f"{self.namer.define(p, p.name)} = "
            f"T.param({quote(p.name)}, {shape}, {dtype_text(p.dtype)}{kw})",
            p,
        )

    def buffer_extras(self, b: Buffer) -> str:
        text = f", strides={self.tuple(b.strides)}" if b.strides else ""
        return text + (f", align={b.align}" if b.align != _DEFAULT_ALIGN else "")

    def buffer_decl(self, b: Buffer) -> str:
        scope = "" if b.scope == "global" else f", scope={quote(b.scope)}"
        args = f"{quote(b.name)}, {self.tuple(b.shape)}, {dtype_text(b.dtype)}"
        return f"T.Buffer({args}{scope}{self.buffer_extras(b)})"

    def tuple(self, items: Any) -> str:
        return self.expr.value(tuple(items))

    # -- statements -------------------------------------------------------------------------------
    def _For(self, s: For, tail: bool) -> None:
        loops = [s]
        if s.kind is ForKind.PARALLEL and not s.annotations and s.thread is None:
            # `for i, j in T.Parallel(m, n)`: nested parallel loops whose bounds use no outer var

            inner = s.body
            while (
                isinstance(inner, For)
                and inner.kind is ForKind.PARALLEL
                and not inner.annotations
                and inner.thread is None
                and inner is not self.mark
                and not any(
                    x is lp.loop_var for x in walk((inner.min, inner.extent)) for lp in loops
                )
            ):
                loops.append(inner)
                inner = inner.body
        tuple_form = s.kind in (ForKind.PARALLEL, ForKind.PIPELINED)
        args = [self.loop_range(lp.min, lp.extent, tuple_form) for lp in loops]
        stages = s.annotation("num_stages")
        builder_annotations = (("num_stages", stages),) if s.kind is ForKind.PIPELINED else ()
        if s.kind is ForKind.PIPELINED:
            args.append(f"num_stages={stages!r}")  # a Pipelined loop without stages shows None
            if s.annotation("warp_specialize", True) is False:
                args.append("warp_specialize=False")
                builder_annotations += (("warp_specialize", False),)
            if s.annotation("tma") is not None:
                args.append(f"tma={s.annotation('tma')!r}")
                builder_annotations += (("tma", s.annotation("tma")),)
            if s.annotation("pingpong", False) is True:
                args.append("pingpong=True")
                builder_annotations += (("pingpong", True),)
            schedule = s.annotation("schedule")
            if schedule is not None:
                for key, value in zip(("order", "stage", "group"), schedule):
                    if value is not None:
                        as_list = [list(x) for x in value] if key == "group" else list(value)
                        args.append(f"{key}={as_list!r}")
                builder_annotations += (("schedule", schedule),)
        if s.thread is not None:
            args.append(f"thread={quote(s.thread)}")
        # (as mappings: the builder adds T.Pipelined's keywords in another order than this)
        if s.annotations and dict(s.annotations) != dict(builder_annotations):
            args.append(f"annotations={self.expr.value(dict(s.annotations))}")
        names = ", ".join(self.namer.define(lp.loop_var, lp.loop_var.name) for lp in loops)
        self.emit(f"for {names} in {_LOOP_FUNCS[s.kind]}({', '.join(args)}):")
        self.block(loops[-1].body)

    def loop_range(self, lo: PrimExpr, ext: PrimExpr, tuple_form: bool) -> str:
        """`ext` for a loop from 0, else `lo, hi` with hi what the builder turns into `hi - lo`."""
        if isinstance(lo, IntImm) and lo.value == 0 and lo.dtype == ext.dtype:
            return self.expr(ext)
        if isinstance(ext, Sub) and structural_equal(ext.b, lo):
            hi = ext.a
        elif isinstance(lo, IntImm) and isinstance(ext, IntImm) and lo.dtype == ext.dtype:
            hi = IntImm(lo.value + ext.value, lo.dtype)
        else:
            hi = Add(lo, ext)  # readable; rebuilds as `hi - lo`
        text = f"{self.expr(lo)}, {self.expr(hi)}"
        return f"({text})" if tuple_form else text

    def _SeqStmt(self, s: SeqStmt, tail: bool) -> None:
        self.stmts(s)

    def _IfThenElse(self, s: IfThenElse, tail: bool) -> None:
        self.emit(f"with T.If({self.expr(s.cond)}):")
        self.block(s.then_case)
        if s.else_case is not None:
            self.emit("with T.Else():")
            self.block(s.else_case)

    def _BufferStore(self, s: BufferStore, tail: bool) -> None:
        target = f"{self.namer(s.buffer)}[{self.expr.indices(s.indices)}]"
        self.emit(f"{target} = {self.expr(s.value, s.buffer.dtype)}")

    def _Evaluate(self, s: Evaluate, tail: bool) -> None:
        v = s.value
        if isinstance(v, Call) and v.op in _SYNC_CALLS and not v.args and v.dtype == int32:
            self.emit(_SYNC_CALLS[v.op])
        else:
            self.emit(f"T.evaluate({self.expr(v)})")

    def _Allocate(self, s: Allocate, tail: bool) -> None:
        b = s.buffer
        shape, dt = self.tuple(b.shape), dtype_text(b.dtype)
        plain = not b.strides and b.align == _DEFAULT_ALIGN
        if plain and b.scope in _ALLOC_FUNCS:
            call = _ALLOC_FUNCS[b.scope].format(shape=shape, dtype=dt)
        elif plain and b.scope == "local.var" and const_value(b.shape[0]) == 1 and b.ndim == 1:
            call = f"T.alloc_var({dt})"
        else:
            call = f"T.alloc_buffer({shape}, {dt}, scope={quote(b.scope)}{self.buffer_extras(b)})"
        self.emit(f"{self.namer.define(b, b.name)} = {call}", b)
        self.stmts(s.body)

    def _DeclBuffer(self, s: DeclBuffer, tail: bool) -> None:
        b = s.buffer
        args = f"{self.tuple(b.shape)}, {dtype_text(b.dtype)}, scope={quote(b.scope)}"
        args += f", data={self.namer(s.base)}, byte_offset={s.byte_offset}{self.buffer_extras(b)}"
        self.emit(f"{self.namer.define(b, b.name)} = T.decl_buffer({args})", b)
        self.stmts(s.body)

    def _LetStmt(self, s: LetStmt, tail: bool) -> None:
        value = self.expr(s.value)
        self.emit(f"{self.namer.define(s.var, s.var.name)}: T.{s.var.dtype} = {value}")
        self.stmts(s.body)

    def _AttrStmt(self, s: AttrStmt, tail: bool) -> None:
        self.emit(f"with T.attr({quote(s.key)}, {self.expr.value(s.value)}):")
        self.block(s.body)

    def _KernelLaunch(self, s: KernelLaunch, tail: bool) -> None:
        args = [self.expr(g) for g in s.grid]
        args.append(f"threads={s.threads[0] if len(s.threads) == 1 else self.tuple(s.threads)}")
        if s.cluster is not None:
            args.append(f"cluster={s.cluster[0] if len(s.cluster) == 1 else self.tuple(s.cluster)}")
        if s.dyn_shared_bytes:
            args.append(f"dyn_shared_bytes={s.dyn_shared_bytes}")
        default = f"{self.func_name}_kernel" + (
            f"_{self.kernels_seen}" if self.kernels_seen else ""
        )
        self.kernels_seen += 1
        if s.name != default and self.func_name is not None:
            args.append(f"name={quote(s.name)}")
        names = [self.namer.define(v, v.name) for v in s.block_vars]
        target = names[0] if len(names) == 1 else f"({', '.join(names)})"
        target = f" as {target}" if names else ""
        self.emit(f"with T.Kernel({', '.join(args)}){target}:")
        self.depth += 1
        used = {id(x) for x in walk(s.body) if isinstance(x, Var)}
        for d, v in enumerate(s.thread_vars):
            if id(v) in used:
                self.emit(f"{self.namer.define(v, v.name)} = T.get_thread_binding({d})")
        self.stmts(s.body)
        self.depth -= 1

    def _TileOpStmt(self, s: TileOpStmt, tail: bool) -> None:
        self.emit(self.tile_op(s.op), s.op)

    def tile_op(self, op: Any) -> str:
        return op.print_form(self.expr)

    def _KernelCall(self, s: KernelCall, tail: bool) -> None:
        args = [quote(s.kernel), *(self.expr.value(a) for a in s.args)]
        args += [f"grid={self.tuple(s.grid)}", f"threads={self.tuple(s.threads)}"]
        args.append(f"dyn_shared_bytes={s.dyn_shared_bytes}")
        self.emit(f"T.call_kernel({', '.join(args)})")

    def _generic_stmt(self, s: Stmt, tail: bool) -> None:
        form = getattr(s, "print_form", None)
        if form is not None:  # a statement that knows its builder form (CpEngineCopy)
            self.emit(form(self.expr), s)
            return
        fields = [f for f in node_fields(s) if f.name != "body"]
        args = ", ".join(f"{f.name}={self.expr.value(getattr(s, f.name))}" for f in fields)
        text = f"{type(s).__name__}({args})"
        body = getattr(s, "body", None)
        if isinstance(body, Stmt):
            self.emit(f"with {text}:")
            self.block(body)
        else:
            self.emit(text)


def _flatten(s: Stmt) -> list[Stmt]:
    if not isinstance(s, SeqStmt):
        return [s]
    out: list[Stmt] = []
    for x in s.stmts:
        out.extend(_flatten(x))
    return out
