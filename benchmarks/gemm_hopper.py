"""The compiled tile program on Hopper: examples/gemm.py's `matmul` (T.gemm, T.copy, T.Pipelined)
compiled by tsir for sm_90a, timed in one run beside cuBLAS (torch.matmul, torch._scaled_mm for
fp8), a Triton matmul and the phase-1 hand-specialized kernel (tsir/codegen/hopper_gemm.py).

    python benchmarks/gemm_hopper.py [--out DIR] [--only SUBSTRING] [--no-sanitize]

Problems: fp16/bf16 4096^3 and 8192^3, ragged 4095x4097x4096 (dense: B's row pitch is not
16-byte aligned, so tsir's B loads fall back to cp.async) and M=1000, fp8 e4m3 8192^3 (with
scales). Each implementation is checked against an fp32 reference (output poisoned with NaN
first), then timed: median of single launches with CUDA events, rotating through input copies so
L2 never holds them (benchmarks/hopper_gemm.py's Inputs/check/time_ms). Each case runs in a worker
process (a crash or hang costs that case only). Also: the cold compile time of the Hopper GEMM
(IR -> cubin, cache off, a fresh process) and compute-sanitizer racecheck/synccheck on a small
compiled GEMM. Prints a table last; writes gemm_hopper.json and logs to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent.parent / "examples"))

from hopper_gemm import PROBLEMS as HAND_PROBLEMS  # noqa: E402
from hopper_gemm import Inputs, Problem, _mm, _pump, _row, _scaled, check, poison, table  # noqa: E402

DEADLINE_S = 215  # no case starts after this (seconds from the start): the run stays under 6 min
CASE_TIMEOUT_S = 60

# In order of importance: cases past the time budget are skipped.
PROBLEMS = {
    "f16_4096": Problem("float16", 4096, 4096, 4096),
    "f16_8192": Problem("float16", 8192, 8192, 8192),
    "fp8_8192": Problem("float8_e4m3", 8192, 8192, 8192),
    "bf16_4096": Problem("bfloat16", 4096, 4096, 4096),
    "bf16_8192": Problem("bfloat16", 8192, 8192, 8192),
    "f16_m1000": Problem("float16", 1000, 4096, 4096),
    "f16_4095x4097x4096": Problem("float16", 4095, 4097, 4096),
}
assert set(PROBLEMS) <= set(HAND_PROBLEMS)

# tsir configurations of the tile program: (block_m, block_n, block_k, threads, stages, persistent)
# and, optionally, the example's epilogue ("smem": through a padded shared tile, 16-byte stores;
# "shared": TileLang's unpadded tile, which sm_90a swizzles and stores by TMA).
CONFIGS_16 = {
    "128x256x64_s4_p": (128, 256, 64, 256, 4, True),
    "128x256x64_s3_p_shared": (128, 256, 64, 256, 3, True, "shared"),
    "128x256x64_s3_p_smem": (128, 256, 64, 256, 3, True, "smem"),
    "128x256x64_s4": (128, 256, 64, 256, 4, False),
    "128x256x64_s3_p": (128, 256, 64, 256, 3, True),
    "256x128x64_s4_p": (256, 128, 64, 256, 4, True),
    "128x128x64_s6_p": (128, 128, 64, 256, 6, True),
    "example_128x128x32_s3": (128, 128, 32, 128, 3, False),
}
CONFIGS_8 = {
    "128x256x128_s4_p": (128, 256, 128, 256, 4, True),
    "128x256x128_s4": (128, 256, 128, 256, 4, False),
    "128x128x128_s6_p": (128, 128, 128, 256, 6, True),
}


# 8192^3 (64 x 32 output tiles of 128 x 256 on 132 SMs) also tries other rasterization panels
# (the 8th entry: T.use_swizzle's width, 8 by default; the 9th its order, "row" by default: "col"
# walks panels of block rows, by fastest) and the 256 x 128 tile.
CONFIGS_BIG = {
    "128x256x64_s3_p_shared_c8": (128, 256, 64, 256, 3, True, "shared", 8, "col"),
    "128x256x64_s3_p_shared_c4": (128, 256, 64, 256, 3, True, "shared", 4, "col"),
    "128x256x64_s3_p_shared_c16": (128, 256, 64, 256, 3, True, "shared", 16, "col"),
    "128x256x64_s4_p_c8": (128, 256, 64, 256, 4, True, "none", 8, "col"),
    "128x256x64_s4_p_w4": (128, 256, 64, 256, 4, True, "none", 4),
    "128x256x64_s4_p_w16": (128, 256, 64, 256, 4, True, "none", 16),
    "128x256x64_s3_p_shared_w4": (128, 256, 64, 256, 3, True, "shared", 4),
    "128x256x64_s3_p_smem_w4": (128, 256, 64, 256, 3, True, "smem", 4),
    "128x256x64_s3_p_smem_w16": (128, 256, 64, 256, 3, True, "smem", 16),
    "256x128x64_s3_p_smem": (256, 128, 64, 256, 3, True, "smem"),
}

# Every configuration on fp16 4096^3; the first three (the likely best) elsewhere, for time.
_FULL = "f16_4096"


def configs(p: Problem, pname: str = _FULL) -> dict[str, tuple[Any, ...]]:
    if p.dtype.startswith("float8"):
        return CONFIGS_8
    if pname == _FULL:
        return CONFIGS_16
    first = dict(list(CONFIGS_16.items())[:3])
    return {**first, **CONFIGS_BIG} if p.m >= 8192 else first


def program(p: Problem, cfg: tuple[Any, ...]) -> Any:
    from gemm import matmul

    bm, bn, bk, threads, stages, persistent = cfg[:6]
    epilogue = cfg[6] if len(cfg) > 6 else "none"
    panel = cfg[7] if len(cfg) > 7 else 8
    order = cfg[8] if len(cfg) > 8 else "row"
    # fp8: K-major B and a scaled bfloat16 epilogue (as torch._scaled_mm computes it).
    fp8 = p.dtype.startswith("float8")
    extra = (
        {"out_dtype": "bfloat16", "transpose_B": True, "epilogue": "scale"}
        if fp8
        else {"epilogue": epilogue}
    )
    return matmul(
        p.m,
        p.n,
        p.k,
        bm=bm,
        bn=bn,
        bk=bk,
        threads=threads,
        num_stages=stages,
        dtype=p.dtype,
        persistent=persistent,
        swizzle=panel,
        swizzle_order=order,
        **extra,
    )


def cases() -> list[str]:
    out = []
    for name, p in PROBLEMS.items():
        base = (
            ["cublas", "cublas_fast_accum"]
            if p.dtype.startswith("float8")
            else ["cublas", "triton"]
        )
        if p.n % 8 == 0:  # the hand kernel needs 16-byte strides for its tensor maps
            base.append("hand")
        out += [f"{name}/{b}" for b in base] + [f"{name}/tsir:{c}" for c in configs(p, name)]
    return out


# -- worker ---------------------------------------------------------------------------------------


def _tsir_launches(p: Problem, cfg_name: str, inp: Inputs) -> tuple[list[Any], Any]:
    import tsir

    kernel = tsir.compile(
        program(p, {**CONFIGS_16, **CONFIGS_8, **CONFIGS_BIG}[cfg_name]), target="cuda"
    )
    if p.dtype.startswith("float8"):
        sa, sb = inp.scale_a.reshape(1), inp.scale_b.reshape(1)
        launches = [
            lambda i=i: kernel(inp.a[i], inp.b[i], sa, sb, inp.c[i]) for i in range(len(inp.a))
        ]
    else:
        launches = [lambda i=i: kernel(inp.a[i], inp.b[i], inp.c[i]) for i in range(len(inp.a))]
    return launches, kernel


def run_case(case: str, inputs: dict[str, Inputs]) -> dict[str, Any]:
    import torch
    from hopper_launch import HopperGemm, time_ms, triton_launcher
    from tsir.codegen.hopper_gemm import GemmConfig

    pname, impl = case.split("/", 1)
    p = PROBLEMS[pname]
    if pname not in inputs:
        inputs.clear()
        torch.cuda.empty_cache()
        inputs[pname] = Inputs(p)
    inp = inputs[pname]
    n = len(inp.a)
    reps = 30 if p.m * p.n * p.k >= 8192**3 else 60
    result: dict[str, Any] = {"case": case}
    fp8 = p.dtype.startswith("float8")
    if impl.startswith("tsir:") or impl == "hand":
        if impl == "hand":
            cfg = GemmConfig(
                a_dtype=p.dtype,
                b_dtype=p.dtype,
                out_dtype="bfloat16" if fp8 else p.dtype,
                block_k=128 if fp8 else 64,
            )
            gemm = HopperGemm.load(cfg)
            launches = [
                gemm.launcher(inp.a[i], inp.b[i], inp.c[i], inp.scale_a, inp.scale_b)
                for i in range(n)
            ]
        else:
            launches, kernel = _tsir_launches(p, impl[5:], inp)
            result["report"] = kernel.report
            result["compile_s"] = kernel.timings
        poison(inp.c[0])
        launches[0]()
        torch.cuda.synchronize()
        result["check"] = check(inp, inp.c[0])
    else:
        outs = [torch.empty(p.m, p.n, device="cuda", dtype=inp.out_dtype) for _ in range(n)]
        if impl == "cublas":
            launches = [
                _scaled(inp, i, outs[i], False) if fp8 else _mm(inp.a[i], inp.b[i], outs[i])
                for i in range(n)
            ]
        elif impl == "cublas_fast_accum":
            launches = [_scaled(inp, i, outs[i], True) for i in range(n)]
        else:
            launches = [triton_launcher(inp.a[i], inp.b[i], outs[i]) for i in range(n)]
        outs[0].fill_(float("nan"))
        launches[0]()
        torch.cuda.synchronize()
        result["check"] = check(inp, outs[0])
    if not result["check"]["ok"]:
        result["ok"] = False
        return result
    ms = time_ms(launches, reps)
    result.update(ok=True, ms=ms, tflops=p.flops / ms / 1e9, copies=n, reps=reps)
    return result


def worker(names: list[str]) -> None:
    inputs: dict[str, Inputs] = {}
    for case in names:
        print(f"START {case}", flush=True)
        try:
            result = run_case(case, inputs)
        except Exception as exc:
            result = {"case": case, "ok": False, "error": f"{type(exc).__name__}: {exc}"[:2000]}
        print("RESULT " + json.dumps(result, default=str), flush=True)
        if "error" in result:
            sys.exit(3)  # the CUDA context may be dead: a fresh worker continues


# -- compile time, sanitizer ----------------------------------------------------------------------


def _compile(key: tuple[str, str]) -> str:
    import tsir

    pname, cfg_name = key
    p = PROBLEMS[pname]
    start = time.perf_counter()
    tsir.compile(program(p, configs(p, pname)[cfg_name]), target="sm_90a")
    return f"{pname}/{cfg_name}: {time.perf_counter() - start:.2f} s"


def precompile(jobs: int, todo: list[str]) -> list[str]:
    """Fill tsir's disk cache for the tsir cases in `todo` (workers then load, not compile)."""
    keys = [(c.split("/")[0], c.split("/tsir:", 1)[1]) for c in todo if "/tsir:" in c]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(_compile, keys))


