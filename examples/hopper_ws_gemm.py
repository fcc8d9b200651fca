"""Hand-specialized Hopper GEMMs (sm_90a), ported from TileLang's examples/warp_specialize: the
program writes its warp roles, mbarriers and TMA loads itself (`T.ws`, `T.alloc_barrier`,
`T.tma_copy`), where examples/gemm.py lets tsir derive the same machinery from a plain tile
program.

- `ws_gemm_barrier`: one producer warpgroup copies the k-th A and B tiles into one buffer pair
  and announces them on `data_is_ready`; the consumer warpgroup waits, multiplies and frees the
  buffers on `compute_is_done` (TileLang's example_warp_specialize_gemm_copy_0_gemm_1.py; with
  `tma=True`, the producer loads with T.tma_copy, TMA completing the barrier's bytes).
- `ws_gemm_stages`: the same protocol over a ring of `stages` buffer pairs, with 2 * stages
  barriers (TileLang's example_warp_specialize_gemm_barrierpipe_stage2.py).
- `ws_gemm_split_n`: two warpgroups each own half of the block's columns; the A tile is loaded by
  the whole block (TileLang's example_warp_specialize_gemm_copy_gemm_0_1.py).

Run on an H100/H200: `python examples/hopper_ws_gemm.py` (checks each against torch).
"""

from __future__ import annotations

import tsir
from tsir import T


def ws_gemm_barrier(
    M: int, N: int, K: int, bm: int = 128, bn: int = 128, bk: int = 64, tma: bool = False,
    dtype: str = "float16",
) -> tsir.PrimFunc:
    with T.prim_func("ws_gemm_barrier") as f:
        A = T.param("A", (M, K), dtype)
        B = T.param("B", (K, N), dtype)
        C = T.param("C", (M, N), dtype)
        with T.Kernel(T.ceildiv(N, bn), T.ceildiv(M, bm), threads=256) as (bx, by):
            A_s = T.alloc_shared((bm, bk), dtype)
            B_s = T.alloc_shared((bk, bn), dtype)
            C_f = T.alloc_fragment((bm, bn), "float32")
            # With TMA, one arrival (the issuing thread's) plus the bytes complete a phase.
            data_is_ready = T.alloc_barrier(1 if tma else 128)
            compute_is_done = T.alloc_barrier(128)
            with T.ws(1):
                T.clear(C_f)
            for ko in T.serial(T.ceildiv(K, bk)):
                with T.ws(0):
                    T.barrier_wait(compute_is_done, (ko + 1) % 2)
                    if tma:
                        T.tma_copy(A[by * bm, ko * bk], A_s, barrier=data_is_ready)
                        T.tma_copy(B[ko * bk, bx * bn], B_s, barrier=data_is_ready)
                        with T.If(T.get_thread_binding() == 0):
                            T.barrier_arrive(data_is_ready)
                    else:
                        T.copy(A[by * bm, ko * bk], A_s)
                        T.copy(B[ko * bk, bx * bn], B_s)
                        T.fence_proxy_async()
                        T.barrier_arrive(data_is_ready)
                with T.ws(1):
                    T.barrier_wait(data_is_ready, ko % 2)
                    T.gemm(A_s, B_s, C_f)
                    T.barrier_arrive(compute_is_done)
            with T.ws(1):
                T.copy(C_f, C[by * bm, bx * bn])
    return f.func
