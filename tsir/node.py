"""The base of every IR node, and the field metadata that generic walkers read.

A node declares fields and nothing else (CONVENTIONS 5): structural equality, hashing, the visitor,
the mutator and the printer all walk `fields(node)`. Nodes hash by identity, so they are safe dict keys.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar

if TYPE_CHECKING:
    # typing_extensions' stub ships with every type checker; at run time it is not a dependency
    from typing_extensions import dataclass_transform
elif sys.version_info >= (3, 11):
    from typing import dataclass_transform
else:  # pragma: no cover - Python 3.10 has no typing.dataclass_transform; only checkers need it

    def dataclass_transform(**_: Any) -> Callable[[T], T]:
        return lambda f: f


__all__ = ["Node", "node", "binder", "node_fields", "FieldInfo", "span_field"]

T = TypeVar("T")


class Node:
    """Base class of IR nodes (expressions, statements, buffers, functions, tile operators)."""

    __slots__ = ()

    def __hash__(self) -> int:  # identity: nodes are dict keys
        return object.__hash__(self)

    def __copy__(self) -> Node:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Node:
        return self

    def replace(self: T, **changes: Any) -> T:
        """A copy of this node with some fields changed (nodes are immutable)."""
        return dataclasses.replace(self, **changes)  # pyright: ignore[reportArgumentType]  # narrowed by a check above that the checker cannot follow

    def __str__(self) -> str:
        # Deliberately lazy: the printer sits above every node class it prints (the IR core
        # imports nothing above it); `str(node)` loads it on first use, once.
        from .printer import print_node

        return print_node(self)

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self!s}>"


def binder(**kwargs: Any) -> Any:
    """A field that *defines* variables (a loop variable, a let variable): compared up to renaming."""
    return field(metadata={"binder": True}, **kwargs)


@dataclass(frozen=True, slots=True)
class FieldInfo:
    name: str
    binder: bool


_FIELD_CACHE: dict[type, tuple[FieldInfo, ...]] = {}


def span_field(*, default: None = None, kw_only: Literal[True] = True) -> Any:
    """The `span` field of statements: where in the user's source the statement was built.

    Not part of the node's spec: structural equality and hashing, the printer and the generic
    walkers ignore it (`node_fields` leaves it out); `replace` keeps it, so a pass that rewrites a
    statement with `.replace(...)` keeps its origin for error messages and TSIR_EXPLAIN reports.

    The parameters only tell type checkers (PEP 681 field specifiers read them) that the field is
    keyword-only; write `span_field(default=None)` so that they also see its default."""
    return field(default=default, kw_only=kw_only, metadata={"span": True})


@dataclass_transform(
    eq_default=False, frozen_default=True, field_specifiers=(field, binder, span_field)
)
def node(cls: type[T]) -> type[T]:
    """Declare an IR node: a frozen, slotted dataclass with identity equality and hashing."""
    return dataclass(frozen=True, slots=True, eq=False, repr=False)(cls)


def node_fields(obj_or_cls: Any) -> tuple[FieldInfo, ...]:
    """The declared fields of a node class, in order, cached (spans excluded)."""
    cls = obj_or_cls if isinstance(obj_or_cls, type) else type(obj_or_cls)
    info = _FIELD_CACHE.get(cls)
    if info is None:
        info = tuple(
            FieldInfo(f.name, bool(f.metadata.get("binder", False)))
            for f in dataclasses.fields(cls)
            if not f.metadata.get("span", False)
        )
        _FIELD_CACHE[cls] = info
    return info


def iter_children(n: Node) -> Iterator[Any]:
    """Field values of a node, tuples flattened one level (the shape walkers rely on)."""
    for f in node_fields(n):
        value = getattr(n, f.name)
        if isinstance(value, tuple):
            yield from value
        else:
            yield value


Visit = Callable[[Any], Any]
