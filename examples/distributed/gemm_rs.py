"""GEMM + reduce-scatter: every rank multiplies its K-slice, C_r = A[:, Kr] @ B[Kr, :], and rank r
ends with rows r of sum_r C_r (the tensor-parallel row-parallel linear layer).

The GEMM writes its partial product into a symmetric buffer and, block by block, raises a ready
flag for each row chunk on every rank (release); the reduce-scatter kernel, on another stream,
has each block wait for the chunk's flags of all ranks (acquire), pull the tile from every peer
and sum it in registers. So reduction of the first chunks starts while later GEMM tiles run.

    python -m tsir.runtime.launch -n 2 examples/distributed/gemm_rs.py [--bench]
"""

from __future__ import annotations

import os
import sys
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from common import WAIT_CYCLES, run_main  # noqa: E402

import tsir  # noqa: E402
from tsir import T  # noqa: E402


def gemm_partial(
    M: int,
    N: int,
    K: int,
    world: int,
    bm: int = 128,
    bn: int = 128,
    bk: int = 32,
    dtype: str = "bfloat16",
) -> tsir.PrimFunc:
    """P = A @ B (this rank's K-slice) into symmetric P; then block (bx, by) adds 1 to the counter
    of its row chunk on every rank (release), so a rank knows when all tiles of a chunk landed."""
    with T.prim_func("gemm_partial") as f:
        A = T.param("A", (M, K), dtype)
        B = T.param("B", (K, N), dtype)
        P = T.param("P", (M, N), "float32", scope="symmetric")
        counts = T.param("counts", (M // bm,), "int32", scope="symmetric")
        with T.Kernel(T.ceildiv(N, bn), M // bm, threads=128) as (bx, by):
            T.use_swizzle(8)
            A_s = T.alloc_shared((bm, bk), dtype)
            B_s = T.alloc_shared((bk, bn), dtype)
            C_f = T.alloc_fragment((bm, bn), "float32")
            T.clear(C_f)
            for ko in T.Pipelined(K // bk, num_stages=3):
                T.copy(A[by * bm, ko * bk], A_s)
                T.copy(B[ko * bk, bx * bn], B_s)
                T.gemm(A_s, B_s, C_f)
            T.copy(C_f, P[by * bm, bx * bn])
            T.sync_threads()
            tid = T.get_thread_binding(0)
            with T.If(tid < world):
                T.atom_add(counts[by], 1, scope="sys", sem="release", dst_pe=tid)
    return f.func


def reduce_scatter(
    M: int,
    N: int,
    world: int,
    bm: int = 128,
    bn: int = 128,
    threads: int = 256,
    timeout_cycles: int | None = WAIT_CYCLES,
) -> tsir.PrimFunc:
    """Out = sum over ranks p of P_p[rows of this rank]; block (bx, i) waits until every rank's
    GEMM finished row chunk i of this rank's rows (count == world * tiles_per_row * epoch)."""
    rows = M // world
    tiles_n = N // bn
    with T.prim_func("reduce_scatter") as f:
        P = T.param("P", (M * N,), "float32", scope="symmetric")
        counts = T.param("counts", (M // bm,), "int32", scope="symmetric")
        Out = T.param("Out", (rows, N), "float32")
        epoch = T.scalar("epoch", "int32")
        with T.Kernel(tiles_n, rows // bm, threads=threads) as (bx, by):
            me = T.get_rank()
            chunk = me * (rows // bm) + by
            T.wait_ge(counts[chunk], epoch * (world * tiles_n), timeout_cycles=timeout_cycles)
            tile = T.alloc_shared((bm, bn), "float32")
            acc = T.alloc_fragment((bm, bn), "float32")
            T.clear(acc)
            for p in T.serial(world):
                for i in T.serial(bm):
                    T.get_block(P[(chunk * bm + i) * N + bx * bn], tile[i, 0], bn, src_pe=p)
                for i, j in T.Parallel(bm, bn):
                    acc[i, j] = acc[i, j] + tile[i, j]
                T.sync_threads()
            T.copy(acc, Out[by * bm, bx * bn])
    return f.func


class GemmRS:
    def __init__(self, M: int, N: int, K_local: int, world: int):
        import torch
        import tsir.runtime.dist as dist

        self.M, self.N, self.world = M, N, world
        self.gemm = tsir.compile(gemm_partial(M, N, K_local, world), target="cuda")
        self.rs = tsir.compile(reduce_scatter(M, N, world), target="cuda")
        self.P = dist.empty((M * N,), "float32")
        self.counts = dist.zeros((M // 128,), "int32")
        self.s_rs = torch.cuda.Stream()
        self.epoch = 0

    def __call__(self, A: Any, B: Any, Out: Any) -> None:
        import torch

        self.epoch += 1
        ready = torch.cuda.Event()
        ready.record()
        self.s_rs.wait_event(ready)
        self.gemm(A, B, self.P.view(self.M, self.N), self.counts)
        self.rs(self.P, self.counts, Out, self.epoch, stream=self.s_rs)
        done = torch.cuda.Event()
        done.record(self.s_rs)
        torch.cuda.current_stream().wait_event(done)


def run(group: Any) -> None:
    import torch
    import tsir.runtime.dist as dist

    r, w = group.rank, group.world_size
    M, N, K = 256 * w, 256, 512
    Kl = K // w
    with dist.scope():
        op = GemmRS(M, N, Kl, w)
        for it in range(3):
            g = torch.Generator(device="cuda").manual_seed(7 + it)  # the same full A, B everywhere
            A = torch.randn(M, K, device="cuda", generator=g).to(torch.bfloat16)
            B = torch.randn(K, N, device="cuda", generator=g).to(torch.bfloat16)
            Out = torch.full((M // w, N), float("nan"), device="cuda")
            a_loc = A[:, r * Kl : (r + 1) * Kl].contiguous()
            b_loc = B[r * Kl : (r + 1) * Kl].contiguous()
            torch.cuda.synchronize()
            dist.barrier()
            op(a_loc, b_loc, Out)
            torch.cuda.synchronize()
            ref = (A.double() @ B.double())[r * (M // w) : (r + 1) * (M // w)]
            err = ((Out.double() - ref).norm() / ref.norm()).item()
            if not err < 1e-2 or torch.isnan(Out).any():
                raise AssertionError(f"gemm_rs iteration {it}: relative error {err}")
            dist.barrier()


if __name__ == "__main__":
    run_main("gemm_rs", run)
