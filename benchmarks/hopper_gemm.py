"""Hopper GEMM check and benchmark: tsir's generated wgmma/TMA kernels (tsir/codegen/hopper_gemm.py)
side by side with cuBLAS (torch.matmul, torch._scaled_mm for fp8) and a Triton matmul, in one run.

    python benchmarks/hopper_gemm.py [--out DIR] [--only SUBSTRING] [--no-sanitize] [--compile-only]

For every problem (fp16/bf16 4096^3 and 8192^3, ragged 4095x4097x4096, M=1000, fp8 e4m3 8192^3)
each implementation is first checked against an fp32 reference on random inputs with its output
poisoned (NaN) beforehand, then timed: median of many launches timed one by one with CUDA events,
rotating through copies of the inputs so that L2 never holds them. tsir variants are checked with
mbarrier waits that trap after ~1 s without progress (a hang becomes an error), then timed
without. Each implementation runs in a worker process watched by this driver: a crash or a hang
costs that case only. Finally compute-sanitizer racecheck and synccheck run one small GEMM.

Prints a table last; writes hopper_gemm.json and the logs to --out (default $OUT, else ./out).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from tsir.codegen.hopper_gemm import GemmConfig  # noqa: E402

HERE = Path(__file__).resolve()
DEADLINE_S = 250  # stop starting cases after this; the whole script must stay under 6 minutes
SANITIZE_BY_S = 230  # run compute-sanitizer only when the cases are done by then
CASE_TIMEOUT_S = 90
CHECK_TIMEOUT_CYCLES = 2_000_000_000  # ~1 s at 1.98 GHz


@dataclass(frozen=True)
class Problem:
    dtype: str
    m: int
    n: int
    k: int
    pad: bool = False
    """Row pitch of B and C rounded up to 8 elements (TMA needs 16-byte strides)."""

    @property
    def flops(self) -> float:
        return 2.0 * self.m * self.n * self.k


PROBLEMS = {
    "f16_4096": Problem("float16", 4096, 4096, 4096),
    "bf16_4096": Problem("bfloat16", 4096, 4096, 4096),
    "f16_8192": Problem("float16", 8192, 8192, 8192),
    "bf16_8192": Problem("bfloat16", 8192, 8192, 8192),
    "f16_4095x4097x4096": Problem("float16", 4095, 4097, 4096, pad=True),
    "f16_m1000": Problem("float16", 1000, 4096, 4096),
    # A short K: each tile's epilogue is 1/16 of its work (1/128 at 8192^3).
    "f16_8192x8192x1024": Problem("float16", 8192, 8192, 1024),
    "fp8_8192": Problem("float8_e4m3", 8192, 8192, 8192),
}

_BASE16 = [
    GemmConfig(block_m=128, block_n=256, block_k=64, stages=4, persistent=True),
    GemmConfig(block_m=128, block_n=256, block_k=64, stages=4, persistent=True, cluster_m=2),
    GemmConfig(block_m=128, block_n=256, block_k=64, stages=4, persistent=False, cluster_m=2),
    GemmConfig(block_m=128, block_n=256, block_k=64, stages=4, persistent=False),
    GemmConfig(block_m=128, block_n=256, block_k=64, stages=3, persistent=True),
    GemmConfig(block_m=128, block_n=256, block_k=64, stages=3, persistent=True, tma_store=True),
    GemmConfig(
        block_m=128, block_n=256, block_k=64, stages=3, persistent=True, tma_store=True, cluster_m=2
    ),
    GemmConfig(block_m=256, block_n=128, block_k=64, stages=4, persistent=True),
    GemmConfig(block_m=128, block_n=128, block_k=64, stages=6, persistent=True),
]
_BASE8 = [
    GemmConfig(block_m=128, block_n=256, block_k=128, stages=4, persistent=True),
    GemmConfig(block_m=128, block_n=256, block_k=128, stages=4, persistent=True, cluster_m=2),
    GemmConfig(block_m=128, block_n=256, block_k=128, stages=4, persistent=False),
    GemmConfig(block_m=128, block_n=128, block_k=128, stages=6, persistent=True),
]


def variants(p: Problem) -> list[GemmConfig]:
    if p.dtype.startswith("float8"):
        return [replace(c, a_dtype=p.dtype, b_dtype=p.dtype, out_dtype="bfloat16") for c in _BASE8]
    return [replace(c, a_dtype=p.dtype, b_dtype=p.dtype, out_dtype=p.dtype) for c in _BASE16]


def cases() -> list[str]:
    out = []
    for name, p in PROBLEMS.items():
        base = (
            ["cublas", "cublas_fast_accum"]
            if p.dtype.startswith("float8")
            else ["cublas", "triton"]
        )
        out += [f"{name}/{b}" for b in base] + [f"{name}/tsir:{c.name}" for c in variants(p)]
    return out


# -- worker ---------------------------------------------------------------------------------------


class Inputs:
    """Copies of A, B (and fp8 scales) for L2 rotation, outputs, and the fp32 reference."""

    def __init__(self, p: Problem) -> None:
        import torch

        torch.manual_seed(0)
        self.p = p
        fp8 = p.dtype.startswith("float8")
        tdt = torch.float8_e4m3fn if fp8 else getattr(torch, p.dtype)
        self.out_dtype = torch.bfloat16 if fp8 else tdt
        ld = -(-p.n // 8) * 8 if p.pad else p.n
        per_copy = (p.m * p.k + p.k * ld) * (1 if fp8 else 2) + p.m * ld * 2
        copies = max(1, min(6, math.ceil(200e6 / per_copy)))
        self.a, self.b, self.c = [], [], []
        for _ in range(copies):
            a = torch.randn(p.m, p.k, device="cuda")
            if fp8:  # B stored N x K (K-major), as torch._scaled_mm's column-major (K, N) operand
                b = torch.randn(p.n, p.k, device="cuda")
            else:
                b = torch.randn(p.k, ld, device="cuda")[:, : p.n]
            self.a.append(a.to(tdt))
            self.b.append(b.to(tdt) if not p.pad else _padded(b.to(tdt), p.k, p.n, ld))
            self.c.append(torch.empty(p.m, ld, device="cuda", dtype=self.out_dtype)[:, : p.n])
        self.scale_a = torch.tensor(0.5, device="cuda")
        self.scale_b = torch.tensor(0.25, device="cuda")
        a32, b32 = self.a[0].float(), self.b[0].float()
        if fp8:
            self.ref = (a32 @ b32.t()) * 0.125
        else:
            self.ref = a32 @ b32
        self.tol = 1e-2 if p.dtype == "float16" else 3e-2


def _padded(t: Any, rows: int, cols: int, ld: int) -> Any:
    import torch

    buf = torch.empty(rows, ld, device="cuda", dtype=t.dtype)
    buf[:, :cols] = t
    return buf[:, :cols]


def check(inp: Inputs, c: Any) -> dict[str, Any]:
    """Error of `c` against the reference; NaN left from the poison; pad columns untouched."""
    import torch

    cv = c.float()
    nan = int(torch.isnan(cv).sum())
    diff = (cv - inp.ref).abs()
    scale = inp.ref.abs().max().item()
    err = float(torch.nan_to_num(diff, nan=math.inf).max().item() / scale)
    out: dict[str, Any] = {"rel_err": err, "nan": nan, "ok": nan == 0 and err <= inp.tol}
    if c.stride(0) > c.shape[1]:  # padded rows: the columns past N must still hold the poison
        full = c.as_strided((c.shape[0], c.stride(0)), (c.stride(0), 1))
        pad_ok = bool(torch.isnan(full[:, c.shape[1] :].float()).all())
        out["pad_untouched"] = pad_ok
        out["ok"] = out["ok"] and pad_ok
    if not out["ok"]:
        bad = torch.nan_to_num(diff, nan=math.inf) > inp.tol * scale
        idx = bad.nonzero()[:5].tolist()
        out["bad_rows_frac"] = float(bad.any(dim=1).float().mean())
        out["bad_cols_frac"] = float(bad.any(dim=0).float().mean())
        out["first_bad"] = [(i, j, float(cv[i, j]), float(inp.ref[i, j])) for i, j in idx]
    return out


def poison(c: Any) -> None:
    c.as_strided((c.shape[0], c.stride(0)), (c.stride(0), 1)).fill_(float("nan"))


def run_case(case: str, inputs: dict[str, Inputs]) -> dict[str, Any]:
    import torch
    from hopper_launch import HopperGemm, time_ms, triton_launcher

    pname, impl = case.split("/", 1)
    p = PROBLEMS[pname]
    if pname not in inputs:
        inputs.clear()  # one problem's copies at a time
        torch.cuda.empty_cache()
        inputs[pname] = Inputs(p)
    inp = inputs[pname]
    n = len(inp.a)
    reps = 30 if p.m * p.n * p.k >= 8192**3 else 60
    result: dict[str, Any] = {"case": case}
    if impl.startswith("tsir:"):
        cfg = next(c for c in variants(p) if c.name == impl[5:])
        checked = HopperGemm.load(replace(cfg, mbarrier_timeout_cycles=CHECK_TIMEOUT_CYCLES))
        fast = HopperGemm.load(cfg)
        for gemm, what in ((checked, "check"), (fast, "timed build")):
            launch = gemm.launcher(inp.a[0], inp.b[0], inp.c[0], inp.scale_a, inp.scale_b)
            poison(inp.c[0])
            launch()
            torch.cuda.synchronize()
            result[what] = check(inp, inp.c[0])
            if not result[what]["ok"]:
                result.update(ok=False)
                return result
        launches = [
            fast.launcher(inp.a[i], inp.b[i], inp.c[i], inp.scale_a, inp.scale_b) for i in range(n)
        ]
        result["grid"] = fast.grid(p.m, p.n)
    else:
        outs = [torch.empty(p.m, p.n, device="cuda", dtype=inp.out_dtype) for _ in range(n)]
        if impl == "cublas":
            if p.dtype.startswith("float8"):
                launches = [_scaled(inp, i, outs[i], False) for i in range(n)]
            else:
                launches = [_mm(inp.a[i], inp.b[i], outs[i]) for i in range(n)]
        elif impl == "cublas_fast_accum":
            launches = [_scaled(inp, i, outs[i], True) for i in range(n)]
        else:
            launches = [triton_launcher(inp.a[i], inp.b[i], outs[i]) for i in range(n)]
        outs[0].fill_(float("nan"))
        launches[0]()
        torch.cuda.synchronize()
        result["check"] = check(inp, outs[0])
    ms = time_ms(launches, reps)
    result.update(ok=result["check"]["ok"], ms=ms, tflops=p.flops / ms / 1e9, copies=n, reps=reps)
    return result


def _mm(a: Any, b: Any, c: Any) -> Any:
    import torch

    return lambda: torch.mm(a, b, out=c)


def _scaled(inp: Inputs, i: int, out: Any, fast: bool) -> Any:
    import torch

    a, bt = inp.a[i], inp.b[i].t()
    return lambda: torch._scaled_mm(
        a, bt, inp.scale_a, inp.scale_b, out_dtype=torch.bfloat16, use_fast_accum=fast, out=out
    )


def worker(names: list[str]) -> None:
    inputs: dict[str, Inputs] = {}
    for case in names:
        print(f"START {case}", flush=True)
        try:
            result = run_case(case, inputs)
        except Exception as exc:  # noqa: BLE001 - reported per case; the driver decides
            result = {"case": case, "ok": False, "error": f"{type(exc).__name__}: {exc}"[:2000]}
        print("RESULT " + json.dumps(result), flush=True)
        if "error" in result:
            sys.exit(3)  # the CUDA context may be dead (a fault is sticky): start a fresh worker


# -- sanitizer case (no torch: a light process under compute-sanitizer) ---------------------------


def sanitize_case() -> int:
    import numpy as np
    from hopper_launch import HopperGemm
    from tsir.runtime import driver as drv

    m, n, k = 256, 512, 256
    cuda = drv.driver()
    prev = drv.activate(drv.primary_context(0))
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k)).astype(np.float16)
    b = rng.standard_normal((k, n)).astype(np.float16)

    class Dev:
        def __init__(self, host: Any) -> None:
            self.shape, self.dtype = host.shape, str(host.dtype)
            self.ptr = drv.check(cuda.cuMemAlloc(host.nbytes), "cuMemAlloc")
            drv.check(cuda.cuMemcpyHtoD(self.ptr, host.ctypes.data, host.nbytes), "HtoD")

        def data_ptr(self) -> int:
            return int(self.ptr)

        def stride(self, dim: int | None = None) -> Any:
            strides = (self.shape[1], 1)
            return strides if dim is None else strides[dim]

    da, db, dc = Dev(a), Dev(b), Dev(np.full((m, n), np.nan, np.float16))
    gemm = HopperGemm.load(GemmConfig())
    gemm.launcher(da, db, dc, stream=lambda: 0)()
    drv.check(cuda.cuCtxSynchronize(), "synchronize")
    c = np.empty((m, n), np.float16)
    drv.check(cuda.cuMemcpyDtoH(c.ctypes.data, dc.ptr, c.nbytes), "DtoH")
    drv.restore(prev)
    ref = a.astype(np.float32) @ b.astype(np.float32)
    err = float(np.nanmax(np.abs(c.astype(np.float32) - ref)) / np.abs(ref).max())
    print(f"sanitize case 256x512x256 f16: rel_err {err:.2e}, nan {int(np.isnan(c).sum())}")
    return 0 if err < 1e-2 and not np.isnan(c).any() else 1


# -- driver ---------------------------------------------------------------------------------------


def _compile(cfg: GemmConfig) -> str:
    from hopper_launch import compile_variant

    start = time.perf_counter()
    compile_variant(cfg)
    return f"{cfg.name}: {time.perf_counter() - start:.2f} s"


def precompile(jobs: int) -> list[str]:
    cfgs = {c for p in PROBLEMS.values() for c in variants(p)}
    cfgs |= {replace(c, mbarrier_timeout_cycles=CHECK_TIMEOUT_CYCLES) for c in cfgs}
    cfgs.add(GemmConfig())
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        return list(
            pool.map(_compile, sorted(cfgs, key=lambda c: (c.name, c.mbarrier_timeout_cycles)))
        )


def _pump(stream: Any, lines: queue.Queue[str | None]) -> None:
    """Forward a worker's output lines into its own queue; None at the end."""
    for line in stream:
        lines.put(line)
    lines.put(None)


