"""The interpreter's race detector misses a cross-warpgroup RAW on shared memory when the only
barriers between the write and the read are the warpgroups' own named barriers.

The thread-level program below is ThreadSync's output for a tile program before commit 33b029c
(the footprint then missed the `if` condition's load, see README.md): every thread writes one row
of `shared`, passes `bar.sync 1 + tx / 128, 128`, and reads row 15 - tx / 16, which the other
warpgroup writes. `tsir.interpret(..., check=True)` runs it without a DataRaceError (with the
read in the `if` condition or in the body alike) and 27 of 1024 results are wrong: each
warpgroup runs as a strand, warpgroup 0 reads rows 15..8 before warpgroup 1 writes them. The same
program with no barrier at all is reported (DataRaceError on `shared`). So the fuzzer saw this
compiler bug only as a `mismatch @ThreadSync`, never as a detector hit.
"""

from __future__ import annotations

import numpy as np

import tsir
from tsir import T


def thread_level(read_in_condition: bool = True) -> tsir.PrimFunc:
    with T.prim_func("fz_tile") as f:
        X = T.param("X", (16, 64), "float16")
        Y = T.param("Y", (16, 64), "float32")
        with T.Kernel(1, 1, threads=256):
            tx = T.get_thread_binding(0)
            frag = T.alloc_local((4,), "float16")
            X_v1 = T.alloc_local((4,), "float16")
            X_v1[T.Ramp(0, 1, 4)] = X[tx // 16, T.Ramp(tx % 16 * 4, 1, 4)]
            for i_v in T.unroll(4):
                frag[i_v] = X_v1[i_v]
            shared = T.alloc_shared((16, 64), "int32")
            shared_v2 = T.alloc_local((4,), "int32")
            for i_v_1 in T.unroll(4):
                shared_v2[i_v_1] = T.cast(frag[i_v_1], "int32")
            shared[tx // 16, T.Ramp(tx % 16 * 4, 1, 4)] = shared_v2[T.Ramp(0, 1, 4)]
            T.evaluate(T.call_intrin("int32", "tsir.sync.named_barrier", tx // 128 + 1, 128))
            for i0_v in T.unroll(4):
                other = shared[15 - tx // 16, i0_v + tx % 16 * 4]
                if read_in_condition:
                    with T.If(i0_v + tx % 16 * 4 <= other):
                        frag[i0_v] = T.cast(tx // 16, "float16")
                else:
                    frag[i0_v] = T.cast(other, "float16")
            Y_v3 = T.alloc_local((4,), "float32")
            for i_v_2 in T.unroll(4):
                Y_v3[i_v_2] = T.cast(frag[i_v_2], "float32")
            Y[tx // 16, T.Ramp(tx % 16 * 4, 1, 4)] = Y_v3[T.Ramp(0, 1, 4)]
    return f.func


def main() -> None:
    x = np.random.default_rng(0).integers(-4, 5, (16, 64)).astype(np.float16)
    for in_condition in (True, False):
        y = np.full((16, 64), np.nan, np.float32)
        try:
            tsir.interpret.interpret(thread_level(in_condition), x, y, check=True)
            print(f"read in condition={in_condition}: no hazard reported")
        except tsir.interpret.HazardError as exc:
            print(f"read in condition={in_condition}: {type(exc).__name__}")


if __name__ == "__main__":
    main()
