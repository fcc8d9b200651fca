"""Compile time per example: IR build, IR to CUDA (lowering + codegen), NVRTC, and a cache hit.

Runs anywhere (no GPU needed): `python benchmarks/compile_time.py [--target sm_100a] [--json f]`.
"Cold" compiles use an empty cache directory; "hit" is a whole `tsir.compile` of a freshly built
function whose cubin (and lowering) is cached on disk from the cold run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", default="sm_100a")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--json", default="")
    args = ap.parse_args()

    from elementwise_2d import fused_exp_scale_bias
    from transpose import transpose
    from vector_add import vector_add

    import tsir
    from tsir import knobs

    examples = {
        "vector_add": vector_add,
        "fused_exp_scale_bias": lambda: fused_exp_scale_bias(1024),
        "transpose": lambda: transpose(N=4096),
    }
    import shutil

    headers = tempfile.mkdtemp()  # NVRTC's extracted headers persist; compiled entries do not
    # Warm the process (imports, Z3 start-up, NVRTC load, header extraction) outside the timings.
    with knobs.override(cache_dir=headers):
        tsir.compile(vector_add(), target=args.target)
    rows = []
    for name, build in examples.items():
        cold, hit, build_t, lower_t, nvrtc_t = [], [], [], [], []
        for _ in range(args.reps):
            for sub in os.listdir(headers):
                if not sub.startswith("nvrtc-headers"):
                    shutil.rmtree(os.path.join(headers, sub))
            with knobs.override(cache_dir=headers):
                t0 = time.perf_counter()
                f = build()
                t1 = time.perf_counter()
                k = tsir.compile(f, target=args.target)
                t2 = time.perf_counter()
                assert not k.binary.cache_hit
                build_t.append(t1 - t0)
                cold.append(t2 - t1)
                lower_t.append(k.timings["lower"] + k.timings["codegen"])
                nvrtc_t.append(k.timings["nvrtc"])
                f2 = build()
                t3 = time.perf_counter()
                k2 = tsir.compile(f2, target=args.target)
                t4 = time.perf_counter()
                assert k2.binary.cache_hit and k2.cubin == k.cubin
                hit.append(t4 - t3)
        med = statistics.median
        rows.append(
            {
                "example": name,
                "build_ms": med(build_t) * 1e3,
                "ir_to_cuda_ms": med(lower_t) * 1e3,
                "nvrtc_ms": med(nvrtc_t) * 1e3,
                "cold_total_ms": med(cold) * 1e3,
                "cache_hit_ms": med(hit) * 1e3,
            }
        )
    print(f"target {args.target}, {os.cpu_count()} CPU cores, median of {args.reps}")
    print(
        f"{'example':24s} {'build':>8s} {'IR->CUDA':>9s} {'NVRTC':>8s} {'cold':>8s} {'hit':>8s}  (ms)"
    )
    for r in rows:
        print(
            f"{r['example']:24s} {r['build_ms']:8.2f} {r['ir_to_cuda_ms']:9.1f} {r['nvrtc_ms']:8.1f} "
            f"{r['cold_total_ms']:8.1f} {r['cache_hit_ms']:8.2f}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"target": args.target, "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
