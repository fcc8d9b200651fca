"""Statements."""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any

from .buffer import Buffer, BufferRegion, Range
from .errors import SourceLocation
from .expr import PrimExpr, Var, const_value
from .node import Node, binder, node, span_field

if TYPE_CHECKING:  # the ops sit above the core; the annotation only names their base class
    from .tileop.base import TileOperatorNode

__all__ = [
    "Stmt",
    "ForKind",
    "For",
    "SeqStmt",
    "IfThenElse",
    "LetStmt",
    "BufferStore",
    "Evaluate",
    "Allocate",
    "DeclBuffer",
    "AttrStmt",
    "KernelLaunch",
    "TileOpStmt",
    "KernelCall",
    "Range",
    "BufferRegion",
    "CpEngineCopy",
]


@node
class Stmt(Node):
    """Base of statements. `span`: the user's source line that built it (not part of the spec)."""

    span: SourceLocation | None = span_field(default=None)


class ForKind(enum.Enum):
    SERIAL = "serial"
    PARALLEL = "parallel"
    UNROLLED = "unroll"
    VECTORIZED = "vectorized"
    PIPELINED = "pipelined"
    THREAD_BINDING = "thread_binding"

    def __repr__(self) -> str:
        return f"ForKind.{self.name}"


@node
class For(Stmt):
    """`for loop_var in [min, min + extent)`.

    THREAD_BINDING loops carry the hardware index in `thread` ("threadIdx.x"); PIPELINED loops carry
    `num_stages` in `annotations`.
    """

    loop_var: Var = binder()
    min: PrimExpr
    extent: PrimExpr
    kind: ForKind
    body: Stmt
    thread: str | None = None
    annotations: tuple[tuple[str, Any], ...] = ()

    def annotation(self, key: str, default: Any = None) -> Any:
        for k, v in self.annotations:
            if k == key:
                return v
        return default


@node
class SeqStmt(Stmt):
    stmts: tuple[Stmt, ...]


@node
class IfThenElse(Stmt):
    cond: PrimExpr
    then_case: Stmt
    else_case: Stmt | None = None


@node
class LetStmt(Stmt):
    var: Var = binder()
    value: PrimExpr
    body: Stmt


@node
class BufferStore(Stmt):
    buffer: Buffer
    value: PrimExpr
    indices: tuple[PrimExpr, ...]


@node
class Evaluate(Stmt):
    """Evaluate an expression for its side effects (an intrinsic call such as a barrier)."""

    value: PrimExpr


@node
class Allocate(Stmt):
    """Storage for `buffer` (shared, local, fragment scopes) live in `body`."""

    buffer: Buffer = binder()
    body: Stmt


@node
class DeclBuffer(Stmt):
    """`buffer` is a view of `byte_offset` bytes into the pool buffer `base` (shared-memory planning)."""

    buffer: Buffer = binder()
    base: Buffer
    byte_offset: int
    body: Stmt


@node
class AttrStmt(Stmt):
    key: str
    value: Any
    body: Stmt


@node
class KernelLaunch(Stmt):
    """A kernel: a grid of blocks of threads running `body`.

    `block_vars[i]` is blockIdx.{x,y,z} ranging over `grid[i]`; `thread_vars[i]` is threadIdx.{x,y,z}
    ranging over `threads[i]`. `dyn_shared_bytes` is filled by shared-memory planning.
    """

    name: str
    grid: tuple[PrimExpr, ...]
    threads: tuple[int, ...]
    block_vars: tuple[Var, ...] = binder()
    thread_vars: tuple[Var, ...] = binder()
    body: Stmt
    cluster: tuple[int, ...] | None = None
    dyn_shared_bytes: int = 0

    @property
    def num_threads(self) -> int:
        n = 1
        for t in self.threads:
            n *= t
        return n


@node
class TileOpStmt(Stmt):
    """A tile operator in place (lowered to thread-level IR by LowerTileOp)."""

    op: TileOperatorNode


@node
class KernelCall(Stmt):
    """A host step after SplitHostDevice: call the device kernel named `kernel` (a `DeviceKernel`
    of the module) over `grid` x `threads` with these arguments. Not to be confused with
    `KernelLaunch`, the kernel itself in place in a function body before SplitHostDevice."""

    kernel: str
    grid: tuple[PrimExpr, ...]
    threads: tuple[int, ...]
    dyn_shared_bytes: int
    args: tuple[
        Any, ...
    ]  # Buffers (pointers) and scalar PrimExprs, in the kernel's parameter order


@node
class CpEngineCopy(Stmt):
    """A copy-engine transfer (`T.cp_engine_copy`): `size` elements from `src` on rank `src_pe` to
    `dst` on rank `dst_pe` (None: this rank), moved by the GPU's DMA engines, then `flag_value`
    written to `flag` (when set) on the rank that received the data. A host statement: one written
    in a kernel body is moved before that kernel's launch by LowerCPEngineIntrin. `src`, `dst` and
    `flag` are one-element regions (addresses, not loads: no pass may guard or hoist them)."""

    src: BufferRegion
    dst: BufferRegion
    size: PrimExpr
    src_pe: PrimExpr | None = None
    dst_pe: PrimExpr | None = None
    flag: BufferRegion | None = None
    flag_value: PrimExpr | None = None

    def print_form(self, p: Any) -> str:
        """`T.cp_engine_copy(src, dst, size, src_pe=, dst_pe=, signal=(flag, value))`."""

        def operand(r: BufferRegion) -> str:
            if all(const_value(m) == 0 for m in r.mins):
                return str(p.namer(r.buffer))
            # A one-element slice on the last axis: valid on the host, and rebuilds this element.
            idx = [p(i) for i in r.mins[:-1]]
            last = p(r.mins[-1])
            return f"{p.namer(r.buffer)}[{', '.join([*idx, f'{last}:{last} + 1'])}]"

        text = f"T.cp_engine_copy({operand(self.src)}, {operand(self.dst)}, {p(self.size, self.size.dtype)}"
        text += f", src_pe={p(self.src_pe)}" if self.src_pe is not None else ""
        text += f", dst_pe={p(self.dst_pe)}" if self.dst_pe is not None else ""
        if self.flag is not None and self.flag_value is not None:
            value = p(self.flag_value, self.flag.buffer.dtype)
            text += f", signal=({operand(self.flag)}, {value})"
        return text + ")"


# The host step's old name, kept importable for runtime/kernel.py (branch `plumbing` owns it);
# new code says KernelCall.
LaunchKernel = KernelCall


def seq(*stmts: Stmt | None) -> Stmt:
    """A statement sequence with nested sequences flattened and Nones dropped."""
    out: list[Stmt] = []
    for s in stmts:
        if s is None:
            continue
        if isinstance(s, SeqStmt):
            out.extend(s.stmts)
        else:
            out.append(s)
    if len(out) == 1:
        return out[0]
    return SeqStmt(tuple(out))


_ = (Buffer, BufferRegion, Range)
