"""How hazards name things: statements (printed IR, the pass that produced them) and threads."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..node import Node
from ..visitor import walk

__all__ = ["describe_stmt", "describe_threads", "OriginIndex", "fmt_idx"]

_MAX_LINE = 240


def fmt_idx(t: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(x) for x in t) + ("," if len(t) == 1 else "") + ")"


def describe_stmt(stmt: Any) -> str:
    """The first line of the statement's printed IR (loops and ifs print their header only)."""
    if stmt is None:
        return "<unknown statement>"
    try:
        text = str(stmt)
    except Exception:  # noqa: BLE001
        text = f"<{type(stmt).__name__}>"
    lines = [ln for ln in text.splitlines() if ln.strip()]
    first = lines[0].strip() if lines else text.strip()
    if len(first) > _MAX_LINE:
        first = first[: _MAX_LINE - 3] + "..."
    return first


def describe_threads(
    threads: Iterable[tuple[tuple[int, ...], tuple[int, ...]]], limit: int = 4
) -> str:
    items = list(threads)
    if not items:
        return "no thread"
    shown = ", ".join(f"thread {fmt_idx(t)} of block {fmt_idx(b)}" for b, t in items[:limit])
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return shown + more


class OriginIndex:
    """Which pass produced a statement: the first stage of a lowering whose IR holds that very node.

    Passes rebuild only what they change (nodes are immutable and shared), so a statement object
    first appears in the stage of the pass that created it.
    """

    def __init__(self, stages: Iterable[tuple[str, Any]]):
        self.stages = list(stages)
        self._sets: list[set[int] | None] = [None] * len(self.stages)

    def _ids(self, k: int) -> set[int]:
        s = self._sets[k]
        if s is None:
            s = {id(n) for n in walk(self.stages[k][1]) if isinstance(n, Node)}
            self._sets[k] = s
        return s

    def origin(self, stmt: Any) -> str | None:
        if stmt is None:
            return None
        for k, (name, _) in enumerate(self.stages):
            if id(stmt) in self._ids(k):
                return name
        return None