def run_workers(todo: list[str], log: Any, start: float) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    while todo:
        if time.perf_counter() - start > DEADLINE_S:
            for case in todo:
                results[case] = {"case": case, "ok": False, "error": "skipped: time budget"}
            break
        proc = subprocess.Popen(
            [sys.executable, str(HERE), "--worker", *todo],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        lines: queue.Queue[str | None] = queue.Queue()
        reader = threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True)
        reader.start()
        current, tail = None, []
        while True:
            try:
                line = lines.get(timeout=CASE_TIMEOUT_S)
            except queue.Empty:
                proc.kill()
                line = None
                if current is not None:
                    results[current] = {"case": current, "ok": False, "error": "timeout (hang?)"}
                    todo.remove(current)
                    current = None
            if line is None:
                break
            log.write(line)
            if line.startswith("START "):
                current, tail = line[6:].strip(), []
            elif line.startswith("RESULT "):
                res = json.loads(line[7:])
                results[res["case"]] = res
                todo.remove(res["case"])
                print(_row(res), flush=True)
                current = None
            else:
                tail = (tail + [line.rstrip()])[-20:]
        proc.wait()
        if current is not None:  # the worker died inside a case
            results[current] = {
                "case": current,
                "ok": False,
                "error": "worker died: " + " | ".join(tail),
            }
            todo.remove(current)
    return results


