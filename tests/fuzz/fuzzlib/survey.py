"""Run many seeded programs and summarise: what CI asserts on and what scripts/fuzz.py prints."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from .classify import KNOWN, classify
from .harness import Config, Outcome, run_program
from .strategies import program_for_seed

__all__ = ["Summary", "evaluate", "run_seeds", "run_seed"]


@dataclass
class Summary:
    programs: int = 0
    by_family: Counter = field(default_factory=Counter)
    by_status: Counter = field(default_factory=Counter)
    classes: Counter = field(default_factory=Counter)
    first_seed: dict[str, int] = field(default_factory=dict)
    examples: dict[str, str] = field(default_factory=dict)
    stages_compared: int = 0
    detector_hits: int = 0
    seconds: float = 0.0
    phase_seconds: Counter = field(default_factory=Counter)

    def add(self, seed: int, family: str, out: Outcome, klass: str) -> None:
        self.programs += 1
        self.by_family[family] += 1
        self.by_status[out.status] += 1
        self.stages_compared += out.stages_compared
        if out.status == "detector":
            self.detector_hits += 1
        for k, v in out.seconds.items():
            self.phase_seconds[k] += v
        if klass:
            self.classes[klass] += 1
            self.first_seed.setdefault(klass, seed)
            self.examples.setdefault(klass, f"[{out.stage or ''} {out.target or ''}] {out.message}")

    def unknown(self) -> dict[str, int]:
        return {k: v for k, v in self.classes.items() if k not in KNOWN}

    def counts(self) -> dict[str, int]:
        """The figures the issue asks for: programs, stages compared, detector hits, mismatches,
        internal errors, NVRTC failures."""
        s = self.by_status
        return {
            "programs": self.programs,
            "stages_compared": self.stages_compared,
            "detector_hits": self.detector_hits,
            "mismatches": s["mismatch"],
            "internal_errors": s["internal"],
            "nvrtc_failures": s["nvrtc"],
            "refusals": s["refused"] + s["lower-refused"],
            "silent_accepts": s["silent-accept"],
            "interpreter_errors": s["interp-error"],
            "generator_errors": s["generator"],
        }

    def report(self) -> str:
        lines = [
            f"{self.programs} programs in {self.seconds:.1f} s ({dict(self.by_family)})",
            "  " + ", ".join(f"{k}={v}" for k, v in self.counts().items()),
        ]
        for klass, n in self.classes.most_common():
            tag = "known" if klass in KNOWN else "NEW"
            lines.append(f"  [{tag}] {n:5d} x {klass}  (first seed {self.first_seed[klass]})")
            lines.append(f"          {self.examples[klass][:300]}")
        phases = ", ".join(f"{k} {v:.1f}s" for k, v in sorted(self.phase_seconds.items()))
        lines.append(f"  time by phase: {phases}")
        return "\n".join(lines)

    def to_json(self) -> str:
        return json.dumps(
            {
                "counts": self.counts(),
                "by_family": dict(self.by_family),
                "by_status": dict(self.by_status),
                "classes": {
                    k: {
                        "count": v,
                        "first_seed": self.first_seed[k],
                        "known": k in KNOWN,
                        "example": self.examples[k],
                    }
                    for k, v in self.classes.most_common()
                },
                "seconds": self.seconds,
            },
            indent=2,
        )


def evaluate(prog: Any, cfg: Config) -> Outcome:
    """Run and classify one program (`out.klass`), looking past the hazards of `cfg.look_past`."""
    out = run_program(prog, cfg)
    out.klass = classify(prog, out)
    if out.klass in cfg.look_past and cfg.check:
        # A hazard that leaves the numbers right may hide a wrong result behind it.
        again = run_program(prog, replace(cfg, check=False))
        klass = classify(prog, again)
        if again.status == "mismatch" and klass:
            again.message = f"(behind {out.klass}) {again.message}"
            again.klass = klass
            return again
    return out


def run_seed(
    seed: int, cfg: Config, families: tuple[str, ...] | None = None
) -> tuple[int, str, Outcome, str]:
    prog = program_for_seed(seed, families)
    out = evaluate(prog, cfg)
    return seed, prog.family, out, out.klass


def run_seeds(
    seeds: Iterable[int],
    cfg: Config | None = None,
    families: tuple[str, ...] | None = None,
    jobs: int = 1,
    progress: Any = None,
    seconds: float | None = None,
) -> Summary:
    """Run every seed (`jobs` processes). `seconds`: stop taking results after this wall time;
    the summary then holds the programs that finished (`summary.programs` says how many)."""
    cfg = cfg or Config()
    summary = Summary()
    t0 = time.perf_counter()
    pool = None
    if jobs <= 1:
        results: Iterable[Any] = (run_seed(s, cfg, families) for s in seeds)
    else:
        import multiprocessing as mp

        pool = mp.get_context("fork").Pool(jobs)
        results = pool.imap_unordered(
            _run_seed_star, [(s, cfg, families) for s in seeds], chunksize=4
        )
    for seed, family, out, klass in results:
        summary.add(seed, family, out, klass)
        if progress is not None:
            progress(summary)
        if seconds is not None and time.perf_counter() - t0 > seconds:
            break
    if pool is not None:
        pool.terminate()
    summary.seconds = time.perf_counter() - t0
    return summary


def _run_seed_star(
    args: tuple[int, Config, tuple[str, ...] | None],
) -> tuple[int, str, Outcome, str]:
    return run_seed(*args)
