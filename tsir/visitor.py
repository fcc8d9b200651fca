"""Generic walkers over node fields: a visitor, a mutator, and substitution built on them.

They read `node_fields`, so a new node type needs no walker code. Specialized passes subclass
`Mutator` and override `visit_<ClassName>` for the nodes they rewrite.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

from .node import Node, node_fields

__all__ = ["note_span", "Visitor", "Mutator", "substitute", "walk", "post_order_nodes", "collect"]


def note_span(exc: BaseException, n: object) -> None:
    """Remember on `exc` the innermost statement with a user line that was being walked when it
    rose (`exc.tsir_span`): the pipeline reports errors raised without a location there."""
    if getattr(exc, "tsir_span", None) is None:
        span = getattr(n, "span", None)
        if span is not None:
            try:
                exc.tsir_span = span  # pyright: ignore[reportAttributeAccessIssue]  # any exception object
            except AttributeError:  # an exception type with __slots__: no location then
                pass


N = TypeVar("N", bound=Node)


class Visitor:
    """Visits every node reachable through fields, pre-order. Override `visit_<Class>`; call
    `self.generic_visit(n)` to continue into children."""

    def __init__(self) -> None:
        self._dispatch: dict[type, Callable[[Any], Any]] = {}

    def visit(self, n: Any) -> None:
        if isinstance(n, Node):
            fn = self._dispatch.get(type(n))
            if fn is None:
                fn = self._dispatch[type(n)] = self._lookup(type(n))
            try:
                fn(n)
            except Exception as exc:
                note_span(exc, n)
                raise
        elif isinstance(n, tuple):
            for x in n:
                self.visit(x)

    def _lookup(self, cls: type) -> Callable[[Any], Any]:
        for c in cls.__mro__:
            fn = getattr(self, f"visit_{c.__name__}", None)
            if fn is not None:
                return fn
        return self.generic_visit

    def generic_visit(self, n: Node) -> None:
        for f in node_fields(n):
            v = getattr(n, f.name)
            if isinstance(v, (Node, tuple)):
                self.visit(v)


class Mutator:
    """Rebuilds a tree bottom-up; returns the same object when nothing below changed.

    Override `visit_<Class>(n)`; `self.generic_visit(n)` mutates the fields of `n`.
    """

    def __init__(self) -> None:
        self._dispatch: dict[type, Callable[[Any], Any]] = {}

    def visit(self, n: Any) -> Any:
        if isinstance(n, Node):
            fn = self._dispatch.get(type(n))
            if fn is None:
                fn = self._dispatch[type(n)] = self._lookup(type(n))
            try:
                return fn(n)
            except Exception as exc:
                note_span(exc, n)
                raise
        if isinstance(n, tuple):
            out = tuple(self.visit(x) for x in n)
            return n if all(a is b for a, b in zip(out, n)) else out
        return n

    def _lookup(self, cls: type) -> Callable[[Any], Any]:
        for c in cls.__mro__:
            fn = getattr(self, f"visit_{c.__name__}", None)
            if fn is not None:
                return fn
        return self.generic_visit

    def generic_visit(self, n: N) -> N:
        """`n` with its fields mutated: the same class (`replace`), so the same static type."""
        changes: dict[str, Any] = {}
        for f in node_fields(n):
            v = getattr(n, f.name)
            if isinstance(v, (Node, tuple)):
                nv = self.visit(v)
                if nv is not v:
                    changes[f.name] = nv
        return n.replace(**changes) if changes else n


class _Substitute(Mutator):
    def __init__(self, mapping: Mapping[Any, Any]):
        super().__init__()
        self.mapping = mapping

    def visit_Var(self, n: Node) -> Any:
        return self.mapping.get(n, n)

    def visit_Buffer(self, n: Node) -> Any:
        if n in self.mapping:
            return self.mapping[n]
        return self.generic_visit(n)


def substitute(n: Any, mapping: Mapping[Any, Any]) -> Any:
    """Replace Vars (and Buffers) by the mapped values everywhere in `n`."""
    if not mapping:
        return n
    return _Substitute(mapping).visit(n)


# Per node class, its field names last to first: `walk` pushes a node's children in this order so
# that the first field is popped (visited) first.
_REVERSED_FIELDS: dict[type, tuple[str, ...]] = {}


def _reversed_fields(cls: type) -> tuple[str, ...]:
    names = tuple(f.name for f in reversed(node_fields(cls)))
    _REVERSED_FIELDS[cls] = names
    return names


def walk(n: Any) -> Iterator[Node]:
    """Every node reachable from n, pre-order (shared subtrees are visited each time)."""
    stack = [n]
    pop, push = stack.pop, stack.append
    fields = _REVERSED_FIELDS
    while stack:
        x = pop()
        if isinstance(x, Node):
            yield x
            cls = type(x)
            names = fields.get(cls)
            for name in _reversed_fields(cls) if names is None else names:
                v = getattr(x, name)
                if isinstance(v, (Node, tuple)):
                    push(v)
        elif isinstance(x, tuple):
            stack.extend(reversed(x))


def post_order_nodes(n: Any) -> list[Node]:
    out = list(walk(n))
    out.reverse()
    return out


def collect(n: Any, cls: type | tuple[type, ...]) -> list[Any]:
    """All nodes of the given class(es) reachable from n, pre-order."""
    return [x for x in walk(n) if isinstance(x, cls)]
