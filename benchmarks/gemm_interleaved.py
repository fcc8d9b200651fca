"""GEMM timings that drift cannot bias: cuBLAS, Triton, the hand kernel and tsir's tile program
timed in one process, in rounds, each round timing every implementation once in a rotated order.

    python benchmarks/gemm_interleaved.py [--problem f16_8192] [--tsir A,B] [--hand A,B]
        [--rounds 15] [--out DIR]

Sequential benchmarks (benchmarks/gemm_hopper.py: one worker process per case) see the GPU's
clock change under them: at 8192^3 the same kernel measured 10% apart a minute apart on an H100
(benchmarks/RESULTS.md, 2026-12-07). Here every round times each implementation once (a batch of
launches rotating through L2-cold input copies, between two CUDA events) and the order rotates
from round to round; the table gives each one's median TFLOP/s and its median *paired* ratio to
cuBLAS (the ratio within each round, where both saw the same clocks). Every implementation is first
checked against an fp32 reference with its output poisoned (NaN). Problems and the hand kernel's
variants come from benchmarks/hopper_gemm.py, tsir's configurations from benchmarks/gemm_hopper.py.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent.parent / "examples"))

import gemm_hopper  # noqa: E402
import hopper_gemm  # noqa: E402

# Defaults: the 8192^3 candidates (other problems: name configurations from their list).
DEFAULT_TSIR = "128x256x64_s4_p,128x256x64_s3_p_shared,128x256x64_s3_p_shared_w4"
DEFAULT_HAND = "128x256x64_s4_c2_p,128x256x64_s3_c2_p_tmastore"


def implementations(
    pname: str, tsir_names: list[str], hand_names: list[str], inp: Any
) -> tuple[dict[str, list[Callable[[], Any]]], dict[str, Any]]:
    """Name -> one launch per input copy, and name -> the output its first launch writes."""
    import torch
    from hopper_launch import HopperGemm, triton_launcher

    p = hopper_gemm.PROBLEMS[pname]
    n = len(inp.a)
    out: dict[str, list[Callable[[], Any]]] = {}
    outs = [torch.empty(p.m, p.n, device="cuda", dtype=inp.out_dtype) for _ in range(n)]
    if p.dtype.startswith("float8"):
        out["cublas"] = [hopper_gemm._scaled(inp, i, outs[i], False) for i in range(n)]
    else:
        out["cublas"] = [hopper_gemm._mm(inp.a[i], inp.b[i], outs[i]) for i in range(n)]
        out["triton"] = [triton_launcher(inp.a[i], inp.b[i], outs[i]) for i in range(n)]
    fp8 = p.dtype.startswith("float8")
    configs = (
        gemm_hopper.CONFIGS_8 if fp8 else {**gemm_hopper.CONFIGS_16, **gemm_hopper.CONFIGS_BIG}
    )
    for name in tsir_names:
        if name not in configs:
            raise SystemExit(f"unknown tsir configuration {name!r}; known: {', '.join(configs)}")
        out[f"tsir:{name}"] = gemm_hopper._tsir_launches(p, name, inp)[0]
    variants = hopper_gemm.variants(p)
    for name in hand_names:
        cfg = next((c for c in variants if c.name.endswith(name)), None)
        if cfg is None:
            known = ", ".join(c.name for c in variants)
            raise SystemExit(f"unknown hand variant {name!r}; known: {known}")
        gemm = HopperGemm.load(cfg)
        out[f"hand:{cfg.name}"] = [
            gemm.launcher(inp.a[i], inp.b[i], inp.c[i], inp.scale_a, inp.scale_b) for i in range(n)
        ]
    targets = {k: outs[0] if k in ("cublas", "triton") else inp.c[0] for k in out}
    return out, targets


def checked(
    inp: Any, launches: dict[str, list[Callable[[], Any]]], targets: dict[str, Any]
) -> dict[str, Any]:
    """Each implementation's first launch, on a poisoned output, against the reference."""
    import torch

    report = {}
    for name, fns in launches.items():
        hopper_gemm.poison(targets[name])
        fns[0]()
        torch.cuda.synchronize()
        report[name] = hopper_gemm.check(inp, targets[name])
    return report


def batch_ms(fns: list[Callable[[], Any]], batch: int) -> float:
    """Milliseconds per launch over `batch` launches rotating through the input copies."""
    import torch

    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for i in range(batch):
        fns[i % len(fns)]()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / batch


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problem", default="f16_8192", choices=sorted(hopper_gemm.PROBLEMS))
    ap.add_argument("--tsir", default=DEFAULT_TSIR, help="tsir configurations (comma list)")
    ap.add_argument("--hand", default=DEFAULT_HAND, help="hand-kernel variant name suffixes")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--batch", type=int, default=6, help="launches per timed sample")
    ap.add_argument("--out", default="out")
    args = ap.parse_args()
    p = hopper_gemm.PROBLEMS[args.problem]
    inp = hopper_gemm.Inputs(p)
    split = [x for x in args.tsir.split(",") if x], [x for x in args.hand.split(",") if x]
    launches, targets = implementations(args.problem, *split, inp)
    checks = checked(inp, launches, targets)
    bad = {k: v for k, v in checks.items() if not v["ok"]}
    if bad:
        print(f"wrong results: {json.dumps(bad)}")
        return 1
    names = list(launches)
    for fns in launches.values():  # warm up every kernel once more (clocks, caches, modules)
        batch_ms(fns, args.batch)
    samples: dict[str, list[float]] = {n: [] for n in names}
    for r in range(args.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            samples[name].append(batch_ms(launches[name], args.batch))
    tflops = {n: p.flops / statistics.median(v) / 1e9 for n, v in samples.items()}
    paired = {
        n: statistics.median(c / s for c, s in zip(samples["cublas"], v, strict=True))
        for n, v in samples.items()
    }
    print(f"{args.problem}: {args.rounds} rounds x {args.batch} launches, order rotated")
    print(f"{'implementation':44s} {'TFLOP/s':>8s} {'x cuBLAS (paired)':>18s}")
    for n in names:
        print(f"{n:44s} {tflops[n]:8.1f} {paired[n]:18.3f}")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    result = {"problem": args.problem, "samples_ms": samples, "tflops": tflops, "paired": paired}
    (Path(args.out) / f"gemm_interleaved_{args.problem}.json").write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
