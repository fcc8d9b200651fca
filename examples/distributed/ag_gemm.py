"""All-gather + GEMM, overlapped: C = all_gather(A_shard) @ B on every rank.

A push kernel (a few blocks, on its own stream) copies this rank's shard of A's rows into every
rank's symmetric `A_full`, slice by slice, and after each slice lands stores the slice's ready flag
on that rank with release semantics. The GEMM kernel (tsir's pipelined tensor-core GEMM, on another
stream) starts at once: each block waits (acquire, with a timeout) only for the flag of the slice
holding its rows, so the GEMM computes on the rows already gathered while the rest are in flight.

    python -m tsir.runtime.launch -n 2 examples/distributed/ag_gemm.py            # check
    python -m tsir.runtime.launch -n 2 examples/distributed/ag_gemm.py --bench    # time it
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


def ag_push(
    rows: int, K: int, world: int, slices: int, threads: int = 512, dtype: str = "bfloat16"
) -> tsir.PrimFunc:
    """This rank's shard lives in its own slot of `full`. Block (s, j), j > 0, pushes slice s of
    it into the same slot on rank (rank + j) % world, then sets that rank's flag for (this rank, s)
    to `epoch` (release); blocks (s, 0) just raise the local flags (the data is already there)."""
    per = rows // slices * K
    with T.prim_func("ag_push") as f:
        full = T.param("full", (world * rows * K,), dtype, scope="symmetric")
        flags = T.param("flags", (world * slices,), "int32", scope="symmetric")
        epoch = T.scalar("epoch", "int32")
        with T.Kernel(slices, world, threads=threads) as (s, j):
            me = T.get_rank()
            peer = (me + j) % T.get_num_ranks()
            offset = me * rows * K + s * per
            with T.If(j > 0):
                T.put_block(full[offset], full[offset], per, dst_pe=peer)
            T.st(flags[me * slices + s], epoch, scope="sys", sem="release", dst_pe=peer)
    return f.func


def gemm_after_flags(
    M: int,
    N: int,
    K: int,
    rows: int,
    slices: int,
    bm: int = 128,
    bn: int = 128,
    bk: int = 32,
    dtype: str = "bfloat16",
    timeout_cycles: int | None = WAIT_CYCLES,
) -> tsir.PrimFunc:
    """C = A_full @ B, each block first waiting for the slice of A_full its rows come from."""
    slice_rows = rows // slices
    assert slice_rows % bm == 0, "a block's rows must come from one slice"
    with T.prim_func("gemm_after_flags") as f:
        A = T.param("A_full", (M, K), dtype, scope="symmetric")
        B = T.param("B", (K, N), dtype)
        C = T.param("C", (M, N), dtype)
        flags = T.param("flags", (M // slice_rows,), "int32", scope="symmetric")
        epoch = T.scalar("epoch", "int32")
        with T.Kernel(T.ceildiv(N, bn), M // bm, threads=128) as (bx, raw_by):
            T.use_swizzle(8)  # the same L2-friendly block order as the plain GEMM it is compared to
            # Row blocks start at this rank's own rows (ready first) and wrap around, so blocks
            # rarely wait for data still on the wire.
            by = (raw_by + T.get_rank() * (rows // bm)) % (M // bm)
            # Flags only grow (one epoch per call): >= also tolerates a peer already one call ahead.
            T.wait_ge(flags[by * bm // slice_rows], epoch, timeout_cycles=timeout_cycles)
            A_s = T.alloc_shared((bm, bk), dtype)
            B_s = T.alloc_shared((bk, bn), dtype)
            C_f = T.alloc_fragment((bm, bn), "float32")
            T.clear(C_f)
            for ko in T.Pipelined(K // bk, num_stages=3):
                T.copy(A[by * bm, ko * bk], A_s)
                T.copy(B[ko * bk, bx * bn], B_s)
                T.gemm(A_s, B_s, C_f)
            T.copy(C_f, C[by * bm, bx * bn])
    return f.func


class AgGemm:
    """Both kernels compiled for one problem, with the buffers and the two streams.

    A call's pushes overwrite the peers' `A_full`: ranks must not start call k + 1 while a peer's
    GEMM of call k may still read it (a `dist.barrier()` between calls, or two `A_full` buffers).
    """

    def __init__(self, rows: int, N: int, K: int, slices: int, world: int):
        import torch
        import tsir.runtime.dist as dist

        self.rows, self.N, self.K, self.slices, self.world = rows, N, K, slices, world
        M = rows * world
        self.push = tsir.compile(ag_push(rows, K, world, slices), target="cuda")
        self.gemm = tsir.compile(gemm_after_flags(M, N, K, rows, slices), target="cuda")
        self.full = dist.empty((M * K,), "bfloat16")
        rank = dist.rank()
        # This rank's shard is its own slot of the gathered matrix: nothing to copy locally.
        self.shard = self.full[rank * rows * K : (rank + 1) * rows * K]
        self.flags = dist.zeros((world * slices,), "int32")
        self.comm = torch.cuda.Stream()
        self.compute = torch.cuda.Stream()
        self.epoch = 0

    def __call__(self, B: Any, C: Any) -> None:
        import torch

        self.epoch += 1
        ready = torch.cuda.Event()
        ready.record()  # the shard and B are written on the current stream
        self.comm.wait_event(ready)
        self.compute.wait_event(ready)
        self.push(self.full, self.flags, self.epoch, stream=self.comm)
        A = self.full.view(self.rows * self.world, self.K)
        self.gemm(A, B, C, self.flags, self.epoch, stream=self.compute)
        done = torch.cuda.Event()
        done.record(self.compute)
        torch.cuda.current_stream().wait_event(done)
        back = torch.cuda.Event()
        back.record(self.comm)
        torch.cuda.current_stream().wait_event(back)


def run(group: Any) -> None:
    import torch
    import tsir.runtime.dist as dist

    r, w = group.rank, group.world_size
    with dist.scope():
        rows, N, K, slices = 256, 384, 256, 2
        op = AgGemm(rows, N, K, slices, w)
        B = torch.randn(K, N, device="cuda", dtype=torch.bfloat16)
        torch.manual_seed(1234)
        B = torch.randn(K, N, device="cuda", dtype=torch.bfloat16)  # the same B on every rank
        for it in range(3):
            g = torch.Generator(device="cuda").manual_seed(100 * it + r)
            op.shard.copy_(torch.randn(rows * K, device="cuda", generator=g).to(torch.bfloat16))
            C = torch.full((rows * w, N), float("nan"), device="cuda", dtype=torch.bfloat16)
            dist.barrier()
            op(B, C)
            torch.cuda.synchronize()
            shards = [
                torch.randn(
                    rows * K,
                    device="cuda",
                    generator=torch.Generator(device="cuda").manual_seed(100 * it + q),
                ).to(torch.bfloat16)
                for q in range(w)
            ]
            A = torch.cat(shards).view(rows * w, K)
            ref = A.double() @ B.double()
            err = ((C.double() - ref).norm() / ref.norm()).item()
            if not err < 1e-2 or torch.isnan(C).any():
                raise AssertionError(f"ag_gemm iteration {it}: relative error {err}")
            dist.barrier()


def bench(group: Any) -> None:
    import json
    import statistics

    import torch
    import torch.distributed as tdist
    import tsir.runtime.dist as dist

    r, w = group.rank, group.world_size
    size = int(os.environ.get("AG_GEMM_SIZE", "8192"))
    M = N = K = size
    rows, slices = M // w, 8
    with dist.scope():
        op = AgGemm(rows, N, K, slices, w)
        B = torch.randn(K, N, device="cuda", dtype=torch.bfloat16)
        C = torch.empty(M, N, device="cuda", dtype=torch.bfloat16)
        op.shard.copy_(torch.randn(rows * K, device="cuda").to(torch.bfloat16))
        from gemm import matmul

        plain = tsir.compile(matmul(M, N, K, dtype="bfloat16", swizzle=8), target="cuda")
        gathered = torch.empty(M, K, device="cuda", dtype=torch.bfloat16)
        shard2d = op.shard.view(rows, K)

        def timed(fn, reps: int = 10) -> float:  # type: ignore[no-untyped-def]
            for _ in range(2):
                tdist.barrier()
                torch.cuda.synchronize()
                fn()
            torch.cuda.synchronize()
            ts = []
            for _ in range(reps):
                tdist.barrier()
                torch.cuda.synchronize()
                s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                s.record()
                fn()
                e.record()
                e.synchronize()
                ts.append(s.elapsed_time(e) / 1e3)
            return statistics.median(ts)

        rows_out = {
            "overlapped (tsir push || tsir GEMM)": timed(lambda: op(B, C)),
            "NCCL all-gather, then tsir GEMM": timed(
                lambda: (tdist.all_gather_into_tensor(gathered, shard2d), plain(gathered, B, C))
            ),
            "NCCL all-gather, then cuBLAS": timed(
                lambda: (
                    tdist.all_gather_into_tensor(gathered, shard2d),
                    torch.matmul(gathered, B, out=C),
                )
            ),
            "tsir GEMM alone (A already gathered)": timed(lambda: plain(gathered, B, C)),
            "cuBLAS alone": timed(lambda: torch.matmul(gathered, B, out=C)),
        }
        if r == 0:
            flops = 2 * M * N * K
            print(
                f"all-gather + GEMM, M=N=K={size} bf16, {w} GPUs ({torch.cuda.get_device_name()}):"
            )
            for name, t in rows_out.items():
                print(f"  {name:40s} {t * 1e3:8.3f} ms  {flops / t / 1e12:7.1f} TFLOP/s")
            path = os.environ.get("AG_GEMM_JSON")
            if path:
                with open(path, "w") as fh:
                    json.dump({"size": size, "world": w, "seconds": rows_out}, fh, indent=2)


if __name__ == "__main__":
    if "--bench" in sys.argv:
        run_main("ag_gemm_bench", bench)
    else:
        run_main("ag_gemm", run)
