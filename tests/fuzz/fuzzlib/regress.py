"""What a regression test asserts about one hand-reduced program: it builds, lowers for sm_80 and
sm_90a, its CUDA compiles with NVRTC, and (once `tsir.interpret` exists) the tile-level function
and every stage compute what the numpy reference says, with no detector firing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .harness import Config, Outcome, run_program
from .program import ParamSpec, Program

__all__ = ["FuncProgram", "check", "assert_ok"]


class FuncProgram(Program):
    """A program given as Python functions (a regression test's own code) instead of source."""

    def __init__(
        self,
        kernel: Callable[[], Any],
        reference: Callable[..., None],
        params: list[ParamSpec],
        tol: dict[str, tuple[float, float]] | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__("regression", seed, "", "", params, tol or {}, set())
        self._kernel, self._reference = kernel, reference

    def build(self) -> Any:
        return self._kernel()

    def expected(self, inputs: dict[str, Any]) -> dict[str, Any]:
        work = {k: (v.copy() if hasattr(v, "copy") else v) for k, v in inputs.items()}
        self._reference(**work)
        return {name: work[name] for name in self.outputs}


def check(
    kernel: Callable[[], Any],
    reference: Callable[..., None],
    params: list[ParamSpec],
    tol: dict[str, tuple[float, float]] | None = None,
    cfg: Config | None = None,
    seed: int = 0,
) -> Outcome:
    return run_program(FuncProgram(kernel, reference, params, tol, seed), cfg)


def assert_ok(out: Outcome) -> None:
    assert out.status == "ok", f"{out.status} at {out.stage} ({out.target}): {out.message}"