def cold_compile() -> dict[str, Any]:
    """IR -> cubin of the fp16 4096^3 GEMM (128x256x64, 4 stages, persistent) with the cache off,
    in a fresh process: the first compile (cold) and two more of the same program."""
    code = (
        "import sys, time, json; sys.path[:0] = [%r, %r]\n"
        "import tsir\nfrom gemm_hopper import PROBLEMS, CONFIGS_16, program\n"
        "out = []\n"
        "for i in range(3):\n"
        "    f = program(PROBLEMS['f16_4096'], CONFIGS_16['128x256x64_s4_p'])\n"
        "    t = time.perf_counter(); k = tsir.compile(f, target='sm_90a')\n"
        "    out.append(dict(k.timings, wall=time.perf_counter() - t))\n"
        "print('COLD ' + json.dumps(out))\n"
    ) % (str(HERE.parent), str(HERE.parent.parent / "examples"))
    env = dict(os.environ, TSIR_DISABLE_CACHE="1")
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    line = next((x for x in done.stdout.splitlines() if x.startswith("COLD ")), None)
    if line is None:
        return {"error": (done.stdout + done.stderr)[-1500:]}
    runs = json.loads(line[5:])
    return {"first": runs[0], "again": runs[1:], "target_s": 0.5}


def sanitize_case() -> int:
    import torch
    from gemm import matmul

    import tsir

    m, n, k = 256, 512, 320
    f = matmul(m, n, k, bm=128, bn=256, bk=64, threads=256, num_stages=3, persistent=True)
    kernel = tsir.compile(f, target="cuda")
    a = torch.randn(m, k, device="cuda", dtype=torch.float16)
    b = torch.randn(k, n, device="cuda", dtype=torch.float16)
    c = torch.full((m, n), float("nan"), device="cuda", dtype=torch.float16)
    kernel(a, b, c)
    torch.cuda.synchronize()
    ref = a.float() @ b.float()
    err = ((c.float() - ref).abs().max() / ref.abs().max()).item()
    print(
        f"sanitize case {m}x{n}x{k} f16 (wgmma, TMA ring, producer warpgroup, persistent): rel_err {err:.2e}"
    )
    return 0 if err < 1e-2 else 1


