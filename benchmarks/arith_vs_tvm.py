"""tsir's arithmetic analyzer side by side with apache-tvm's, on the same lemma corpus.

Runs anywhere (CPU only): `python benchmarks/arith_vs_tvm.py [--lemmas 1300] [--json out.json]`.

For every lemma of `tsir.arith.corpus` each analyzer gets its ranges and assumptions (not timed),
then
- simplify: one `simplify(cond)` call, timed; throughput is lemmas per second;
- can_prove: one `can_prove(cond)` call, timed; median and p99 latency. Ours runs cold (Z3's
  structural cache cleared before each question) and warm (cache kept across the corpus, as in one
  compilation); TVM at DEFAULT strength (no Z3) and at SYMBOLIC_BOUND (its Z3 fallback on);
- the share of questions each method settled: ours from `Analyzer.stats` (proved by rewrite,
  interval or z3; not proved: simplified to false, refuted by sampling or by Z3, Z3 unknown),
  TVM's Z3 share as what SYMBOLIC_BOUND proves beyond DEFAULT.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from tsir.arith import Analyzer, z3_prover

# The lemma corpus and the TVM oracle are test support (tests/arith/), not part of the package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "arith"))
from arith_corpus import Lemma, generate  # noqa: E402
from arith_tvm_oracle import TVMOracle, tvm_import_error  # noqa: E402


def _setup(lemma: Lemma, stack: ExitStack) -> Analyzer:
    ana = Analyzer()
    for v, lo, ext in lemma.ranges:
        ana.bind(v, lo, ext)
    for a in lemma.assumptions:
        stack.enter_context(ana.assume(a))
    return ana


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def run_ours(lemmas: list[Lemma], cold: bool) -> dict[str, Any]:
    simp: list[float] = []
    prove: list[float] = []
    keys = ("rewrite", "interval", "z3", "disproved", "sampled", "z3_refuted", "z3_unknown")
    methods = dict.fromkeys(keys, 0)
    z3_prover.clear_cache()
    for lemma in lemmas:
        with ExitStack() as stack:
            ana = _setup(lemma, stack)
            t0 = time.perf_counter()
            ana.simplify(lemma.cond)
            simp.append(time.perf_counter() - t0)
        with ExitStack() as stack:  # a fresh analyzer, so simplify's cache does not help can_prove
            ana = _setup(lemma, stack)
            if cold:
                z3_prover.clear_cache()
            t0 = time.perf_counter()
            ana.prove(lemma.cond)
            prove.append(time.perf_counter() - t0)
            for k in keys:
                methods[k] += ana.stats[k]
    return _summary(simp, prove, methods, len(lemmas))


def run_tvm(oracle: TVMOracle, lemmas: list[Lemma], strength: str) -> dict[str, Any]:
    simp: list[float] = []
    prove: list[float] = []
    proved = 0
    for lemma in lemmas:
        ana, goal, assumptions, st = oracle.prepared(lemma, strength)
        with ExitStack() as stack:
            for a in assumptions:
                stack.enter_context(ana.constraint_scope(a))
            t0 = time.perf_counter()
            ana.simplify(goal)
            simp.append(time.perf_counter() - t0)
        ana, goal, assumptions, st = oracle.prepared(lemma, strength)
        with ExitStack() as stack:
            for a in assumptions:
                stack.enter_context(ana.constraint_scope(a))
            t0 = time.perf_counter()
            ok = bool(ana.can_prove(goal, st))
            prove.append(time.perf_counter() - t0)
        proved += ok
    return _summary(simp, prove, {"proved": proved, "unproved": len(lemmas) - proved}, len(lemmas))


def _summary(
    simp: list[float], prove: list[float], methods: dict[str, int], n: int
) -> dict[str, Any]:
    return {
        "simplify_per_s": n / sum(simp),
        "simplify_median_us": statistics.median(simp) * 1e6,
        "can_prove_median_us": statistics.median(prove) * 1e6,
        "can_prove_p99_us": _pct(prove, 0.99) * 1e6,
        "can_prove_total_s": sum(prove),
        "settled": methods,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lemmas", type=int, default=1300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    lemmas = generate(args.lemmas, seed=args.seed)
    results: dict[str, Any] = {
        "lemmas": len(lemmas),
        "machine": platform.processor() or platform.machine(),
    }
    run_ours(lemmas[:100], cold=False)  # warm up imports and Z3
    results["tsir (cold Z3 cache)"] = run_ours(lemmas, cold=True)
    results["tsir (warm Z3 cache)"] = run_ours(lemmas, cold=False)
    err = tvm_import_error()
    if err is None:
        oracle = TVMOracle()
        results["tvm_version"] = oracle.version
        run_tvm(oracle, lemmas[:100], "symbolic")
        results["TVM DEFAULT"] = run_tvm(oracle, lemmas, "default")
        results["TVM SYMBOLIC_BOUND (Z3)"] = run_tvm(oracle, lemmas, "symbolic")
    else:
        results["tvm_error"] = err
    _print(results)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


def _print(r: dict[str, Any]) -> None:
    n = r["lemmas"]
    rows = [k for k in r if isinstance(r[k], dict)]
    print(f"{n} lemmas (tsir.arith.corpus); TVM {r.get('tvm_version', r.get('tvm_error'))}")
    head = f"{'analyzer':26} {'simplify/s':>10} {'can_prove median us':>20} {'p99 us':>9}"
    print(head)
    print("-" * len(head))
    for k in rows:
        x = r[k]
        print(
            f"{k:26} {x['simplify_per_s']:10.0f} {x['can_prove_median_us']:20.1f} "
            f"{x['can_prove_p99_us']:9.1f}"
        )
    print("settled:")
    for k in rows:
        parts = ", ".join(f"{m} {c} ({100 * c / n:.1f}%)" for m, c in r[k]["settled"].items())
        print(f"  {k}: {parts}")
    if "TVM DEFAULT" in r:
        d = r["TVM DEFAULT"]["settled"]["proved"]
        s = r["TVM SYMBOLIC_BOUND (Z3)"]["settled"]["proved"]
        print(
            f"  TVM: native analyzers prove {d}; its Z3 fallback adds {s - d} "
            f"({100 * (s - d) / n:.1f}%)"
        )


if __name__ == "__main__":
    main()
