"""Structural equality and hashing, generic over node fields (CONVENTIONS 5, 6, 7, 17).

The rules, the same for every node type (no node has code here):

- Two nodes are equal when they have the same type and equal fields, in declaration order.
- A field flagged `binder` *defines* what it holds: a Var there is mapped one-to-one to the Var in
  the same place on the other side (so tests may name variables freely), and so is a Buffer (a
  parameter, an Allocate/DeclBuffer buffer), together with the Vars of its shape and strides that
  are not mapped yet (the dynamic dimensions of parameters).
- A Var or Buffer anywhere else is a use: it must be the counterpart it was mapped to. One that was
  never defined (free) compares by identity, unless `map_free_vars=True`, which maps it on first
  use.
- Names are not compared: `Var.name` and `Buffer.name` are for printing only, as in TVM. (A free
  Var or Buffer compared by identity is the same object, so its name is trivially equal.) Every
  other field is compared, including names of functions and kernels, which are symbols.
- Other field values compare by type and value: strings, ints, bools, enums, DataTypes, tuples and
  dicts of those. Floats compare exactly: `-0.0` differs from `0.0`, and NaN equals NaN.

The mapping is one global map per comparison, not scoped: a variable bound twice must be mapped to
the same counterpart both times. Checking scopes is `tsir.verify`'s job.

`structural_hash` walks the same way, numbering definitions in order, so structurally equal nodes
hash equal. Without free variables it is stable across processes (blake2b of a token stream).
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .buffer import Buffer
from .expr import PrimExpr, Var
from .function import DeviceKernel, Module, PrimFunc
from .node import Node, node_fields
from .stmt import Stmt

__all__ = ["structural_equal", "structural_hash", "assert_structural_equal"]

# Fields never compared or hashed: names of variables and buffers.
IGNORED_FIELDS: dict[type, frozenset[str]] = {Var: frozenset({"name"}), Buffer: frozenset({"name"})}

_FIELDS: dict[type, tuple[tuple[str, bool], ...]] = {}

# The generic walks recurse once per level of the tree; expressions nest as deep as Python lets
# them be built (`BinaryOp.dtype` recurses too), so the walks get headroom beyond the default 1000.
_DEEP_RECURSION = 20_000


@contextmanager
def deep_recursion() -> Iterator[None]:
    """Raise the interpreter's recursion limit while a generic walk runs (restored after)."""
    old = sys.getrecursionlimit()
    if old < _DEEP_RECURSION:
        sys.setrecursionlimit(_DEEP_RECURSION)
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


def _fields(cls: type) -> tuple[tuple[str, bool], ...]:
    out = _FIELDS.get(cls)
    if out is None:
        ignored = IGNORED_FIELDS.get(cls, frozenset())
        out = _FIELDS[cls] = tuple(
            (f.name, f.binder) for f in node_fields(cls) if f.name not in ignored
        )
    return out


