"""`check_stages`: run the input and every stage of a lowering on the same inputs and compare.

The input (tile-level) run is the reference. Each later stage must leave every buffer argument
equal to it (exactly for integers and bools, within a tolerance for floats, see `TOLERANCE`) and
must not fire a detector. The report names the first stage that fails; a hazard's message also
names the pass that produced each statement involved.

Two contracts of the IR are implicit in the early stages and made explicit by a pass; before that
pass the interpreter supplies them instead of reporting their absence:
- until `LegalizeSafeMemoryAccess`, out-of-bounds global loads read zero and stores are skipped;
- until `ThreadSync`, every statement completes in all threads before the next starts (no race
  detection: the barriers are not there yet).
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..dtype import dtype as as_dtype
from ..errors import TSIRError
from .entry import interpret
from .errors import HazardError, StageMismatchError
from .report import OriginIndex

__all__ = ["check_stages", "StageReport", "StageResult", "TOLERANCE", "compare_outputs"]

GUARDS_EXPLICIT_FROM = "LegalizeSafeMemoryAccess"
BARRIERS_EXPLICIT_FROM = "ThreadSync"

# Relative tolerance per float dtype: |x - ref| <= rtol * (|ref| + 0.1 * max|ref|). The stages
# legitimately differ in rounding (a tile-level gemm sums in float64, mma.sync in float32 per k16
# step; reductions combine in another order), by a few units in the last place of the output type.
TOLERANCE = {
    "float64": 1e-9,
    "float32": 1e-4,
    "float16": 1e-2,
    "bfloat16": 3e-2,
    "float8_e4m3": 0.25,
    "float8_e5m2": 0.5,
}


@dataclass
class StageResult:
    """One stage's run. `status`: "ok", "same" (the pass returned its input, not rerun),
    "mismatch", "hazard" (a detector fired), "error" (another TSIRError) or "internal" (an
    exception that is not a TSIRError: a bug in tsir or in the interpreter)."""

    stage: str
    status: str
    message: str = ""
    error: BaseException | None = None
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return self.status not in ("ok", "same")


@dataclass
class StageReport:
    results: list[StageResult] = field(default_factory=list)
    reference: list[Any] = field(default_factory=list)  # the input stage's outputs (args, after)

    @property
    def ok(self) -> bool:
        return all(not r.failed for r in self.results)

    @property
    def first_failure(self) -> StageResult | None:
        return next((r for r in self.results if r.failed), None)

    @property
    def seconds(self) -> float:
        return sum(r.seconds for r in self.results)

    def raise_for_failure(self) -> None:
        f = self.first_failure
        if f is not None:
            raise StageMismatchError(f"stage {f.stage}: {f.status}: {f.message}")

    def __str__(self) -> str:
        lines = [f"{r.stage:<24} {r.status:<9} {r.seconds * 1e3:7.1f} ms" for r in self.results]
        f = self.first_failure
        if f is not None:
            lines.append(f"first failure: {f.stage} ({f.status})\n{f.message}")
        return "\n".join(lines)


def check_stages(
    func: Any,
    args: Sequence[Any],
    *,
    target: Any = "sm_80",
    grid: Any = None,
    check: bool = True,
    rtol: dict[str, float] | float | None = None,
    atol: float = 0.0,
    keep_going: bool = False,
    ranks: int = 1,
    dead_ranks: Sequence[int] = (),
) -> StageReport:
    """Run the input and every stage of `func`'s lowering on copies of `args`; see the module doc.

    `func`: a PrimFunc (lowered here with `tsir.lower(func, target)`), a `tsir.lower` result, or a
    list of (stage name, IR). `args`: as for `tsir.interpret` (arrays are copied per stage, never
    modified; with `ranks` > 1, lists of per-rank arrays). `atol`: an absolute floor of the float
    comparison, for outputs that cancel to near zero (a sum of terms of order 1 whose exact value
    is 0 differs by rounding, summed in another order, far beyond a tolerance relative to
    itself). `keep_going`: run every stage even after a failure.
    """
    report = StageReport()
    stages = _stages(func, target, report)
    if stages is None:
        return report
    names = [n for n, _ in stages]
    guards_at = names.index(GUARDS_EXPLICIT_FROM) if GUARDS_EXPLICIT_FROM in names else None
    sync_at = names.index(BARRIERS_EXPLICIT_FROM) if BARRIERS_EXPLICIT_FROM in names else None
    origin = OriginIndex(stages)
    ref: list[Any] | None = None
    prev_ir: Any = None
    prev_mode: tuple[Any, bool] | None = None
    prev_ok = True
    for k, (name, ir) in enumerate(stages):
        guards = None if guards_at is None or k >= guards_at else True
        sync = sync_at is not None and k < sync_at
        if ir is prev_ir and prev_ok and (guards, sync) == prev_mode:
            report.results.append(StageResult(name, "same"))
            continue
        prev_ir, prev_mode = ir, (guards, sync)
        run_args = [_copy(a) for a in args]
        t0 = time.perf_counter()
        try:
            interpret(
                ir,
                *run_args,
                grid=grid,
                check=check,
                stages=origin,
                implicit_guards=guards,
                implicit_sync=sync,
                ranks=ranks,
                dead_ranks=dead_ranks,
            )
            res = StageResult(name, "ok")
        except HazardError as e:
            res = StageResult(name, "hazard", str(e), e)
        except TSIRError as e:
            res = StageResult(name, "error", str(e), e)
        except Exception as e:  # noqa: BLE001
            res = StageResult(
                name, "internal", f"{type(e).__name__}: {e}\n{traceback.format_exc()}", e
            )
        res.seconds = time.perf_counter() - t0
        if res.status == "ok":
            if ref is None:
                ref = run_args
                report.reference = run_args
            else:
                diff = compare_outputs(ref, run_args, rtol, atol)
                if diff:
                    res.status, res.message = "mismatch", diff
        report.results.append(res)
        prev_ok = not res.failed
        if res.failed and not keep_going:
            break
        if res.failed and ref is None:
            break  # no reference to compare the other stages with
    return report


def _copy(a: Any) -> Any:
    if isinstance(a, np.ndarray):
        return a.copy()
    if isinstance(a, (list, tuple)):
        return [_copy(x) for x in a]
    return a


def _flat(xs: Sequence[Any]) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for i, x in enumerate(xs):
        if isinstance(x, (list, tuple)):
            out += [(f"{i} (rank {r})", y) for r, y in enumerate(x)]
        else:
            out.append((str(i), x))
    return out


def _stages(func: Any, target: Any, report: StageReport) -> list[tuple[str, Any]] | None:
    if hasattr(func, "stages"):
        return list(func.stages)
    if isinstance(func, (list, tuple)):
        return list(func)

    t0 = time.perf_counter()
    try:
        # The public entry point, as any user of the pipeline calls it.
        # Deliberately lazy: the pipeline loads on first use (as for tsir.lower), so importing
        # tsir (which imports this package) never imports a pass.
        from ..passes import lower

        return list(lower(func, target).stages)
    except TSIRError as e:
        report.results.append(StageResult("lower", "error", str(e), e, time.perf_counter() - t0))
    except Exception as e:  # noqa: BLE001
        report.results.append(
            StageResult(
                "lower",
                "internal",
                f"{type(e).__name__}: {e}\n{traceback.format_exc()}",
                e,
                time.perf_counter() - t0,
            )
        )
    return None


def compare_outputs(
    ref: Sequence[Any],
    got: Sequence[Any],
    rtol: dict[str, float] | float | None = None,
    atol: float = 0.0,
) -> str:
    """ "" when every array of `got` matches `ref`, else a description of the first difference."""
    for (i, r), (_, g) in zip(_flat(ref), _flat(got)):
        if not isinstance(r, np.ndarray):
            continue
        name = str(r.dtype)
        try:
            dt = as_dtype(name).name
        except TSIRError:
            dt = name
        if r.dtype.kind in "biu" or dt == "bool":
            bad = r != g
            if bad.any():
                k = np.argwhere(bad)[0]
                return (
                    f"argument {i}: {int(bad.sum())} of {bad.size} elements differ; first at "
                    f"{tuple(int(x) for x in k)}: expected {r[tuple(k)].item()}, got "
                    f"{g[tuple(k)].item()}"
                )
            continue
        tol = (
            rtol
            if isinstance(rtol, (int, float))
            else (rtol or {}).get(dt, TOLERANCE.get(dt, 1e-4))
        )
        a = r.astype(np.float64)
        b = g.astype(np.float64)
        nan_a, nan_b = np.isnan(a), np.isnan(b)
        finite = np.isfinite(a)
        scale = float(np.abs(a[finite]).max()) if finite.any() else 0.0
        with np.errstate(invalid="ignore"):
            close = (
                (a == b)
                | (nan_a & nan_b)
                | (np.abs(a - b) <= tol * (np.abs(a) + 0.1 * scale) + atol)
            )
        close &= ~(nan_a ^ nan_b)
        if not close.all():
            k = np.argwhere(~close)[0]
            err = np.abs(a - b)[~close]
            return (
                f"argument {i} ({dt}): {int((~close).sum())} of {close.size} elements differ "
                f"beyond rtol {tol}; first at {tuple(int(x) for x in k)}: expected "
                f"{float(a[tuple(k)])}, got {float(b[tuple(k)])} (max error "
                f"{float(np.nanmax(err)) if err.size else float('nan'):.3g}, scale {scale:.3g})"
            )
    return ""