def sanitize(out: Path) -> dict[str, str]:
    import shutil

    tool = shutil.which("compute-sanitizer") or "/usr/local/cuda/bin/compute-sanitizer"
    found: dict[str, str] = {}
    for name in ("racecheck", "synccheck"):
        if not Path(tool).exists():
            found[name] = "compute-sanitizer not found"
            continue
        cmd = [
            tool,
            "--tool",
            name,
            "--error-exitcode",
            "9",
            sys.executable,
            str(HERE),
            "--sanitize",
        ]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=45, check=False)
            text = done.stdout + done.stderr
            (out / f"sanitizer_{name}.log").write_text(text)
            summary = [x for x in text.splitlines() if "ERROR SUMMARY" in x or "rel_err" in x]
            found[name] = f"exit {done.returncode}: " + " / ".join(summary)[:300]
        except subprocess.TimeoutExpired:
            found[name] = "timeout"
    return found


# -- driver ---------------------------------------------------------------------------------------


def run_workers(todo: list[str], log: Any, start: float) -> dict[str, dict[str, Any]]:
    import queue
    import threading

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
        threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True).start()
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
        if current is not None:
            results[current] = {
                "case": current,
                "ok": False,
                "error": "worker died: " + " | ".join(tail),
            }
            todo.remove(current)
    return results


