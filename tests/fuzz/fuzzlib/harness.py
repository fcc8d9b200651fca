"""Run one generated program through every oracle and say what went wrong, if anything.

For each program:
1. build it with the builder (a `TSIRError` here on a valid program is a refusal: a finding);
2. run its numpy reference on the same inputs;
3. for each target, `tsir.lower`, CUDA generation and NVRTC: any exception that is not a
   `TSIRError` is an internal error, any NVRTC error on generated code is a bug (issue 9, 7);
4. with the interpreter: the tile-level function against the reference, then every stage against
   the tile-level result, with the detectors on (see `interp.py`).
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import tsir

from .program import Program

__all__ = ["Outcome", "Config", "run_program", "FAIL_STATUSES"]

FAIL_STATUSES = (
    "refused",
    "lower-refused",
    "internal",
    "nvrtc",
    "mismatch",
    "detector",
    "silent-accept",
    "interp-error",
    "tile-mismatch",
)


@dataclass
class Config:
    targets: tuple[str, ...] = ("sm_80", "sm_90a")
    nvrtc_targets: tuple[str, ...] = ("sm_80", "sm_90a")
    interpret: bool = True
    """run the interpreter oracles when `tsir.interpret` exists"""
    stages: str = "all"
    """'all': every target's stages; 'changed': a later target's stages only where its CUDA
    differs from the first target's"""
    check: bool = True
    """detectors on (off: only the numbers are compared, to look past a known hazard)"""
    look_past: tuple[str, ...] = ("reduce-reads-unheld-registers",)
    """classes whose detector hit is re-run with the detectors off, to see what it hides"""


@dataclass
class Outcome:
    status: str
    """ok | refused | lower-refused | internal | nvrtc | mismatch | detector | silent-accept |
    interp-error | generator (a bug in the fuzzer itself)"""
    message: str = ""
    target: str | None = None
    stage: str | None = None
    error_type: str = ""
    klass: str = ""
    """the failure class (see classify.py)"""
    stages_compared: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.status in FAIL_STATUSES


def _internal(exc: BaseException) -> bool:
    """Did the exception come from inside tsir (not from the generated program's own code)?"""
    if isinstance(exc, AttributeError) and "module 'tsir.T' has no attribute" in str(exc):
        return False
    frames = traceback.extract_tb(exc.__traceback__)
    return any(
        "/tsir/" in f.filename
        or "/passes/" in f.filename
        or "/codegen/" in f.filename
        or "/runtime/" in f.filename
        for f in frames
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.strip().split("\n")[0][:300] if text.strip() else type(exc).__name__


def _describe(exc: BaseException) -> str:
    tb = traceback.extract_tb(exc.__traceback__)
    where = (
        f" at {tb[-1].filename.split('/')[-2]}/{tb[-1].filename.split('/')[-1]}:{tb[-1].lineno}"
        if tb
        else ""
    )
    return f"{type(exc).__name__}: {_first_line(exc)}{where}"


def run_program(prog: Program, cfg: Config | None = None) -> Outcome:
    cfg = cfg or Config()
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    try:
        func = prog.build()
    except tsir.InternalError as exc:  # a tsir bug that the pipeline wrapped for the user
        return Outcome(
            "internal", _describe(exc.original), stage="builder", error_type="InternalError"
        )
    except tsir.TSIRError as exc:
        if prog.expect_error is not None:
            ok = type(exc).__name__ == prog.expect_error or isinstance(exc, tsir.TSIRError)
            return Outcome(
                "ok" if ok else "refused", _first_line(exc), error_type=type(exc).__name__
            )
        return Outcome("refused", _first_line(exc), stage="builder", error_type=type(exc).__name__)
    except Exception as exc:  # noqa: BLE001
        if _internal(exc):
            return Outcome(
                "internal", _describe(exc), stage="builder", error_type=type(exc).__name__
            )
        return Outcome("generator", _describe(exc), stage="builder", error_type=type(exc).__name__)
    times["build"] = time.perf_counter() - t0
    if prog.expect_error is not None:
        return Outcome(
            "silent-accept",
            f"expected {prog.expect_error}, the builder accepted the program",
            stage="builder",
        )
    try:
        inputs = prog.make_inputs()
        expected = prog.expected(inputs)
    except Exception as exc:  # noqa: BLE001
        return Outcome("generator", "reference: " + _describe(exc), error_type=type(exc).__name__)
    lowered: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for target in cfg.targets:
        out = _compile_one(func, target, target in cfg.nvrtc_targets, times, lowered, sources)
        if out is not None:
            out.seconds = times
            return out
    outcome = Outcome("ok", seconds=times)
    if cfg.interpret and hasattr(tsir, "interpret"):
        from .interp import check_with_interpreter

        interp_out = check_with_interpreter(
            prog, func, inputs, expected, {**lowered, "_cuda": sources}, cfg, times
        )
        if interp_out is not None:
            interp_out.seconds = times
            return interp_out
        outcome.stages_compared = int(times.pop("stages_compared", 0))
    return outcome


def _compile_one(
    func: Any,
    target: str,
    nvrtc: bool,
    times: dict[str, float],
    lowered: dict[str, Any],
    sources: dict[str, str],
) -> Outcome | None:
    from tsir.codegen.cuda import generate_cuda
    from tsir.runtime.nvrtc import NvrtcError, compile_cuda

    t = time.perf_counter()
    phase = "lower"
    try:
        low = tsir.lower(func, target)
        lowered[target] = low
        times[f"lower-{target}"] = time.perf_counter() - t
        phase = "codegen"
        t = time.perf_counter()
        source = generate_cuda(low.module)
        sources[target] = source
        times[f"codegen-{target}"] = time.perf_counter() - t
        if nvrtc:
            phase = "nvrtc"
            t = time.perf_counter()
            compile_cuda(source, target, filename="fuzz.cu", use_cache=False)
            times[f"nvrtc-{target}"] = time.perf_counter() - t
    except NvrtcError as exc:
        errors = [line.strip() for line in (exc.log or str(exc)).split("\n") if "error" in line]
        return Outcome(
            "nvrtc",
            errors[0][:300] if errors else _first_line(exc),
            target=target,
            stage="nvrtc",
            error_type="NvrtcError",
        )
    except tsir.InternalError as exc:
        return Outcome(
            "internal",
            _describe(exc.original),
            target=target,
            stage=phase,
            error_type="InternalError",
        )
    except tsir.TSIRError as exc:
        return Outcome(
            "lower-refused",
            _first_line(exc),
            target=target,
            stage=phase,
            error_type=type(exc).__name__,
        )
    except Exception as exc:  # noqa: BLE001
        return Outcome(
            "internal", _describe(exc), target=target, stage=phase, error_type=type(exc).__name__
        )
    return None
