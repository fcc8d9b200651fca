"""GEMM TFLOP/s against cuBLAS (torch.matmul), and softmax / layer-norm bandwidth against a copy.

Run on a GPU: `python benchmarks/tile_ops.py [--json out.json]`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))
sys.path.insert(0, os.path.dirname(__file__))


def main() -> None:
    import torch
    from bandwidth import bench
    from gemm import matmul
    from softmax import layer_norm, softmax

    import tsir

    ap = argparse.ArgumentParser()
    ap.add_argument("--json", default="")
    ap.add_argument("--sizes", default="4096,8192")
    ap.add_argument("--stages", type=int, default=3)
    ap.add_argument("--swizzle", type=int, default=16, help="block rasterization panel (0: off)")
    ap.add_argument(
        "--sweep", action="store_true", help="try several tile configurations at 4096^3 fp16"
    )
    args = ap.parse_args()
    rows = []
    if args.sweep:
        n = 4096
        a = torch.randn(n, n, device="cuda", dtype=torch.float16)
        b = torch.randn(n, n, device="cuda", dtype=torch.float16)
        c = torch.empty(n, n, device="cuda", dtype=torch.float16)
        t_cb = bench(lambda: torch.matmul(a, b, out=c), reps=20)
        for bm, bn, bk, thr, st, sw, ep in (
            (128, 128, 32, 128, 3, 16, "none"),
            (128, 128, 32, 128, 3, 16, "smem"),
            (128, 256, 32, 256, 3, 16, "smem"),
            (128, 128, 32, 128, 4, 16, "smem"),
        ):
            try:
                k = tsir.compile(
                    matmul(
                        n,
                        n,
                        n,
                        bm=bm,
                        bn=bn,
                        bk=bk,
                        threads=thr,
                        num_stages=st,
                        swizzle=sw,
                        epilogue=ep,
                    ),
                    target="cuda",
                )
                k(a, b, c)
                t = bench(lambda: k(a, b, c), reps=20)
                print(
                    f"sweep bm={bm} bn={bn} bk={bk} threads={thr} stages={st} swizzle={sw} epilogue={ep}: {2 * n**3 / t / 1e12:7.1f} TFLOP/s "
                    f"(cuBLAS {2 * n**3 / t_cb / 1e12:.1f})",
                    flush=True,
                )
            except Exception as e:  # noqa: BLE001 - a configuration that does not fit is reported, not fatal
                print(
                    f"sweep bm={bm} bn={bn} bk={bk} threads={thr} stages={st} swizzle={sw} epilogue={ep}: {type(e).__name__}: {str(e)[:120]}"
                )
    for n in (int(s) for s in args.sizes.split(",")):
        for dtype in ("float16", "bfloat16"):
            tdt = getattr(torch, dtype)
            a = torch.randn(n, n, device="cuda", dtype=tdt)
            b = torch.randn(n, n, device="cuda", dtype=tdt)
            c = torch.empty(n, n, device="cuda", dtype=tdt)
            k = tsir.compile(
                matmul(
                    n,
                    n,
                    n,
                    dtype=dtype,
                    num_stages=args.stages,
                    swizzle=args.swizzle,
                    epilogue="smem",
                ),
                target="cuda",
            )
            k(a, b, c)
            err = (
                (c.float() - (a.float() @ b.float())).norm() / (a.float() @ b.float()).norm()
            ).item()
            flops = 2 * n**3
            t_ts = bench(lambda: k(a, b, c), reps=20)
            t_cb = bench(lambda: torch.matmul(a, b, out=c), reps=20)
            rows.append(
                {
                    "case": f"gemm {n}^3 {dtype}",
                    "tsir_tflops": flops / t_ts / 1e12,
                    "cublas_tflops": flops / t_cb / 1e12,
                    "ratio": t_cb / t_ts,
                    "rel_err": err,
                }
            )
    src = torch.randn(1 << 28, device="cuda")
    dst = torch.empty_like(src)
    copy_bw = 2 * src.numel() * 4 / bench(lambda: dst.copy_(src))  # noqa: F821  (called before the del below)
    del src, dst
    for name, N, build, extra in (
        ("softmax", 4096, softmax, 0),
        ("layer_norm", 4096, layer_norm, 2),
    ):
        M = 65536
        k = tsir.compile(build(N, 1), target="cuda")
        x = torch.randn(M, N, device="cuda")
        y = torch.empty_like(x)
        params = [torch.randn(N, device="cuda") for _ in range(extra)]
        k(x, *params, y)
        t = bench(lambda: k(x, *params, y))
        if name == "softmax":
            t_ref = bench(
                lambda: torch.softmax(x, dim=1, out=y) if False else torch.softmax(x, dim=1)
            )
        else:
            t_ref = bench(lambda: torch.nn.functional.layer_norm(x, (N,), params[0], params[1]))
        nbytes = 2 * M * N * 4
        rows.append(
            {
                "case": f"{name} {M}x{N} fp32",
                "tsir_GBps": nbytes / t / 1e9,
                "torch_GBps": nbytes / t_ref / 1e9,
                "of_copy": nbytes / t / copy_bw,
            }
        )
    print(f"device: {torch.cuda.get_device_name()}, copy bandwidth {copy_bw / 1e9:.0f} GB/s")
    for r in rows:
        if "tsir_tflops" in r:
            print(
                f"{r['case']:28s} tsir {r['tsir_tflops']:7.1f} TFLOP/s  cuBLAS {r['cublas_tflops']:7.1f}  "
                f"ratio {r['ratio']:.2f}  rel_err {r['rel_err']:.1e}"
            )
        else:
            print(
                f"{r['case']:28s} tsir {r['tsir_GBps']:7.0f} GB/s  torch {r['torch_GBps']:7.0f}  "
                f"of copy {r['of_copy']:.1%}"
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": torch.cuda.get_device_name(), "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
