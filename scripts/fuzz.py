#!/usr/bin/env python3
"""Long random-program runs (issue 9, deliverable 3): `python scripts/fuzz.py --programs 10000`.

Every program is built, lowered for sm_80 and sm_90a, compiled with NVRTC and, when
`tsir.interpret` exists, checked against its numpy reference stage by stage. Prints a summary by
failure class (programs, stages compared, detector hits, mismatches, internal errors, NVRTC
failures) and writes it as JSON with --out. Reproduce one program: --show SEED prints its source
and outcome.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "fuzz"))

from fuzzlib.harness import Config  # noqa: E402
from fuzzlib.strategies import FAMILIES, program_for_seed  # noqa: E402
from fuzzlib.survey import Summary, run_seeds  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--programs", type=int, default=10000)
    ap.add_argument(
        "--seed", type=int, default=1, help="first seed (programs use seed, seed+1, ...)"
    )
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument(
        "--families", default="", help=f"comma list of {sorted(FAMILIES)} (default all)"
    )
    ap.add_argument("--no-nvrtc", action="store_true", help="lower and print CUDA, skip NVRTC")
    ap.add_argument("--no-interpret", action="store_true")
    ap.add_argument("--stages", default="all", choices=["all", "changed"])
    ap.add_argument(
        "--look-past",
        default="reduce-reads-unheld-registers",
        help="comma list of classes whose detector hit is re-run with the detectors off",
    )
    ap.add_argument("--out", help="write the summary as JSON here")
    ap.add_argument(
        "--show", type=int, help="print one program (by seed) and its outcome, then exit"
    )
    ap.add_argument(
        "--shrink",
        type=int,
        help="shrink the program of this seed to a small one that fails "
        "with the same signature, print it and exit",
    )
    ap.add_argument("--budget", type=int, default=300, help="programs tried by --shrink")
    ap.add_argument(
        "--seconds",
        type=float,
        default=None,
        help="stop after this wall time and report the programs that finished",
    )
    ap.add_argument(
        "--find",
        metavar="CLASS",
        help="search with hypothesis for a program of this failure "
        "class and print the smallest one it shrinks to",
    )
    args = ap.parse_args()
    families = tuple(args.families.split(",")) if args.families else None
    cfg = Config(
        nvrtc_targets=() if args.no_nvrtc else ("sm_80", "sm_90a"),
        interpret=not args.no_interpret,
        stages=args.stages,
        look_past=tuple(c for c in args.look_past.split(",") if c),
    )
    if args.show is not None:
        prog = program_for_seed(args.show, families)
        print(prog.module_source())
        from fuzzlib.survey import evaluate

        print(evaluate(prog, cfg))
        return 0
    if args.shrink is not None:
        return shrink(args.shrink, families, cfg, args.budget)
    if args.find:
        return find(args.find, families, cfg, args.budget)
    start = time.time()

    def progress(s: Summary) -> None:
        if s.programs % 200 == 0:
            rate = s.programs / (time.time() - start)
            print(
                f"  {s.programs} programs, {rate:.1f}/s, failures by status: "
                f"{ {k: v for k, v in s.by_status.items() if k != 'ok'} }",
                flush=True,
            )

    summary = run_seeds(
        range(args.seed, args.seed + args.programs),
        cfg,
        families,
        args.jobs,
        progress,
        seconds=args.seconds,
    )
    print(summary.report())
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(summary.to_json())
    return 0


def shrink(seed: int, families: tuple[str, ...] | None, cfg: Config, budget: int) -> int:
    from fuzzlib.shrink import shrink_choices
    from fuzzlib.strategies import recorded_program, replayed_program
    from fuzzlib.survey import evaluate

    prog, choices = recorded_program(seed, families)
    out = evaluate(prog, cfg)
    want = out.klass
    print(f"seed {seed}: {want or 'passes'}")
    if not want:
        return 1

    def fails(cand: list[int]) -> bool:
        return evaluate(replayed_program(cand, seed, families), cfg).klass == want

    best = shrink_choices(choices, fails, budget, log=print)
    small = replayed_program(best, seed, families)
    print(small.module_source())
    final = evaluate(small, cfg)
    print(f"choices: {best}")
    print(f"{final.klass}: {final.status} at {final.stage} ({final.target}):\n{final.message}")
    return 0


def find(klass: str, families: tuple[str, ...] | None, cfg: Config, budget: int) -> int:
    """hypothesis.find over the strategy: the first program of `klass`, shrunk by hypothesis."""
    from fuzzlib.strategies import programs
    from fuzzlib.survey import evaluate
    from hypothesis import HealthCheck, settings
    from hypothesis import find as hfind

    prog = hfind(
        programs(families),
        lambda p: evaluate(p, cfg).klass == klass,
        settings=settings(
            max_examples=budget,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
    print(prog.module_source())
    out = evaluate(prog, cfg)
    print(f"{out.klass}: {out.status} at {out.stage} ({out.target}):\n{out.message}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
