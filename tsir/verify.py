"""`tsir.verify`: the well-formedness checks the pipeline runs between passes (CONVENTIONS 9).

One generic walk over node fields with a scoped environment:

- A binder field defines what it holds for the node's `body` field only (`For.loop_var`,
  `LetStmt.var`, `Let.var`, the block and thread indices of `KernelLaunch`, `Allocate` and
  `DeclBuffer` buffers); the node's other fields (loop bounds, the let value, the grid) are in the
  enclosing scope.
- The parameters of a function (`PrimFunc`, `DeviceKernel`) are in scope for the whole function,
  with the Vars in their shapes and strides (dynamic dimensions).
- Any other Var or Buffer is a use, and must be in scope.

Per-node rules (dtypes, index counts, intrinsic names) are a table from node type to a check, run
before the node's fields are walked. Every problem found is reported in one VerifyError.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .buffer import Buffer
from .errors import VerifyError
from .expr import (
    EQ,
    GE,
    GT,
    LE,
    LT,
    NE,
    Add,
    And,
    BinaryOp,
    Broadcast,
    BufferLoad,
    Call,
    Div,
    FloorDiv,
    FloorMod,
    Let,
    Max,
    Min,
    Mul,
    Not,
    Or,
    PrimExpr,
    Ramp,
    Select,
    Sub,
    Var,
)
from .function import DeviceKernel, Module, PrimFunc
from .intrin import INTRINSICS
from .node import Node, node_fields
from .printer import print_node
from .stmt import (
    Allocate,
    AttrStmt,
    BufferStore,
    DeclBuffer,
    For,
    ForKind,
    IfThenElse,
    KernelCall,
    KernelLaunch,
    LetStmt,
    Stmt,
)
from .structural import deep_recursion
from .visitor import walk

__all__ = ["verify", "ALLOWED_CALL_PREFIXES", "RULES", "METADATA_ATTRS"]

# AttrStmt keys whose values are pass metadata about buffers allocated inside their body (layout
# maps, pipeline stages): they refer to those buffers before the Allocate, by design.
METADATA_ATTRS = frozenset(
    {
        "layout_map",
        "annotate_layout",
        "shared_layout_map",
        "pipeline_buffers",
        "threadblock_swizzle",
        "threadblock_swizzle_col",
        "async_copy",
    }
)

# Call ops outside tsir.intrin.INTRINSICS are allowed with these prefixes (tsir's own device-header
# functions, extern device functions and NVSHMEM's device API); any other unknown op is a typo or
# a missing registration.
ALLOWED_CALL_PREFIXES: tuple[str, ...] = ("tsir.", "extern:", "nvshmem.")

# Scopes that need no kernel: memory the host can allocate.
_HOST_SCOPES = ("global", "symmetric")
_MAX_LISTED = 20


@dataclass(frozen=True)
class _Def:
    what: str  # "the `for` loop over `i`", for messages about uses after the scope ended
    kernel: str | None  # the kernel the definition is inside, if any


class _Verifier:
    def __init__(self) -> None:
        self.scope: dict[Node, _Def] = {}
        self.ended: dict[Node, _Def] = {}
        self.kernel: str | None = None
        self.func: str | None = None
        self.stmt: Stmt | None = None
        self.path: list[str] = []
        self.problems: list[str] = []
        self._seen: set[str] = set()

    # -- reporting --------------------------------------------------------------------------------
    def report(self, message: str) -> None:
        if message in self._seen:  # one report per distinct problem, not per use
            return
        self._seen.add(message)
        where = "".join(self.path)
        if self.stmt is not None:
            line = print_node(self.stmt).splitlines()[0].strip()
            where = f"`{line}` at {where}"
        self.problems.append(f"{message}\n     in {where}")

    # -- the walk ---------------------------------------------------------------------------------
    def visit(self, x: Any, segment: str) -> None:
        self.path.append(segment)
        if isinstance(x, (Var, Buffer)):
            self.use(x)
        elif isinstance(x, Node):
            self.node(x)
        elif isinstance(x, (tuple, list)):
            for k, y in enumerate(x):
                self.visit(y, f"[{k}]")
        elif isinstance(x, dict):
            for k, y in x.items():
                self.visit(y, f"[{k!r}]")
        self.path.pop()

    def node(self, n: Node) -> None:
        saved = (self.stmt, self.kernel, self.func)
        if isinstance(n, Stmt):
            self.stmt = n
        if isinstance(n, (PrimFunc, DeviceKernel)):
            self.func, self.stmt = n.name, None
        rule = RULES.get(type(n))
        if rule is not None:
            rule(self, n)
        fields = node_fields(n)
        binders = [f for f in fields if f.binder]
        defined: list[Node] = []
        if isinstance(n, (PrimFunc, DeviceKernel)):
            if isinstance(n, DeviceKernel):
                self.kernel = n.name
            for f in binders:
                defined += self.define_all(getattr(n, f.name), f"`{n.name}`", function=True)
            for f in fields:
                if not f.binder:
                    self.visit(getattr(n, f.name), "." + f.name)
        else:
            for f in fields:
                if not f.binder and f.name != "body":
                    if isinstance(n, AttrStmt) and f.name == "value" and n.key in METADATA_ATTRS:
                        continue  # pass metadata naming buffers of the body (layouts, stages)
                    self.visit(getattr(n, f.name), "." + f.name)
            for f in binders:
                defined += self.define_all(getattr(n, f.name), _describe(n, getattr(n, f.name)))
            if isinstance(n, KernelLaunch):
                if self.kernel is not None:
                    self.report(
                        f"kernel `{n.name}` is launched inside kernel `{self.kernel}`; kernels do "
                        f"not nest"
                    )
                self.kernel = n.name
            if any(f.name == "body" for f in fields):
                self.visit(n.body, ".body")  # pyright: ignore[reportAttributeAccessIssue]  # narrowed by a check above that the checker cannot follow
        for x in defined:
            self.ended[x] = self.scope.pop(x)
        self.stmt, self.kernel, self.func = saved

    def define_all(self, value: Any, what: str, function: bool = False) -> list[Node]:
        items = value if isinstance(value, (tuple, list)) else (value,)
        out: list[Node] = []
        for x in items:
            if not isinstance(x, (Var, Buffer)):
                continue
            if function and x in self.scope:
                continue  # a dynamic dimension that is also passed as a scalar parameter
            if isinstance(x, Buffer):
                if function:  # a parameter's shape Vars are the function's dynamic dimensions
                    for v in _shape_vars(x):
                        if v not in self.scope:
                            out += self.define(v, f"the shape of parameter `{x.name}`")
                else:
                    self.visit((x.shape, x.strides), f"<shape of {x.name}>")
                    if x.scope not in _HOST_SCOPES and self.kernel is None:
                        self.report(
                            f"buffer `{x.name}` ({x.scope}) is allocated outside any kernel; "
                            f"on-chip memory exists only inside a T.Kernel"
                        )
            out += self.define(x, what)
        return out

    def define(self, x: Var | Buffer, what: str) -> list[Node]:
        if x in self.scope:
            self.report(
                f"{_kind(x)} `{x.name}` is defined again by {what} inside its own scope "
                f"(defined by {self.scope[x].what}); use a fresh {_kind(x)}"
            )
            return []
        self.scope[x] = _Def(what, self.kernel)
        self.ended.pop(x, None)
        return [x]

    def use(self, x: Var | Buffer) -> None:
        if x in self.scope:
            return
        d = self.ended.get(x)
        kind = _kind(x)
        if d is None:
            self.report(
                f"{kind} `{x.name}` is used but never defined (it is not a parameter"
                + (
                    ", a loop variable, a kernel index or a let variable)"
                    if isinstance(x, Var)
                    else " and no Allocate or DeclBuffer defines it)"
                )
            )
        elif isinstance(x, Buffer) and d.kernel is not None and d.kernel != self.kernel:
            self.report(
                f"buffer `{x.name}` ({x.scope}) is used outside the kernel `{d.kernel}` that "
                f"allocates it"
            )
        else:
            self.report(f"{kind} `{x.name}` is used outside its scope: {d.what} has ended")


def _kind(x: Node) -> str:
    return "variable" if isinstance(x, Var) else "buffer"


def _describe(n: Node, value: Any) -> str:
    if isinstance(n, For):
        return f"the `for` loop over `{n.loop_var.name}`"
    if isinstance(n, KernelLaunch):
        return f"the kernel `{n.name}`"
    if isinstance(n, (LetStmt, Let)):
        return f"the let of `{n.var.name}`"
    if isinstance(n, (Allocate, DeclBuffer)):
        return f"the {type(n).__name__} of `{n.buffer.name}`"
    return f"the {type(n).__name__}"


def _shape_vars(b: Buffer) -> list[Var]:
    return [v for v in walk((b.shape, b.strides)) if isinstance(v, Var)]


# -- per-node rules -------------------------------------------------------------------------------


def _text(n: Node) -> str:
    return print_node(n).splitlines()[0]


def _same_dtype(v: _Verifier, e: Any) -> None:
    if e.a.dtype != e.b.dtype:
        v.report(
            f"`{_text(e)}` ({type(e).__name__}) mixes {e.a.dtype} and {e.b.dtype}; both operands "
            f"need one dtype (insert a Cast)"
        )


def _arith(v: _Verifier, e: BinaryOp) -> None:
    _same_dtype(v, e)
    dt = e.a.dtype
    if isinstance(e, Div) and not dt.is_float:
        v.report(
            f"`{_text(e)}` is a Div of {dt} operands; Div is true division of floats "
            f"(use FloorDiv for integers)"
        )
    if isinstance(e, (FloorDiv, FloorMod)) and not dt.is_int:
        v.report(f"`{_text(e)}` is a {type(e).__name__} of {dt} operands; it needs integers")


def _logic(v: _Verifier, e: Any) -> None:
    operands = (e.a,) if isinstance(e, Not) else (e.a, e.b)
    if not isinstance(e, Not):
        _same_dtype(v, e)
    for x in operands:
        if not x.dtype.element.is_bool:
            v.report(
                f"`{_text(e)}` ({type(e).__name__}) has an operand of dtype {x.dtype}, expected "
                f"bool"
            )
            break


def _cond(v: _Verifier, cond: PrimExpr, what: str) -> None:
    if not cond.dtype.element.is_bool:
        v.report(
            f"the condition `{_text(cond)}` of {what} has dtype {cond.dtype}, expected bool "
            f"(compare it, e.g. `x != 0`)"
        )


def _select(v: _Verifier, e: Select) -> None:
    _cond(v, e.cond, "a Select")
    if e.true_value.dtype != e.false_value.dtype:
        v.report(
            f"the branches of `{_text(e)}` have dtypes {e.true_value.dtype} and "
            f"{e.false_value.dtype}; they need one dtype"
        )


def _access(v: _Verifier, n: BufferLoad | BufferStore) -> None:
    b = n.buffer
    if len(n.indices) != b.ndim:
        v.report(
            f"`{_text(n)}` has {len(n.indices)} indices but buffer `{b.name}` has {b.ndim} "
            f"dimension{'s' if b.ndim != 1 else ''}"
        )
    for k, i in enumerate(n.indices):
        if not i.dtype.is_int:
            v.report(
                f"index {k} of `{_text(n)}` is `{_text(i)}` of dtype {i.dtype}; indices must be "
                f"integers"
            )
        elif i.dtype.lanes > 1 and k != len(n.indices) - 1:
            v.report(f"index {k} of `{_text(n)}` is a vector; only the last index may be")
    if isinstance(n, BufferStore) and n.value.dtype.element != b.dtype.element:
        v.report(
            f"a value of dtype {n.value.dtype} is stored into the {b.dtype} buffer `{b.name}`; "
            f"insert a Cast to {b.dtype}"
        )


def _call(v: _Verifier, e: Call) -> None:
    info = INTRINSICS.get(e.op)
    if info is None:
        if not e.op.startswith(ALLOWED_CALL_PREFIXES):
            v.report(
                f"`{_text(e)}` calls `{e.op}`, which is not an intrinsic of "
                f"tsir.intrin.INTRINSICS; "
                f"register it there, or name an extern function with one of the prefixes "
                f"{', '.join(repr(p) for p in ALLOWED_CALL_PREFIXES)}"
            )
    elif info.arity is not None and len(e.args) != info.arity:
        v.report(
            f"`{_text(e)}` passes {len(e.args)} argument(s) to `{e.op}`, which takes {info.arity}"
        )


def _for(v: _Verifier, s: For) -> None:
    dt = s.loop_var.dtype
    for what, x in (("start", s.min), ("extent", s.extent)):
        if x.dtype != dt:
            v.report(
                f"the {what} `{_text(x)}` of the loop over `{s.loop_var.name}` has dtype "
                f"{x.dtype}, "
                f"but the loop variable is {dt}"
            )
    if not dt.is_int:
        v.report(f"loop variable `{s.loop_var.name}` has dtype {dt}, expected an integer")
    if (s.kind is ForKind.THREAD_BINDING) != (s.thread is not None):
        v.report(
            f"the loop over `{s.loop_var.name}` is {s.kind.value} with thread={s.thread!r}; "
            f"exactly the thread-binding loops name a thread"
        )


def _let(v: _Verifier, n: Let | LetStmt) -> None:
    if n.value.dtype != n.var.dtype:
        v.report(f"let `{n.var.name}` of dtype {n.var.dtype} is bound to a {n.value.dtype} value")


def _kernel(v: _Verifier, k: KernelLaunch) -> None:
    if len(k.grid) != len(k.block_vars) or len(k.threads) != len(k.thread_vars):
        v.report(
            f"kernel `{k.name}` has {len(k.grid)} grid extents for {len(k.block_vars)} block "
            f"indices and {len(k.threads)} thread extents for {len(k.thread_vars)} thread indices"
        )


def _ramp(v: _Verifier, e: Ramp) -> None:
    if e.base.dtype != e.stride.dtype or not e.base.dtype.is_int or e.lanes < 2:
        v.report(
            f"`{_text(e)}` needs integer base and stride of one dtype and at least 2 lanes "
            f"(got {e.base.dtype}, {e.stride.dtype}, {e.lanes} lanes)"
        )


def _broadcast(v: _Verifier, e: Broadcast) -> None:
    if e.value.dtype.lanes != 1 or e.lanes < 2:
        v.report(
            f"`{_text(e)}` broadcasts a {e.value.dtype} value to {e.lanes} lanes; it needs a "
            f"scalar and at least 2 lanes"
        )


def _module(v: _Verifier, m: Module) -> None:
    kernels = {k.name: k for k in m.kernels}
    for launch in walk(m.host):
        if not isinstance(launch, KernelCall):
            continue
        k = kernels.get(launch.kernel)
        if k is None:
            v.report(
                f"the host launches kernel `{launch.kernel}`, which the module does not have "
                f"(kernels: {', '.join(kernels) or 'none'})"
            )
        elif len(launch.args) != len(k.params):
            v.report(
                f"the host launches kernel `{k.name}` with {len(launch.args)} arguments; it "
                f"takes {len(k.params)}"
            )


RULES: dict[type, Callable[[_Verifier, Any], None]] = {
    **{t: _arith for t in (Add, Sub, Mul, Div, FloorDiv, FloorMod, Min, Max)},
    **{t: _same_dtype for t in (EQ, NE, LT, LE, GT, GE)},
    And: _logic,
    Or: _logic,
    Not: _logic,
    Select: _select,
    IfThenElse: lambda v, s: _cond(v, s.cond, "an if"),
    BufferLoad: _access,
    BufferStore: _access,
    Call: _call,
    For: _for,
    Let: _let,
    LetStmt: _let,
    KernelLaunch: _kernel,
    Ramp: _ramp,
    Broadcast: _broadcast,
    Module: _module,
}


def verify(ir: PrimFunc | DeviceKernel | Module, pass_name: str | None = None) -> None:
    """Raise VerifyError listing every well-formedness problem of `ir`; `pass_name` names the pass
    that produced it."""
    v = _Verifier()
    with deep_recursion():
        v.visit(ir, "module" if isinstance(ir, Module) else "func")
    if not v.problems:
        return
    name = ir.host.name if isinstance(ir, Module) else getattr(ir, "name", type(ir).__name__)
    n = len(v.problems)
    lines = [f"malformed IR in `{name}` ({n} problem{'s' if n != 1 else ''}):"]
    lines += [f"  {k + 1}. {p}" for k, p in enumerate(v.problems[:_MAX_LISTED])]
    if n > _MAX_LISTED:
        lines.append(f"  ... and {n - _MAX_LISTED} more")
    err = VerifyError("\n".join(lines), where=pass_name)
    err.problems = list(v.problems)  # pyright: ignore[reportAttributeAccessIssue]  # narrowed by a check above that the checker cannot follow
    raise err
