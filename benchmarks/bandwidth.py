"""Memory bandwidth of tsir's element-wise and transpose kernels against torch and a plain copy.

Run on a GPU: `python benchmarks/bandwidth.py [--gib 1] [--json out.json]`. Bytes count every
input read once and every output written once; times are medians of CUDA-event-timed runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))


def bench(fn, reps: int = 30, warmup: int = 5) -> float:  # type: ignore[no-untyped-def]
    import torch

    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return statistics.median(times)


def main() -> None:
    import torch
    from elementwise_2d import fused_exp_scale_bias
    from transpose import transpose
    from vector_add import vector_add

    import tsir

    ap = argparse.ArgumentParser()
    ap.add_argument("--gib", type=float, default=1.0, help="size of the main input in GiB")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    n = int(args.gib * (1 << 30)) // 4
    rows = {}
    dev = torch.cuda.get_device_name()

    # Device-to-device copy: the ceiling.
    src = torch.randn(n, device="cuda")
    dst = torch.empty_like(src)
    t = bench(lambda: dst.copy_(src))
    rows["d2d copy (torch copy_)"] = (2 * n * 4, t)

    # Vector add: 2 reads + 1 write.
    k = tsir.compile(vector_add(), target="cuda")
    a, b, c = (
        torch.randn(n, device="cuda"),
        torch.randn(n, device="cuda"),
        torch.empty(n, device="cuda"),
    )
    k(a, b, c)
    torch.testing.assert_close(c, a + b)
    rows["vector add tsir"] = (3 * n * 4, bench(lambda: k(a, b, c)))  # noqa: F821  (called before the del below)
    rows["vector add torch"] = (3 * n * 4, bench(lambda: torch.add(a, b, out=c)))  # noqa: F821  (called before the del below)
    del a, b, c

    # Fused element-wise: y = exp(x) * w[col] + b[col].
    N = 4096
    M = n // N
    k = tsir.compile(fused_exp_scale_bias(N), target="cuda")
    x = torch.randn(M, N, device="cuda")
    w, bias = torch.randn(N, device="cuda"), torch.randn(N, device="cuda")
    y = torch.empty_like(x)
    k(x, w, bias, y)
    torch.testing.assert_close(y, torch.exp(x) * w + bias, rtol=1e-5, atol=1e-5)
    rows["exp*w+b tsir (fused)"] = (2 * M * N * 4, bench(lambda: k(x, w, bias, y)))  # noqa: F821  (called before the del below)
    rows["exp*w+b torch (eager)"] = (
        2 * M * N * 4,
        bench(lambda: torch.add(torch.exp(x).mul_(w), bias, out=y)),  # noqa: F821  (called before the del below)
    )
    del x, y

    # Transpose of a square float32 matrix.
    S = int((n) ** 0.5) // 64 * 64
    k = tsir.compile(transpose(M=S, N=S), target="cuda")
    a = torch.randn(S, S, device="cuda")
    bt = torch.empty(S, S, device="cuda")
    k(a, bt)
    torch.testing.assert_close(bt, a.t())
    rows[f"transpose {S}x{S} tsir"] = (2 * S * S * 4, bench(lambda: k(a, bt)))
    rows[f"transpose {S}x{S} torch"] = (2 * S * S * 4, bench(lambda: bt.copy_(a.t())))

    copy_bw = rows["d2d copy (torch copy_)"][0] / rows["d2d copy (torch copy_)"][1]
    print(f"device: {dev}")
    print(f"{'kernel':34s} {'ms':>9s} {'GB/s':>9s} {'of copy':>8s}")
    out = {"device": dev, "rows": []}
    for name, (nbytes, sec) in rows.items():
        bw = nbytes / sec
        print(f"{name:34s} {sec * 1e3:9.3f} {bw / 1e9:9.1f} {bw / copy_bw:8.1%}")
        out["rows"].append(
            {
                "name": name,
                "bytes": nbytes,
                "seconds": sec,
                "GBps": bw / 1e9,
                "of_copy": bw / copy_bw,
            }
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
