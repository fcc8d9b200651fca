"""The base of every IR node, and the field metadata that generic walkers read.

A node declares fields and nothing else (CONVENTIONS 5): structural equality, hashing, the visitor,
the mutator and the printer all walk `fields(node)`. Nodes hash by identity, so they are safe dict keys.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, TypeVar

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
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    def __str__(self) -> str:
        from .printer import print_node

        return print_node(self)

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self!s}>"


def node(cls: type[T]) -> type[T]:
    """Declare an IR node: a frozen, slotted dataclass with identity equality and hashing."""
    return dataclass(frozen=True, slots=True, eq=False, repr=False)(cls)


def binder(**kwargs: Any) -> Any:
    """A field that *defines* variables (a loop variable, a let variable): compared up to renaming."""
    return field(metadata={"binder": True}, **kwargs)


@dataclass(frozen=True, slots=True)
class FieldInfo:
    name: str
    binder: bool


_FIELD_CACHE: dict[type, tuple[FieldInfo, ...]] = {}


def span_field() -> Any:
    """The `span` field of statements: where in the user's source the statement was built.

    Not part of the node's spec: structural equality and hashing, the printer and the generic
    walkers ignore it (`node_fields` leaves it out); `replace` keeps it, so a pass that rewrites a
    statement with `.replace(...)` keeps its origin for error messages and TSIR_EXPLAIN reports."""
    return field(default=None, kw_only=True, metadata={"span": True})


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
