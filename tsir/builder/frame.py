"""Builder state: a stack of frames that collect statements while the user's Python code runs."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..buffer import Buffer
from ..errors import BuildError, SourceLocation, user_location
from ..expr import Var
from ..stmt import Allocate, AttrStmt, DeclBuffer, Stmt, seq

__all__ = [
    "Frame",
    "current_builder",
    "Builder",
    "builder_stack",
    "infer_name",
    "check_buffer_use",
]


@dataclass
class Frame:
    """Statements collected for one syntactic scope.

    `finish(body)` turns the collected body into the statement this frame stands for (a loop, an if,
    a kernel). Allocations made in the frame wrap the statements that follow them.
    """

    kind: str
    finish: Callable[[Stmt], Stmt | None]
    items: list[Any] = field(default_factory=list)
    kernel: Any = None  # the KernelFrame this frame is inside, if any
    # The user's line that opened this scope (a `for`, a `with`): the finished statement's span.
    loc: SourceLocation | None = None

    def emit(self, stmt: Stmt) -> None:
        if isinstance(stmt, Stmt) and stmt.span is None:
            loc = user_location()
            if loc is not None:
                stmt = stmt.replace(span=loc)
        self.items.append(stmt)

    def allocate(self, buffer: Buffer) -> None:
        self.items.append(("alloc", buffer))

    def body(self) -> Stmt:
        stmt: Stmt | None = None
        for item in reversed(self.items):
            if isinstance(item, tuple) and item[0] == "alloc":
                stmt = Allocate(item[1], stmt if stmt is not None else seq())
            elif isinstance(item, tuple) and item[0] == "attr":
                stmt = AttrStmt(item[1], item[2], stmt if stmt is not None else seq())
            elif isinstance(item, tuple) and item[0] == "decl":
                body = stmt if stmt is not None else seq()
                stmt = DeclBuffer(item[1], item[2], item[3], body)
            else:
                stmt = seq(item, stmt)  # pyright: ignore[reportArgumentType]  # the tuple items are handled above; the rest are statements
        return stmt if stmt is not None else seq()


@dataclass
class KernelFrameInfo:
    block_vars: tuple[Var, ...]
    thread_vars: tuple[Var, ...]
    threads: tuple[int, ...]
    buffers: set[Buffer] = field(default_factory=set)
    # T.create_list_of_mbarrier's barriers: integer barrier ids index this buffer.
    mbarrier_list: Buffer | None = None


class Builder:
    """The state of one `T.prim_func` being built."""

    def __init__(self, name: str):
        self.name = name
        self.params: list[Buffer | Var] = []
        self.frames: list[Frame] = []
        self.names: dict[str, int] = {}
        self.kernels: list[KernelFrameInfo] = []
        # Buffers allocated inside a kernel -> that kernel (a use elsewhere is an error).
        self.owner: dict[Buffer, KernelFrameInfo] = {}
        self.last_if: Any = None  # (frame, IfThenElse index) for T.Else
        self.attrs: dict[str, Any] = {}  # T.func_attr

    @property
    def frame(self) -> Frame:
        return self.frames[-1]

    @property
    def kernel(self) -> KernelFrameInfo | None:
        for f in reversed(self.frames):
            if f.kernel is not None:
                return f.kernel
        return None

    def unique(self, base: str) -> str:
        n = self.names.get(base, 0)
        self.names[base] = n + 1
        return base if n == 0 else f"{base}_{n}"

    def push(self, frame: Frame) -> Frame:
        if frame.loc is None:
            frame.loc = user_location()
        self.frames.append(frame)
        return frame

    def pop(self, frame: Frame) -> None:
        if not self.frames or self.frames[-1] is not frame:
            raise BuildError("builder scopes closed out of order (a loop or `with` exited early?)")
        self.frames.pop()
        stmt = frame.finish(frame.body())
        if stmt is not None and self.frames:
            if stmt.span is None and frame.loc is not None:
                stmt = stmt.replace(span=frame.loc)
            self.frames[-1].emit(stmt)


_state = threading.local()


def builder_stack() -> list[Builder]:
    stack = getattr(_state, "stack", None)
    if stack is None:
        stack = _state.stack = []
    return stack


def current_builder(what: str) -> Builder:
    stack = builder_stack()
    if not stack:
        raise BuildError(f"{what} must be used inside `with T.prim_func(...)`")
    return stack[-1]


def check_buffer_use(buffer: Buffer, element_access: bool) -> None:
    """Reject a buffer used outside the kernel it lives in."""
    stack = builder_stack()
    if not stack:
        return
    b = stack[-1]
    kernel = b.kernel
    owner = b.owner.get(buffer)
    if owner is not None and owner is not kernel:
        where = "outside any kernel" if kernel is None else "in another kernel"
        raise BuildError(
            f"buffer `{buffer.name}` ({buffer.scope}) is used {where}; it belongs to the "
            f"`T.Kernel` that allocated it"
        )
    if element_access and kernel is None and b.frames:
        raise BuildError(
            f"buffer `{buffer.name}` is indexed outside a `T.Kernel`; element accesses run on the "
            f"GPU and must be inside `with T.Kernel(...)`"
        )


_ASSIGN = re.compile(r"^\s*([A-Za-z_]\w*)\s*(?::[^=]+)?=\s*(?:\w+\.)*\w+\(")


def infer_name(default: str) -> str:
    """The name the user assigns the result to (`A_s = T.alloc_shared(...)` gives "A_s")."""
    loc = user_location()
    if loc is not None:
        m = _ASSIGN.match(loc.line)
        if m:
            return m.group(1)
    return default
