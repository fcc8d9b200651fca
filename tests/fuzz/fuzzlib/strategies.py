"""The program generator: one entry point over every family, driven by a seed or by hypothesis.

gen_program(RandomChooser(seed), seed)   # fast, for the CI budget and the 10,000-program run
programs()                               # a hypothesis strategy (shrinks a failure)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .choose import Chooser, DrawChooser, RandomChooser
from .fam_async import gen_async
from .fam_gemm import gen_gemm
from .fam_loop import gen_loop
from .fam_misuse import gen_misuse
from .fam_thread import gen_thread
from .fam_tile import gen_tile
from .program import Program

__all__ = [
    "FAMILIES",
    "gen_program",
    "program_for_seed",
    "programs",
    "recorded_program",
    "replayed_program",
]

FAMILIES: dict[str, tuple[Callable[[Chooser, int], Program], float]] = {
    "tile": (gen_tile, 4.0),
    "gemm": (gen_gemm, 3.0),
    "thread": (gen_thread, 2.5),
    "loop": (gen_loop, 2.0),
    "async": (gen_async, 2.0),
    "misuse": (gen_misuse, 0.25),
}


def gen_program(ch: Chooser, seed: int, families: tuple[str, ...] | None = None) -> Program:
    names = [(n, w) for n, (_, w) in FAMILIES.items() if families is None or n in families]
    family = ch.weighted(names, "family")
    return FAMILIES[family][0](ch, seed)


def program_for_seed(seed: int, families: tuple[str, ...] | None = None) -> Program:
    return gen_program(RandomChooser(seed), seed, families)


def recorded_program(
    seed: int, families: tuple[str, ...] | None = None
) -> tuple[Program, list[int]]:
    """The program of `seed` and the choices that made it (for `shrink.py`)."""
    ch = RandomChooser(seed)
    return gen_program(ch, seed, families), ch.record


def replayed_program(
    choices: list[int], seed: int, families: tuple[str, ...] | None = None
) -> Program:
    from .shrink import ReplayChooser

    return gen_program(ReplayChooser(choices), seed, families)


def programs(families: tuple[str, ...] | None = None) -> Any:
    """A hypothesis strategy of valid programs (each with its numpy reference and inputs)."""
    from hypothesis import strategies as st

    @st.composite
    def _programs(draw: Any) -> Program:
        seed = draw(st.integers(0, 2**16), label="data seed")
        return gen_program(DrawChooser(draw), seed, families)

    return _programs()