def sanitize(out: Path) -> dict[str, str]:
    tool = shutil.which("compute-sanitizer") or "/usr/local/cuda/bin/compute-sanitizer"
    found: dict[str, str] = {}
    for check_name in ("racecheck", "synccheck"):
        if not Path(tool).exists():
            found[check_name] = "compute-sanitizer not found"
            continue
        cmd = [
            tool,
            "--tool",
            check_name,
            "--error-exitcode",
            "9",
            sys.executable,
            str(HERE),
            "--sanitize",
        ]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
            text = done.stdout + done.stderr
            (out / f"sanitizer_{check_name}.log").write_text(text)
            summary = [x for x in text.splitlines() if "ERROR SUMMARY" in x or "rel_err" in x]
            found[check_name] = f"exit {done.returncode}: " + " / ".join(summary)[:300]
        except subprocess.TimeoutExpired:
            found[check_name] = "timeout"
    return found


def _row(r: dict[str, Any]) -> str:
    if "ms" in r:
        err = r.get("check", {}).get("rel_err", float("nan"))
        return f"{r['case']:<52} {r['ms']:8.3f} ms {r['tflops']:7.1f} TFLOP/s  err {err:.1e}  {'ok' if r['ok'] else 'WRONG'}"
    why = r.get("error") or json.dumps({k: r.get(k) for k in ("check", "timed build")})
    return f"{r['case']:<52} FAILED {why[:300]}"


