"""`make demo`: build the fused element-wise kernel, show its CUDA, compile it for sm_100a and,
when a GPU is present, run it on the GPU, check it against torch and print its bandwidth."""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from elementwise_2d import fused_exp_scale_bias, reference  # noqa: E402

import tsir  # noqa: E402


def gpu_present() -> bool:
    try:
        from cuda.bindings import driver

        (err,) = driver.cuInit(0)
        if err != driver.CUresult.CUDA_SUCCESS:
            return False
        err, n = driver.cuDeviceGetCount()
        return err == driver.CUresult.CUDA_SUCCESS and n > 0
    except Exception:  # noqa: BLE001 - no driver at all is the common CPU-only case
        return False


def main() -> None:
    N = 4096
    func = fused_exp_scale_bias(N)
    print("== tsir IR ==")
    print(func)
    t0 = time.perf_counter()
    kernel = tsir.compile(func, target="sm_100a")
    t1 = time.perf_counter()
    print("== CUDA C++ (sm_100a) ==")
    print(kernel.cuda_source)
    print(
        f"compiled for sm_100a: {len(kernel.cubin)} bytes of cubin in {(t1 - t0) * 1e3:.0f} ms "
        f"(lower {kernel.timings['lower'] * 1e3:.0f} ms, NVRTC {kernel.timings['nvrtc'] * 1e3:.0f} ms"
        f"{', cache hit' if kernel.binary.cache_hit else ''})"
    )
    if not gpu_present():
        print(
            "no GPU here: skipping the run (on a GPU machine this runs, checks and times the kernel)"
        )
        return
    import torch

    kernel = tsir.compile(func, target="cuda")
    M = 65536  # 1 GiB of float32 input
    x = torch.randn(M, N, device="cuda")
    w = torch.randn(N, device="cuda")
    b = torch.randn(N, device="cuda")
    y = torch.full((M, N), float("nan"), device="cuda")
    kernel(x, w, b, y)
    torch.testing.assert_close(y, reference(x, w, b), rtol=1e-5, atol=1e-5)
    print(f"ran on {torch.cuda.get_device_name()} ({kernel.target}): matches torch")
    for _ in range(3):
        kernel(x, w, b, y)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    reps = 20
    start.record()
    for _ in range(reps):
        kernel(x, w, b, y)
    end.record()
    end.synchronize()
    sec = start.elapsed_time(end) / 1e3 / reps
    nbytes = 2 * M * N * 4
    print(
        f"bandwidth: {nbytes / sec / 1e9:.0f} GB/s ({sec * 1e3:.3f} ms for {nbytes / 2**30:.1f} GiB read + written)"
    )


if __name__ == "__main__":
    main()