def best_table(results: dict[str, dict[str, Any]]) -> str:
    lines = [
        f"{'problem':<20} {'cuBLAS':>8} {'Triton':>8} {'hand':>8} {'tsir best':>9} {'x cuBLAS':>9}  config"
    ]
    for pname in PROBLEMS:
        rows = {c.split("/", 1)[1]: r for c, r in results.items() if c.startswith(pname + "/")}

        def tf(key: str, rows: dict[str, dict[str, Any]] = rows) -> float:
            r = rows.get(key, {})
            return r.get("tflops", 0.0) if r.get("ok") else 0.0

        tsirs = {k: tf(k) for k in rows if k.startswith("tsir:")}
        best = max(tsirs, key=lambda k: tsirs[k], default=None)
        base = tf("cublas")
        ratio = f"{tsirs[best] / base:9.2f}" if best and base else f"{'-':>9}"
        lines.append(
            f"{pname:<20} {base:8.1f} {tf('triton'):8.1f} {tf('hand'):8.1f} "
            f"{tsirs.get(best, 0.0) if best else 0.0:9.1f} {ratio}  {best or '-'}"
        )
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.environ.get("OUT", "out"))
    ap.add_argument("--only", default="")
    ap.add_argument("--no-sanitize", action="store_true")
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
    cold = cold_compile()
    print(f"cold compile: {json.dumps(cold)[:600]}", flush=True)
    todo = [c for c in cases() if any(o in c for o in args.only.split(","))]
    compiled = precompile(args.jobs, todo)
    print(
        f"compiled {len(compiled)} tsir variants in {time.perf_counter() - start:.1f} s", flush=True
    )
    san = {} if args.no_sanitize else sanitize(out)
    for name, text in san.items():
        print(f"compute-sanitizer {name}: {text}", flush=True)
    with open(out / "gemm_hopper.log", "w") as log:
        results = run_workers(todo, log, start)
    summary = {
        "results": results,
        "sanitizer": san,
        "cold_compile": cold,
        "compile": compiled,
        "configs": {"16-bit": CONFIGS_16, "fp8": CONFIGS_8},
        "seconds": time.perf_counter() - start,
    }
    (out / "gemm_hopper.json").write_text(json.dumps(summary, indent=1, default=str))
    print()
    for name, text in san.items():
        print(f"compute-sanitizer {name}: {text}")
    first = cold.get("first", {})
    # wall - total: what tsir.compile imports on first use (the pipeline, the code generator, the
    # runtime) before its own timer starts
    imports = first.get("wall", 0) - first.get("total", 0)
    print(
        f"cold compile (IR -> cubin, target <= 0.5 s wall): {first.get('wall', float('nan')):.3f} s "
        f"(imports {imports:.3f}, lower {first.get('lower', 0):.3f}, codegen {first.get('codegen', 0):.3f}, nvrtc {first.get('nvrtc', 0):.3f}); "
        f"again {[round(r.get('wall', 0), 3) for r in cold.get('again', [])]}"
    )
    print(table_for(results))
    print(best_table(results))
    print(f"total {time.perf_counter() - start:.0f} s; full results in {out / 'gemm_hopper.json'}")
    return 0 if all(r.get("ok") for r in results.values()) else 1


def table_for(results: dict[str, dict[str, Any]]) -> str:
    """benchmarks/hopper_gemm.py's per-implementation table, over this run's problems."""
    import hopper_gemm

    saved = hopper_gemm.PROBLEMS
    hopper_gemm.PROBLEMS = PROBLEMS  # type: ignore[assignment]
    try:
        return table(results)
    finally:
        hopper_gemm.PROBLEMS = saved  # type: ignore[assignment]


if __name__ == "__main__":
    sys.exit(main())