def table(results: dict[str, dict[str, Any]]) -> str:
    lines = [f"{'problem':<20} {'implementation':<32} {'TFLOP/s':>8} {'x cuBLAS':>9}  check"]
    for pname in PROBLEMS:
        rows = {c.split("/", 1)[1]: r for c, r in results.items() if c.startswith(pname + "/")}
        base = rows.get("cublas", {}).get("tflops")
        for impl, r in rows.items():
            tf = r.get("tflops")
            rel = f"{tf / base:9.2f}" if tf and base else f"{'-':>9}"
            status = "ok" if r.get("ok") else (r.get("error") or "WRONG")[:40]
            lines.append(f"{pname:<20} {impl:<32} {tf or 0:8.1f} {rel}  {status}")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.environ.get("OUT", "out"))
    ap.add_argument(
        "--only",
        default="",
        help="run only cases containing one of these comma-separated substrings",
    )
    ap.add_argument("--no-sanitize", action="store_true")
    ap.add_argument("--compile-only", action="store_true", help="NVRTC every variant (no GPU)")
    ap.add_argument("--jobs", type=int, default=min(16, os.cpu_count() or 1))
    ap.add_argument("--worker", nargs="*", help=argparse.SUPPRESS)
    ap.add_argument("--sanitize", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker is not None:
        worker(args.worker)
        return 0
    if args.sanitize:
        return sanitize_case()
    start = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    compiled = precompile(args.jobs)
    print(f"compiled {len(compiled)} variants in {time.perf_counter() - start:.1f} s", flush=True)
    if args.compile_only:
        print("\n".join(compiled))
        return 0
    todo = [c for c in cases() if any(o in c for o in args.only.split(","))]
    with open(out / "hopper_gemm.log", "w") as log:
        results = run_workers(todo, log, start)
    san = {} if args.no_sanitize or time.perf_counter() - start > SANITIZE_BY_S else sanitize(out)
    summary = {
        "results": results,
        "sanitizer": san,
        "compile": compiled,
        "variants": {c.name: asdict(c) for p in PROBLEMS.values() for c in variants(p)},
        "seconds": time.perf_counter() - start,
    }
    (out / "hopper_gemm.json").write_text(json.dumps(summary, indent=1))
    print()
    for name, text in san.items():
        print(f"compute-sanitizer {name}: {text}")
    print(table(results))
    print(f"total {time.perf_counter() - start:.0f} s; full results in {out / 'hopper_gemm.json'}")
    return 0 if all(r.get("ok") for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
