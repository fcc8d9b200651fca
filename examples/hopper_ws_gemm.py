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
    M: int,
    N: int,
    K: int,
    bm: int = 128,
    bn: int = 128,
    bk: int = 64,
    tma: bool = False,
    dtype: str = "float16",
) -> tsir.PrimFunc:
    with T.prim_func("ws_gemm_barrier") as f:
        A = T.param("A", (M, K), dtype)
        B = T.param("B", (K, N), dtype)
        C = T.param("C", (M, N), dtype)
        with T.Kernel(T.ceildiv(N, bn), T.ceildiv(M, bm), threads=256) as (bx, by):
            A_shared = T.alloc_shared((bm, bk), dtype)
            B_shared = T.alloc_shared((bk, bn), dtype)
            C_local = T.alloc_fragment((bm, bn), "float32")
            # With TMA, one arrival (the issuing thread's) plus the bytes complete a phase.
            data_is_ready = T.alloc_barrier(1 if tma else 128)
            compute_is_done = T.alloc_barrier(128)
            with T.ws(1):
                T.clear(C_local)
            for ko in T.serial(T.ceildiv(K, bk)):
                with T.ws(0):
                    T.barrier_wait(compute_is_done, (ko + 1) % 2)
                    if tma:
                        T.tma_copy(A[by * bm, ko * bk], A_shared, barrier=data_is_ready)
                        T.tma_copy(B[ko * bk, bx * bn], B_shared, barrier=data_is_ready)
                        with T.If(T.get_thread_binding() == 0):
                            T.barrier_arrive(data_is_ready)
                    else:
                        T.copy(A[by * bm, ko * bk], A_shared)
                        T.copy(B[ko * bk, bx * bn], B_shared)
                        # (ThreadSync fences these writes for wgmma's async proxy before the
                        # arrival that hands them over.)
                        T.barrier_arrive(data_is_ready)
                with T.ws(1):
                    T.barrier_wait(data_is_ready, ko % 2)
                    T.gemm(A_shared, B_shared, C_local)
                    T.barrier_arrive(compute_is_done)
            with T.ws(1):
                T.copy(C_local, C[by * bm, bx * bn])
    return f.func


def ws_gemm_stages(
    M: int,
    N: int,
    K: int,
    bm: int = 128,
    bn: int = 128,
    bk: int = 64,
    stages: int = 2,
    dtype: str = "float16",
) -> tsir.PrimFunc:
    """Warpgroup 1 loads k-block `ko` into stage `ko % stages` with TMA once the consumer freed
    it; warpgroup 0 waits for the stage's bytes, multiplies, and frees it. Barriers `bars[s]`
    (full: the producer's arrival plus the bytes) and `bars[stages + s]` (empty: the consumer's
    128 arrivals)."""
    with T.prim_func("ws_gemm_stages") as f:
        A = T.param("A", (M, K), dtype)
        B = T.param("B", (K, N), dtype)
        C = T.param("C", (M, N), dtype)
        with T.Kernel(T.ceildiv(N, bn), T.ceildiv(M, bm), threads=256) as (bx, by):
            # One 2-D tile per stage (T.gemm reads whole 2-D tiles).
            A_s = [T.alloc_shared((bm, bk), dtype) for _ in range(stages)]
            B_s = [T.alloc_shared((bk, bn), dtype) for _ in range(stages)]
            C_f = T.alloc_fragment((bm, bn), "float32")
            bars = T.alloc_barrier([1] * stages + [128] * stages)
            with T.ws(0):
                T.clear(C_f)
            nk = T.ceildiv(K, bk)
            # The stage is a Python int: the gemm reads constant tiles of the ring.
            for kr in T.serial(T.ceildiv(nk, stages)):
                for s in range(stages):
                    ko = kr * stages + s
                    with T.If(ko < nk):
                        with T.ws(1):
                            T.barrier_wait(bars[s + stages], kr % 2 ^ 1)
                            T.tma_copy(
                                A[by * bm : (by + 1) * bm, ko * bk : (ko + 1) * bk],
                                A_s[s],
                                barrier=bars[s],
                            )
                            T.tma_copy(
                                B[ko * bk : (ko + 1) * bk, bx * bn : (bx + 1) * bn],
                                B_s[s],
                                barrier=bars[s],
                            )
                            with T.If(T.get_thread_binding() == 128):
                                T.barrier_arrive(bars[s])
                        with T.ws(0):
                            T.barrier_wait(bars[s], kr % 2)
                            T.gemm(A_s[s], B_s[s], C_f)
                            T.barrier_arrive(bars[s + stages])
            with T.ws(0):
                T.copy(C_f, C[by * bm, bx * bn])
    return f.func


def ws_gemm_split_n(
    M: int, N: int, K: int, bm: int = 128, bn: int = 128, bk: int = 64, dtype: str = "float16"
) -> tsir.PrimFunc:
    """Warpgroups 0 and 1 each load and multiply half of the block's columns; the A tile is
    loaded by the whole block (no mbarrier: the block's own barriers order it)."""
    half = bn // 2
    with T.prim_func("ws_gemm_split_n") as f:
        A = T.param("A", (M, K), dtype)
        B = T.param("B", (K, N), dtype)
        C = T.param("C", (M, N), dtype)
        with T.Kernel(T.ceildiv(N, bn), T.ceildiv(M, bm), threads=256) as (bx, by):
            A_shared = T.alloc_shared((bm, bk), dtype, "shared")
            B_shared_g0 = T.alloc_shared((bk, half), dtype, "shared")
            B_shared_g1 = T.alloc_shared((bk, half), dtype, "shared")
            C_local_g0 = T.alloc_fragment((bm, half), "float32")
            C_local_g1 = T.alloc_fragment((bm, half), "float32")
            with T.ws(1):
                T.clear(C_local_g1)
            with T.ws(0):
                T.clear(C_local_g0)
            for ko in T.serial(T.ceildiv(K, bk)):
                T.copy(A[by * bm, ko * bk], A_shared)
                with T.ws(1):
                    T.copy(B[ko * bk, bx * bn], B_shared_g1)
                    T.gemm(A_shared, B_shared_g1, C_local_g1)
                with T.ws(0):
                    T.copy(B[ko * bk, bx * bn + half], B_shared_g0)
                    T.gemm(A_shared, B_shared_g0, C_local_g0)
            with T.ws(1):
                T.copy(C_local_g1, C[by * bm, bx * bn])
            with T.ws(0):
                T.copy(C_local_g0, C[by * bm, bx * bn + half])
    return f.func


