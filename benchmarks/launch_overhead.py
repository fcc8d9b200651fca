"""Host overhead of one kernel call: tsir's `Launcher` against a bare `cuLaunchKernel` and torch.

Run on a GPU: `python benchmarks/launch_overhead.py [--iters 20000] [--repeats 7] [--json out.json]`.

Every case launches an empty kernel `empty3(const float*, const float*, float*, int n)` (compiled
here with cuda.bindings.nvrtc for the device's architecture, no headers) or, for torch, `x.add_(1)` on
a 1-element tensor. A case is timed by wall clock over `--iters` calls after a warm-up; the cases
take turns, `--repeats` rounds, and the table shows the median and the minimum over the rounds. "enqueue" is the host time per call until the last call returns
(what the caller pays); "with sync" adds the final synchronize (it stays close when the GPU keeps up).
The "python only" row runs the same Launcher with cuLaunchKernel replaced by a no-op: the Python work
tsir adds on this CPU. Nothing here depends on unfinished parts of tsir.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

KERNEL = r"""
extern "C" __global__ void empty3(const float* a, const float* b, float* c, int n) {}
"""
TARGET_US = 10.0


def compile_empty(arch: str) -> bytes:
    from cuda.bindings import nvrtc

    err, prog = nvrtc.nvrtcCreateProgram(KERNEL.encode(), b"empty3.cu", 0, [], [])
    try:
        opts = [f"-arch={arch}".encode()]
        (err,) = nvrtc.nvrtcCompileProgram(prog, len(opts), opts)
        if err != 0:
            _, size = nvrtc.nvrtcGetProgramLogSize(prog)
            log = b" " * size
            nvrtc.nvrtcGetProgramLog(prog, log)
            sys.exit(f"NVRTC could not compile for {arch}: {log.decode(errors='replace')}")
        _, size = nvrtc.nvrtcGetCUBINSize(prog)
        cubin = b" " * size
        nvrtc.nvrtcGetCUBIN(prog, cubin)
        return cubin
    finally:
        nvrtc.nvrtcDestroyProgram(prog)


def sample(fn: Callable[[], Any], sync: Callable[[], None], iters: int) -> tuple[float, float]:
    """One timing of `iters` calls: (us per call until the last returns, us per call incl. sync)."""
    sync()
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    t1 = time.perf_counter()
    sync()
    t2 = time.perf_counter()
    return (t1 - t0) / iters * 1e6, (t2 - t0) / iters * 1e6


def run_cases(
    cases: list[tuple[str, Callable[[], Any]]], sync: Callable[[], None], iters: int, repeats: int
) -> dict[str, Any]:
    """Warm every case up, then time them round-robin, `repeats` rounds, so that drift of the
    machine (clocks, neighbours) touches every case alike. Median and min over the rounds."""
    samples: dict[str, list[tuple[float, float]]] = {}
    errors: dict[str, str] = {}
    for label, fn in cases:
        try:
            for _ in range(min(2000, iters)):
                fn()
            sync()
            samples[label] = []
        except Exception as e:  # noqa: BLE001  (report it in the table, keep the other rows)
            errors[label] = f"{type(e).__name__}: {e}"
    gc_was = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeats):
            for label, fn in cases:
                if label in samples:
                    samples[label].append(sample(fn, sync, iters))
    finally:
        if gc_was:
            gc.enable()
    results: dict[str, Any] = {}
    for label, _ in cases:
        if label in errors:
            results[label] = {"error": errors[label]}
            continue
        enqueue = [e for e, _ in samples[label]]
        results[label] = {
            "median_us": statistics.median(enqueue),
            "min_us": min(enqueue),
            "median_with_sync_us": statistics.median(t for _, t in samples[label]),
            "all_us": enqueue,
        }
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--iters", type=int, default=20000)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--device", type=int, default=0)
    ap.add_argument("--arch", default="", help="NVRTC -arch (default: sm_XY of the device)")
    ap.add_argument("--json", default="", help="write the results here as JSON")
    args = ap.parse_args()

    from tsir.runtime import driver as drv
    from tsir.runtime.dlpack import RawTensor, from_dlpack
    from tsir.runtime.launch import HostProgram, KernelArg, Launcher, LaunchStep, TensorParam

    d = drv.driver()
    dev = args.device
    major, minor = drv.compute_capability(dev)
    ctx = drv.primary_context(dev)
    drv.check(d.cuCtxSetCurrent(ctx), "cuCtxSetCurrent")  # what torch does on first use
    name = drv.check(
        d.cuDeviceGetName(256, drv.check(d.cuDeviceGet(dev), "cuDeviceGet")), "cuDeviceGetName"
    )
    name = (
        name.split(b"\0", 1)[0].decode() if isinstance(name, bytes) else str(name)
    ).strip() or "?"
    cubin = compile_empty(args.arch or f"sm_{major}{minor}")
    n = 1024

    torch = None
    try:
        import torch as _torch

        if _torch.cuda.is_available():
            torch = _torch
            torch.cuda.set_device(dev)
    except ImportError:
        pass
    if torch is not None:
        tensors = [torch.empty(n, device=f"cuda:{dev}") for _ in range(3)]
        kind = f"torch {torch.__version__}"

        def sync() -> None:
            torch.cuda.synchronize(dev)
    else:
        ptrs = [drv.check(d.cuMemAlloc(4 * n), "cuMemAlloc") for _ in range(3)]
        tensors = [RawTensor(int(p), (n,), "float32", (2, dev)) for p in ptrs]
        kind = "RawTensor over cuMemAlloc (no torch with CUDA here)"

        def sync() -> None:
            drv.check(d.cuCtxSynchronize(), "cuCtxSynchronize")

    program = HostProgram(
        params=tuple(TensorParam(p, "float32", ("n",)) for p in "abc"),
        steps=(
            LaunchStep(
                "empty3",
                ("(n + 255) // 256", "1", "1"),
                (256, 1, 1),
                0,
                (
                    KernelArg("a", "ptr"),
                    KernelArg("b", "ptr"),
                    KernelArg("c", "ptr"),
                    KernelArg("n", "int32"),
                ),
            ),
        ),
    )
    launcher = Launcher(program, cubin, name="empty3")
    a, b, c = tensors
    launcher(a, b, c)
    sync()

    # The bare driver call, parameters packed once (the floor for any Python launcher).
    module = drv.load_module(cubin, dev)
    func = drv.get_function(module, "empty3")
    slots = (ctypes.c_uint64 * 4)(*(from_dlpack()(t).data_ptr() for t in tensors), n)
    params = (ctypes.c_void_p * 4)(*(ctypes.addressof(slots) + 8 * i for i in range(4)))
    params_addr = ctypes.addressof(params)
    stream_handle = torch.cuda.current_stream(dev).cuda_stream if torch is not None else 0
    cstream = d.CUstream(stream_handle)
    launch = d.cuLaunchKernel

    def bare() -> None:
        launch(func, 4, 1, 1, 256, 1, 1, 0, cstream, params_addr, 0)

    # The same Launcher with the driver call replaced by a no-op: tsir's Python work alone.
    python_only = Launcher(program, cubin, name="empty3")
    python_only(a, b, c)
    ok = (d.CUresult.CUDA_SUCCESS,)
    type(python_only).__call__.__globals__["_launch"] = lambda *_: ok

    fd = from_dlpack()
    cases: list[tuple[str, Callable[[], Any]]] = [
        ("cuLaunchKernel (bare, params pre-packed)", bare),
        ("Launcher(a, b, c)  stream=None", lambda: launcher(a, b, c)),
        ("Launcher(a, b, c, stream=int)", lambda: launcher(a, b, c, stream=stream_handle)),
        ("Launcher python only (no-op launch)", lambda: python_only(a, b, c)),
        ("tvm_ffi.from_dlpack(one tensor)", lambda: fd(a)),
    ]
    if torch is not None:
        x = torch.zeros(1, device=f"cuda:{dev}")
        cases.append(("torch x.add_(1), 1 element", lambda: x.add_(1)))
    try:
        import cupy

        with cupy.cuda.Device(dev):
            ca, cb, cc = (cupy.empty(n, dtype=cupy.float32) for _ in range(3))
        cases.append(("Launcher(a, b, c) on CuPy arrays", lambda: launcher(ca, cb, cc)))
    except Exception as e:  # noqa: BLE001  (no CuPy, or no CUDA for it: skip the row)
        print(f"(no CuPy row: {type(e).__name__}: {e})")

    results = run_cases(cases, sync, args.iters, args.repeats)

    exchange = torch is not None and hasattr(torch.Tensor, "__dlpack_c_exchange_api__")
    import tvm_ffi

    print(f"\nlaunch overhead on {name} (sm_{major}{minor}), {kind}")
    print(
        f"python {platform.python_version()}, tvm_ffi {tvm_ffi.__version__}, "
        f"torch DLPack C exchange API: {'yes' if exchange else 'no'}; {args.iters} calls x {args.repeats} repeats\n"
    )
    print(f"{'case':44s} {'median us':>10s} {'min us':>8s} {'with sync':>10s}")
    print("-" * 76)
    for label, r in results.items():
        if "error" in r:
            print(f"{label:44s} FAILED: {r['error']}")
        else:
            print(
                f"{label:44s} {r['median_us']:10.2f} {r['min_us']:8.2f} {r['median_with_sync_us']:10.2f}"
            )
    bare_r = results.get(cases[0][0], {})
    ours = results.get(cases[1][0], {})
    verdict = {}
    if "median_us" in bare_r and "median_us" in ours:
        extra = ours["median_us"] - bare_r["median_us"]
        ok_target = ours["median_us"] <= TARGET_US
        verdict = {
            "launcher_us": ours["median_us"],
            "over_bare_us": extra,
            "target_us": TARGET_US,
            "meets_target": ok_target,
        }
        print(
            f"\nLauncher 3-tensor call: {ours['median_us']:.2f} us = bare cuLaunchKernel + {extra:.2f} us; "
            f"target <= {TARGET_US:.0f} us: {'MET' if ok_target else 'NOT MET'}"
        )
    out = {
        "benchmark": "launch_overhead",
        "device": name,
        "arch": f"sm_{major}{minor}",
        "tensors": kind,
        "python": platform.python_version(),
        "tvm_ffi": tvm_ffi.__version__,
        "torch_dlpack_c_exchange_api": exchange,
        "iters": args.iters,
        "repeats": args.repeats,
        "results": results,
        "verdict": verdict,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
