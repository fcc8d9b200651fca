"""Where the generator's choices come from: hypothesis (shrinkable) or a seeded `random.Random`.

The generator only calls these four methods, so one program family works for the CI budget and
the 10,000-program run (seeded, fast, never stops at the first failure) and for shrinking a
failure (hypothesis draws, so a failing program shrinks to a small one).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, TypeVar

E = TypeVar("E")

__all__ = ["Chooser", "RandomChooser", "DrawChooser"]


class Chooser:
    def choice(self, options: Sequence[E], label: str = "") -> E:
        raise NotImplementedError

    def integer(self, lo: int, hi: int, label: str = "") -> int:
        raise NotImplementedError

    def boolean(self, p: float = 0.5, label: str = "") -> bool:
        raise NotImplementedError

    def weighted(self, options: Sequence[tuple[E, float]], label: str = "") -> E:
        raise NotImplementedError


class RandomChooser(Chooser):
    """Seeded choices; `record` keeps them as small integers for `shrink.ReplayChooser`."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.record: list[int] = []

    def _pick(self, n: int) -> int:
        v = self.rng.randrange(n)
        self.record.append(v)
        return v

    def choice(self, options: Sequence[E], label: str = "") -> E:
        return options[self._pick(len(options))]

    def integer(self, lo: int, hi: int, label: str = "") -> int:
        return lo + self._pick(hi - lo + 1)

    def boolean(self, p: float = 0.5, label: str = "") -> bool:
        v = int(self.rng.random() < p)
        self.record.append(v)
        return bool(v)

    def weighted(self, options: Sequence[tuple[E, float]], label: str = "") -> E:
        total = sum(w for _, w in options)
        x = self.rng.random() * total
        pick = max(k for k, (_, w) in enumerate(options) if w > 0)
        for k, (_, w) in enumerate(options):
            x -= w
            if x < 0 and w > 0:
                pick = k
                break
        self.record.append(pick)
        return options[pick][0]


class DrawChooser(Chooser):
    """Choices drawn from hypothesis: shrinking moves each choice toward its first option."""

    def __init__(self, draw: Any) -> None:
        from hypothesis import strategies as st

        self.draw = draw
        self.st = st

    def choice(self, options: Sequence[E], label: str = "") -> E:
        return self.draw(self.st.sampled_from(list(options)), label=label or None)

    def integer(self, lo: int, hi: int, label: str = "") -> int:
        return self.draw(self.st.integers(lo, hi), label=label or None)

    def boolean(self, p: float = 0.5, label: str = "") -> bool:
        # A biased coin that shrinks to False: draw an int and compare.
        return self.draw(self.st.integers(0, 999), label=label or None) >= int(1000 * (1 - p))

    def weighted(self, options: Sequence[tuple[E, float]], label: str = "") -> E:
        total = sum(w for _, w in options)
        x = self.draw(self.st.integers(0, 9999), label=label or None) / 10000 * total
        for value, w in options:
            x -= w
            if x < 0:
                return value
        return options[-1][0]