def ws_gemm_loops(
    M: int,
    N: int,
    K: int,
    bm: int = 128,
    bn: int = 128,
    bk: int = 64,
    stages: int = 2,
    dtype: str = "float16",
) -> tsir.PrimFunc:
    """Each role runs its own loop over k (TileLang's gemm_ws.py and
    example_warp_specialize_gemm_barrier4.py): warpgroup 1 streams TMA loads into a ring of
    `stages` tiles as far ahead as the `empty` barriers let it, warpgroup 0 consumes them. Its
    meaning needs both roles running at once, so the tile-level interpreter refuses it; the
    thread-level stages run it."""
    with T.prim_func("ws_gemm_loops") as f:
        A = T.param("A", (M, K), dtype)
        B = T.param("B", (K, N), dtype)
        C = T.param("C", (M, N), dtype)
        with T.Kernel(T.ceildiv(N, bn), T.ceildiv(M, bm), threads=256) as (bx, by):
            A_s = [T.alloc_shared((bm, bk), dtype) for _ in range(stages)]
            B_s = [T.alloc_shared((bk, bn), dtype) for _ in range(stages)]
            C_f = T.alloc_fragment((bm, bn), "float32")
            full = T.alloc_barrier([1] * stages)
            empty = T.alloc_barrier([128] * stages)
            nk = T.ceildiv(K, bk)
            with T.ws(1):
                T.dec_max_nreg(40)
                for kr in T.serial(T.ceildiv(nk, stages)):
                    for s in range(stages):
                        ko = kr * stages + s
                        with T.If(ko < nk):
                            T.barrier_wait(empty[s], kr % 2 ^ 1)
                            T.tma_copy(A[by * bm, ko * bk], A_s[s], barrier=full[s])
                            T.tma_copy(B[ko * bk, bx * bn], B_s[s], barrier=full[s])
                            with T.If(T.get_thread_binding() == 128):
                                T.barrier_arrive(full[s])
            with T.ws(0):
                T.inc_max_nreg(232)
                T.clear(C_f)
                for kr in T.serial(T.ceildiv(nk, stages)):
                    for s in range(stages):
                        ko = kr * stages + s
                        with T.If(ko < nk):
                            T.barrier_wait(full[s], kr % 2)
                            T.gemm(A_s[s], B_s[s], C_f)
                            T.barrier_arrive(empty[s])
                T.copy(C_f, C[by * bm, bx * bn])
    return f.func


def tma_scale(M: int, N: int, bm: int = 64, bn: int = 64, dtype: str = "float32") -> tsir.PrimFunc:
    """One TMA load per block into a row-major tile, waited for by every thread, then scaled:
    T.tma_copy outside warp roles (TileLang's tma_copy test shape)."""
    with T.prim_func("tma_scale") as f:
        X = T.param("X", (M, N), dtype)
        Y = T.param("Y", (M, N), dtype)
        with T.Kernel(T.ceildiv(N, bn), T.ceildiv(M, bm), threads=128) as (bx, by):
            X_s = T.alloc_shared((bm, bn), dtype)
            bar = T.alloc_barrier(128)
            T.tma_copy(X[by * bm, bx * bn], X_s, barrier=bar)
            T.barrier_arrive(bar)
            T.barrier_wait(bar, 0)
            for i, j in T.Parallel(bm, bn):
                Y[by * bm + i, bx * bn + j] = X_s[i, j] * 2.0
    return f.func


EXAMPLES = {
    "ws_gemm_barrier": lambda: ws_gemm_barrier(512, 384, 512),
    "ws_gemm_barrier_tma": lambda: ws_gemm_barrier(512, 384, 512, tma=True),
    "ws_gemm_stages": lambda: ws_gemm_stages(512, 384, 512, stages=3),
    "ws_gemm_split_n": lambda: ws_gemm_split_n(512, 384, 512),
    "ws_gemm_loops": lambda: ws_gemm_loops(512, 384, 520, stages=3),
    "tma_scale": lambda: tma_scale(200, 192),
}


def main() -> None:
    import torch

    for name, build in EXAMPLES.items():
        func = build()
        kernel = tsir.compile(func, target="sm_90a")
        params = [p for p in func.params]
        shapes = [tuple(int(d) for d in p.shape) for p in params]
        if name == "tma_scale":
            x = torch.randn(*shapes[0], device="cuda")
            y = torch.full(shapes[1], float("nan"), device="cuda")
            kernel(x, y)
            torch.testing.assert_close(y, x * 2)
        else:
            a = torch.randn(*shapes[0], device="cuda", dtype=torch.float16)
            b = torch.randn(*shapes[1], device="cuda", dtype=torch.float16)
            c = torch.full(shapes[2], float("nan"), device="cuda", dtype=torch.float16)
            kernel(a, b, c)
            torch.testing.assert_close(c, a @ b, rtol=2e-2, atol=2e-2)
        print(f"{name}: matches torch")


if __name__ == "__main__":
    main()