def _same_value(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return repr(a) == repr(b)  # exact: tells -0.0 from 0.0, and NaN equals NaN
    return bool(a == b)


# -- equality -------------------------------------------------------------------------------------


class _Mismatch(Exception):
    def __init__(self, reason: str, lhs: Any, rhs: Any, path: str, stack: list[tuple[Any, Any]]):
        super().__init__(reason)
        self.reason, self.lhs, self.rhs, self.path, self.stack = reason, lhs, rhs, path, stack


class _Equal:
    def __init__(self, map_free_vars: bool):
        self.map_free_vars = map_free_vars
        self.lmap: dict[Node, Node] = {}
        self.rmap: dict[Node, Node] = {}
        self.path: list[str] = []
        self.stack: list[tuple[Any, Any]] = []  # the nodes being compared, outermost first
        self.defining = 0  # > 0 while comparing the fields of a Buffer being defined

    def fail(self, reason: str, a: Any, b: Any) -> None:
        raise _Mismatch(reason, a, b, "".join(self.path), list(self.stack))

    def eq(self, a: Any, b: Any, binder: bool = False) -> None:
        if isinstance(a, Node) or isinstance(b, Node):
            if type(a) is not type(b):
                self.fail(f"node types differ: {type(a).__name__} vs {type(b).__name__}", a, b)
            if isinstance(a, (Var, Buffer)):
                self.leaf(a, b, binder)  # pyright: ignore[reportArgumentType]  # type(a) is type(b) was checked above
            else:
                self.fields(a, b)
        elif isinstance(a, (tuple, list)):
            if type(a) is not type(b):
                self.fail(f"types differ: {type(a).__name__} vs {type(b).__name__}", a, b)
            if len(a) != len(b):
                self.fail(f"lengths differ: {len(a)} vs {len(b)}", a, b)
            for k, (x, y) in enumerate(zip(a, b, strict=True)):
                self.path.append(f"[{k}]")
                self.eq(x, y, binder)
                self.path.pop()
        elif isinstance(a, dict):
            if not isinstance(b, dict) or list(a) != list(b):
                self.fail("dict keys differ", a, b)
            for k in a:
                self.path.append(f"[{k!r}]")
                self.eq(a[k], b[k], binder)
                self.path.pop()
        elif not _same_value(a, b):
            self.fail(f"values differ: {a!r} vs {b!r}", a, b)

    def fields(self, a: Node, b: Node) -> None:
        self.stack.append((a, b))
        for name, binder in _fields(type(a)):
            self.path.append("." + name)
            self.eq(getattr(a, name), getattr(b, name), binder)
            self.path.pop()
        self.stack.pop()

    def leaf(self, a: Var | Buffer, b: Var | Buffer, binder: bool) -> None:
        la, rb = self.lmap.get(a), self.rmap.get(b)
        what = "variable" if isinstance(a, Var) else "buffer"
        if la is not None or rb is not None:
            if la is b:
                return
            if la is not None:
                self.fail(
                    f"{what} `{a.name}` is mapped to `{la.name}` on the right, found `{b.name}`",  # pyright: ignore[reportAttributeAccessIssue]  # mapped binders are Vars or Buffers, both named
                    a,
                    b,
                )
            self.fail(
                f"right {what} `{b.name}` is already mapped to left `{rb.name}`, found `{a.name}`",  # pyright: ignore[reportAttributeAccessIssue, reportOptionalMemberAccess]  # mapped binders are Vars or Buffers, both named
                a,
                b,
            )
        if not (binder or self.defining or self.map_free_vars):
            if a is not b:
                self.fail(
                    f"free {what}s `{a.name}` and `{b.name}` are different objects (free variables "
                    f"compare by identity; pass map_free_vars=True to map them)",
                    a,
                    b,
                )
            return
        self.lmap[a] = b
        self.rmap[b] = a
        defines = isinstance(a, Buffer)
        self.defining += defines
        self.fields(a, b)
        self.defining -= defines


def structural_equal(a: Any, b: Any, map_free_vars: bool = False) -> bool:
    """Whether `a` and `b` are the same IR up to the renaming of the variables they define."""
    try:
        with deep_recursion():
            _Equal(map_free_vars).eq(a, b)
    except _Mismatch:
        return False
    return True


# -- hashing --------------------------------------------------------------------------------------


class _Hasher:
    def __init__(self, map_free_vars: bool):
        self.map_free_vars = map_free_vars
        self.ids: dict[Node, int] = {}
        self.tokens: list[str] = []
        self.defining = 0

    def visit(self, x: Any, binder: bool = False) -> None:
        tokens = self.tokens
        if isinstance(x, Node):
            if isinstance(x, (Var, Buffer)):
                self.leaf(x, binder)
                return
            tokens.append(type(x).__qualname__)
            for name, b in _fields(type(x)):
                self.visit(getattr(x, name), b)
        elif isinstance(x, (tuple, list)):
            tokens.append(f"{type(x).__name__}{len(x)}")
            for y in x:
                self.visit(y, binder)
        elif isinstance(x, dict):
            tokens.append(f"dict{len(x)}")
            for k, v in x.items():
                tokens.append(repr(k))
                self.visit(v, binder)
        else:
            tokens.append(f"{type(x).__qualname__}:{x!r}")

    def leaf(self, x: Var | Buffer, binder: bool) -> None:
        k = self.ids.get(x)
        if k is not None:
            self.tokens.append(f"#{k}")
        elif binder or self.defining or self.map_free_vars:
            self.ids[x] = len(self.ids)
            self.tokens.append(f"def {type(x).__name__}")
            defines = isinstance(x, Buffer)
            self.defining += defines
            for name, b in _fields(type(x)):
                self.visit(getattr(x, name), b)
            self.defining -= defines
        else:
            self.tokens.append(f"free {type(x).__name__} {id(x)}")


def structural_hash(n: Any, map_free_vars: bool = False) -> int:
    """A 64-bit hash with `structural_equal(a, b) => structural_hash(a) == structural_hash(b)`."""
    h = _Hasher(map_free_vars)
    with deep_recursion():
        h.visit(n)
    digest = hashlib.blake2b("\x1f".join(h.tokens).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


# -- the assertion --------------------------------------------------------------------------------


def assert_structural_equal(lhs: Any, rhs: Any, map_free_vars: bool = False) -> None:
    """Raise AssertionError naming the first mismatching field path, with both IRs printed and the
    mismatching node marked (`^^^`) in each."""
    try:
        with deep_recursion():
            _Equal(map_free_vars).eq(lhs, rhs)
    except _Mismatch as m:
        raise AssertionError(_report(lhs, rhs, m)) from None


def _root_label(n: Any) -> str:
    if isinstance(n, (PrimFunc, DeviceKernel)):
        return "func"
    if isinstance(n, Module):
        return "module"
    if isinstance(n, PrimExpr):
        return "expr"
    if isinstance(n, Stmt):
        return "stmt"
    return type(n).__name__.lower() if isinstance(n, Node) else "value"


def _short(v: Any) -> str:
    # Deliberately lazy (here and in _marked): a mismatch report prints both IRs, and the printer
    # sits above this module (it compares with structural_equal itself).
    from .printer import print_node

    if isinstance(v, Node):
        lines = print_node(v).splitlines() or [""]
        text = lines[0] + (" ..." if len(lines) > 1 else "")
        text = text if len(text) <= 100 else text[:97] + "..."
        return f"{type(v).__name__} `{text}`"
    text = repr(v)
    return text if len(text) <= 100 else text[:97] + "..."


def _marked(root: Any, candidates: list[Any]) -> str:
    """`root` printed with the first candidate that shows up in the text marked."""
    from .printer import _render  # deliberately lazy: see _short

    for c in candidates:
        text, marked = _render(root, c)
        if marked:
            return text
    return _render(root, None)[0]


def _report(lhs: Any, rhs: Any, m: _Mismatch) -> str:
    path = _root_label(lhs) + m.path

    def candidates(side: int, leaf: Any) -> list[Any]:
        # Vars are marked through their parent: the var itself prints at every use.
        out = [leaf] if isinstance(leaf, Node) and not isinstance(leaf, (Var, Buffer)) else []
        out += [pair[side] for pair in reversed(m.stack) if not isinstance(pair[side], Var)]
        return out

    return "\n".join(
        [
            f"structural mismatch at {path}: {m.reason}",
            f"  lhs {path} = {_short(m.lhs)}",
            f"  rhs {path} = {_short(m.rhs)}",
            "--- lhs ---",
            _marked(lhs, candidates(0, m.lhs)),
            "--- rhs ---",
            _marked(rhs, candidates(1, m.rhs)),
        ]
    )
