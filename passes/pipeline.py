"""The default pipeline, and the one hook that runs between passes (verify, dumps, snapshots)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from tsir import knobs
from tsir.errors import TSIRError
from tsir.function import Module, PrimFunc
from tsir.target import Target
from tsir.verify import verify

from .infra import Decision, Pass, PassContext, get, user_errors

__all__ = ["default_pipeline", "run_pipeline", "Lowered", "lower", "print_report"]


def default_pipeline() -> list[Pass]:
    return [
        get("Verify"),
        # Pipelining works on tile ops: it stages the copies of T.Pipelined loops before layouts.
        get("InjectSoftwarePipeline"),
        # Fragments get register layouts and gemm operand tiles swizzles before anything lowers.
        get("LayoutInference"),
        # Tile ops and T.Parallel become per-thread loops; every later pass works on those.
        get("LowerTileOp"),
        # Copy-engine transfers leave kernel bodies for the host program before kernels are split out.
        get("LowerCPEngineIntrin"),
        # Guards before vectorization: it must see them to keep whole vectors in or out of bounds.
        get("LegalizeSafeMemoryAccess"),
        get("VectorizeLoop"),
        # Swizzles apply after vectorization, which reasons about contiguity on logical indices.
        get("LowerSharedLayout"),
        get("InjectAsyncCopy"),
        get("Simplify"),
        # A producer warpgroup for an mbarrier ring's copies, consumers for the rest.
        get("WarpSpecialize"),
        # wgmma fences, commits and waits, on the final statement order.
        get("InjectWgmmaSync"),
        # Barriers are planned on distinct shared buffers, before they are merged into one pool.
        get("ThreadSync"),
        # Ping-pong turns are checked against every other barrier, so they come after them.
        get("InjectPingPong"),
        get("PlanSharedMemory"),
        get("SplitHostDevice"),
    ]


@dataclass
class Lowered:
    """The IR after every pass (`stages`, in order) and the final module."""

    stages: list[tuple[str, Any]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    # Requests the passes could not honour (TSIR_EXPLAIN=1 prints them).
    report: list[Decision] = field(default_factory=list)

    @property
    def module(self) -> Module:
        return self.stages[-1][1]

    def __getitem__(self, name: str) -> Any:
        for n, ir in self.stages:
            if n == name:
                return ir
        raise KeyError(f"no stage {name!r}; stages: {', '.join(n for n, _ in self.stages)}")


def run_pipeline(func: PrimFunc, target: Any, passes: list[Pass] | None = None) -> Lowered:
    ctx = PassContext(target)
    out = Lowered([("input", func)])
    dump = knobs.dump_ir
    check = knobs.verify
    ir: Any = func
    for i, p in enumerate(passes if passes is not None else default_pipeline()):
        t0 = time.perf_counter()
        with user_errors(p.name, ir):
            ir = p(ir, ctx)
        out.seconds[p.name] = time.perf_counter() - t0
        out.stages.append((p.name, ir))
        if check and p.name != "Verify":
            verify(ir, pass_name=p.name)
        if dump:
            os.makedirs(dump, exist_ok=True)
            path = os.path.join(dump, f"{func.name}.{i:02d}.{p.name}.txt")
            with open(path, "w") as f:
                f.write(str(ir) + "\n")
    out.report = list(ctx.report)
    if knobs.explain:
        print_report(func.name, out.report)
    return out


def print_report(name: str, report: list[Decision]) -> None:
    """TSIR_EXPLAIN=1: each decision once, on stderr."""
    import sys

    for d in dict.fromkeys(str(d) for d in report):
        print(f"[tsir explain] {name}: {d}", file=sys.stderr)


def lower(func: PrimFunc, target: Any = None) -> Lowered:
    """Run the default pipeline; the result holds the IR after every pass. `target` as for
    `tsir.lower` (None: the `tsir.knobs.target` knob)."""
    if not isinstance(func, PrimFunc):
        raise TSIRError(
            f"tsir.lower expects a PrimFunc (f.func of a T.prim_func block), got {type(func).__name__}"
        )
    return run_pipeline(func, Target.parse(knobs.target if target is None else target))
