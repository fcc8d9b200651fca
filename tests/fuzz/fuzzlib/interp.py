"""The interpreter oracles (issue 9, deliverable 3):

1. the tile-level function, run by `tsir.interpret`, must compute what the program's numpy
   reference says (a third oracle: a disagreement is a bug in the interpreter, the model, or the
   builder's IR, and is reported as `tile-mismatch`);
2. every stage of each target's lowering must leave the arguments equal to the tile-level run
   (`tsir.interpret.check_stages`: exact for integers, its TOLERANCE for floats) with no detector
   firing; the first failing stage is reported.
"""

from __future__ import annotations

import time
import traceback
import warnings
from typing import Any

import numpy as np

from .numerics import np_dtype

__all__ = ["check_with_interpreter", "compare_to_model"]


def compare_to_model(prog: Any, args: list[Any], expected: dict[str, np.ndarray]) -> str:
    """'' when the outputs in `args` (parameter order) match the reference, else the first
    difference."""
    for p, got in zip(prog.params, args):
        if not p.output:
            continue
        want = expected[p.name]
        g = np.asarray(got).astype(np_dtype(p.dtype))
        rtol, atol = prog.tol.get(p.name, (0.0, 0.0))
        if p.dtype == "int32":
            bad = g != want
        else:
            scale = max(1.0, float(np.nanmax(np.abs(want)))) if want.size else 1.0
            with np.errstate(invalid="ignore"):
                bad = ~((g == want) | (np.abs(g - want) <= rtol * np.abs(want) + atol * scale))
        if bad.any():
            k = tuple(int(x) for x in np.argwhere(bad)[0])
            return (
                f"{p.name}: {int(bad.sum())} of {bad.size} elements differ from the numpy "
                "reference; "
                f"first at {k}: expected {want[k]!r}, got {g[k]!r}"
            )
    return ""


def check_with_interpreter(
    prog: Any,
    func: Any,
    inputs: dict[str, Any],
    expected: dict[str, np.ndarray],
    lowered: dict[str, Any],
    cfg: Any,
    times: dict[str, float],
) -> Any:
    """None when every oracle agrees, else the Outcome of the first disagreement.

    The tile-level run is check_stages' own first run (the input stage, with the tile-level
    contract: each statement completes in every thread before the next starts)."""
    from tsir.interpret import check_stages

    from .harness import Outcome

    base = prog.device_args(inputs)
    compared = 0
    first = True
    for target, low in lowered.items():
        if target.startswith("_"):
            continue
        if not first and cfg.stages == "changed" and _same_cuda(lowered, target):
            continue
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN outputs in a mismatch message
            report = check_stages(
                low,
                base,
                target=target,
                check=cfg.check,
                rtol=_stage_rtol(prog),
                atol=_stage_atol(prog),
            )
        times[f"interp-stages-{target}"] = time.perf_counter() - t
        results = report.results
        if first:
            if not results or results[0].failed:
                r = results[0] if results else None
                status = (
                    {"hazard": "detector"}.get(r.status, "interp-error") if r else "interp-error"
                )
                msg = "no result" if r is None else _msg(r)
                if status == "interp-error":
                    # No tile-level reference: the final stage can still be held to the numpy model.
                    final = _final_against_model(prog, low, base, expected, cfg)
                    if final is not None:
                        final.message += (
                            f"\n(the tile level could not run: {msg.split(chr(10))[0]})"
                        )
                        return final
                return Outcome(
                    status,
                    msg,
                    stage="input",
                    error_type=type(r.error).__name__ if r and r.error else "",
                )
            diff = compare_to_model(prog, report.reference, expected)
            if diff:
                return Outcome("tile-mismatch", diff, stage="input")
            first = False
        compared += sum(1 for r in results[1:] if r.status == "ok")
        bad = report.first_failure
        if bad is not None:
            status = {"mismatch": "mismatch", "hazard": "detector"}.get(bad.status, "interp-error")
            return Outcome(
                status,
                _msg(bad),
                target=target,
                stage=bad.stage,
                error_type=type(bad.error).__name__ if bad.error else "",
                stages_compared=compared,
            )
    times["stages_compared"] = compared
    return None


def _final_against_model(
    prog: Any, low: Any, base: list[Any], expected: dict[str, np.ndarray], cfg: Any
) -> Any:
    """The last stage run against the numpy reference: an Outcome when they disagree or a
    detector fires, else None."""
    from tsir.interpret import HazardError, interpret

    from .harness import Outcome

    name, ir = list(low.stages)[-1]
    args = [a.copy() if isinstance(a, np.ndarray) else a for a in base]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            interpret(ir, *args, check=cfg.check)
    except HazardError as exc:
        return Outcome("detector", str(exc).strip(), stage=name, error_type=type(exc).__name__)
    except Exception:  # noqa: BLE001 - the tile level's own failure is what gets reported
        return None
    diff = compare_to_model(prog, args, expected)
    return Outcome("mismatch", diff, stage=name) if diff else None


def _stage_rtol(prog: Any) -> float | None:
    """The stages may round differently (a float16 reduction summed in another order) wherever the
    reference itself needs a tolerance: use the program's loosest one; None keeps check_stages'
    per-dtype TOLERANCE (exact programs)."""
    worst = max((rtol for rtol, _ in prog.tol.values()), default=0.0)
    return worst if worst > 0 else None


def _stage_atol(prog: Any) -> float:
    """The stages' absolute floor: the program's loosest one, as the numpy model applies it (an
    output that cancels to near zero differs by rounding far beyond its own magnitude)."""
    return max((atol for _, atol in prog.tol.values()), default=0.0)


def _same_cuda(lowered: dict[str, Any], target: str) -> bool:
    """Does `target` print the same CUDA as the first target (so its stages add nothing)?"""
    sources = lowered.get("_cuda", {})
    first = next(iter(sources), None)
    return first is not None and target in sources and sources[target] == sources[first]


def _msg(r: Any) -> str:
    if r.status == "internal":
        return r.message.split("\n")[0] + f" [{_where(r.error)}]"
    return r.message.strip()


def _where(exc: BaseException | None) -> str:
    if exc is None:
        return ""
    tb = traceback.extract_tb(exc.__traceback__)
    return f"{tb[-1].filename.split('/')[-1]}:{tb[-1].lineno}" if tb else ""
