"""A `T.view` of a shared tile that a TMA store reads (sm_90a): after PlanSharedMemory the view's
declaration still names the tile's pre-plan buffer, printed `s_1`, which nothing declares.

NVRTC (sm_90a): fuzz.cu(N): error: identifier "s_1" is undefined
  (`float* v = reinterpret_cast<float*>(s_1 + 0);`)
check_stages (sm_90a): PlanSharedMemory error buffer `s` (shared.dyn) is used where it is not
allocated or bound. sm_80 (no TMA store) compiles and agrees.

Found by the async family: every program that writes the stored tile through a view
(`async-write-view`), about 1 in 10 async programs (first seeds 5000008, 9200070).
"""

from __future__ import annotations

import numpy as np
from tsir.codegen.cuda import generate_cuda
from tsir.runtime.nvrtc import compile_cuda

import tsir
from tsir import T


def kernel(threads: int = 128, bm: int = 16, bn: int = 64) -> tsir.PrimFunc:
    with T.prim_func("view_tma") as f:
        X = T.param("X", (bm, bn), "float32")
        Y = T.param("Y", (bm, bn), "float32")
        with T.Kernel(1, threads=threads):
            s = T.alloc_shared((bm, bn), "float32")
            T.copy(X[0, 0], s)
            v = T.view(s, (bm * 2, bn // 2))
            for i, j in T.Parallel(bm * 2, bn // 2):
                v[i, j] = v[i, j] + 1.0
            T.copy(s, Y[0, 0])
    return f.func


def main() -> None:
    x = np.arange(16 * 64, dtype=np.float32).reshape(16, 64) % 7
    for target in ("sm_80", "sm_90a"):
        low = tsir.lower(kernel(), target)
        try:
            compile_cuda(generate_cuda(low.module), target, filename="view_tma.cu", use_cache=False)
            print(target, "NVRTC ok")
        except Exception as exc:  # noqa: BLE001 - the finding is the message
            log = str(getattr(exc, "log", None) or exc)
            print(target, [line for line in log.splitlines() if "error" in line][:1])
        args = [x, np.full((16, 64), np.nan, np.float32)]
        report = tsir.interpret.check_stages(low, args, target=target)
        bad = report.first_failure
        print(
            target, "all stages agree" if bad is None else f"{bad.stage} {bad.status} {bad.message}"
        )


if __name__ == "__main__":
    main()
