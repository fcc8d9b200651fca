"""Shrink a failing program to a small one that fails the same way.

The generator's choices are recorded as a list of small integers (an option's index, an
integer's offset from its lower bound, 0/1 for a coin); replaying a modified list gives another
valid program (a list that runs out continues with zeros: first options, lower bounds, False).
The shrinker tries, greedily, deleting runs of choices and lowering single choices, and keeps
every change after which the program still fails with the same signature. This is how hypothesis
shrinks (on its choice sequence), done here on the fuzzer's own seeds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from .choose import Chooser

E = TypeVar("E")

__all__ = ["ReplayChooser", "shrink_choices"]


class ReplayChooser(Chooser):
    def __init__(self, values: Sequence[int]) -> None:
        self.values = list(values)
        self.pos = 0
        self.record: list[int] = []

    def _next(self, n: int) -> int:
        v = self.values[self.pos] if self.pos < len(self.values) else 0
        self.pos += 1
        v = min(max(v, 0), n - 1)
        self.record.append(v)
        return v

    def choice(self, options: Sequence[E], label: str = "") -> E:
        return options[self._next(len(options))]

    def integer(self, lo: int, hi: int, label: str = "") -> int:
        return lo + self._next(hi - lo + 1)

    def boolean(self, p: float = 0.5, label: str = "") -> bool:
        return bool(self._next(2))

    def weighted(self, options: Sequence[tuple[E, float]], label: str = "") -> E:
        k = self._next(len(options))
        while options[k][1] <= 0 and k > 0:
            k -= 1
        if options[k][1] <= 0:
            k = next(i for i, (_, w) in enumerate(options) if w > 0)
        return options[k][0]


def shrink_choices(
    values: list[int],
    fails: Callable[[list[int]], bool],
    budget: int = 300,
    log: Callable[[str], Any] | None = None,
) -> list[int]:
    """A shorter / smaller choice list for which `fails` still holds."""
    best = list(values)
    tries = 0

    def attempt(cand: list[int]) -> bool:
        nonlocal best, tries
        if tries >= budget or cand == best:
            return False
        tries += 1
        if fails(cand):
            best = cand
            if log:
                log(f"  shrink: {len(best)} choices, sum {sum(best)} (try {tries})")
            return True
        return False

    changed = True
    while changed and tries < budget:
        changed = False
        for size in (8, 4, 2, 1):
            k = 0
            while k < len(best) and tries < budget:
                if attempt(best[:k] + best[k + size :]):
                    changed = True
                else:
                    k += 1
        for k in range(len(best)):
            if tries >= budget:
                break
            for v in sorted({0, best[k] // 2, best[k] - 1}):
                if 0 <= v < best[k] and attempt(best[:k] + [v] + best[k + 1 :]):
                    changed = True
                    break
    return best
