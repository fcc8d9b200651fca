"""All-gather by the copy engines, and all-gather + GEMM where the GEMM waits on the copies' flags.

`cp_all_gather`: the host body pulls every peer's chunk with `T.cp_engine_copy(..., src_pe=)` (the
DMA engines, no SMs) and writes a per-chunk flag when it has landed; one tiny kernel waits for the
flags. `ag_gemm`: the same copies, written inside the GEMM kernel, run concurrently with it; each
block waits (`T.wait_ge`) only for the chunk of A its rows come from, so GEMM tiles of chunks that
arrived early start while later chunks are still moving. Flags hold an increasing `epoch` (a scalar
argument), so no reset is needed between calls.

    python -m tsir.runtime.launch -n 2 examples/distributed/cpengine_allgather.py [--bench]
"""

from __future__ import annotations

import sys
import time
from typing import Any

from common import WAIT_CYCLES, check_equal, pattern, run_main

import tsir
from tsir import T


def _pull_all(inp: Any, out: Any, flags: Any, epoch: Any, rows: int, world: int) -> None:
    """Rows [r * rows, (r + 1) * rows) of `out` come from rank r's `inp`, pulled by copy j from rank
    r = (rank + j) % world (j = 0: the local chunk); flags[r] = epoch once they have landed."""
    for j in range(world):
        src = (T.get_rank() + j) % T.get_num_ranks()
        part = (slice(src * rows, src * rows + rows),) + (slice(None),) * (len(out.shape) - 1)
        T.cp_engine_copy(
            inp,
            out[part],
            src_pe=src if j else None,
            signal=(flags[src : src + 1], epoch),
        )


def cp_all_gather(chunk: int, world: int, dtype: str = "bfloat16") -> tsir.PrimFunc:
    with T.prim_func("cp_all_gather") as f:
        inp = T.param("inp", (chunk,), dtype, scope="symmetric")
        out = T.param("out", (world * chunk,), dtype, scope="symmetric")
        flags = T.param("flags", (world,), "int32", scope="symmetric")
        epoch = T.scalar("epoch", "int32")
        _pull_all(inp, out, flags, epoch, chunk, world)
        with T.Kernel(1, threads=32) as _:
            tx = T.get_thread_binding(0)
            with T.If(tx < world):
                T.wait_ge(flags[tx], epoch, timeout_cycles=WAIT_CYCLES)
    return f.func


def ag_gemm(
    m: int,
    n: int,
    k: int,
    world: int,
    wait: bool = True,
    bm: int = 128,
    bn: int = 128,
    bk: int = 32,
    dtype: str = "float16",
) -> tsir.PrimFunc:
    """C = all_gather(A) @ B, A (m, k) per rank; with `wait`, the all-gather is done by the copy
    engines concurrently with the GEMM, else `AG` must already hold the gathered A."""
    with T.prim_func("ag_gemm" if wait else "gemm") as f:
        A = T.param("A", (m, k), dtype, scope="symmetric")
        AG = T.param("AG", (world * m, k), dtype, scope="symmetric")
        B = T.param("B", (k, n), dtype)
        C = T.param("C", (world * m, n), dtype)
        if wait:
            flags = T.param("flags", (world,), "int32", scope="symmetric")
            epoch = T.scalar("epoch", "int32")
        with T.Kernel(T.ceildiv(n, bn), T.ceildiv(world * m, bm), threads=128) as (bx, by):
            if wait:
                _pull_all(A, AG, flags, epoch, m, world)
                T.wait_ge(flags[(by * bm) // m], epoch, timeout_cycles=WAIT_CYCLES)
            A_s = T.alloc_shared((bm, bk), dtype)
            B_s = T.alloc_shared((bk, bn), dtype)
            C_f = T.alloc_fragment((bm, bn), "float32")
            T.clear(C_f)
            for ko in T.Pipelined(T.ceildiv(k, bk), num_stages=3):
                T.copy(AG[by * bm, ko * bk], A_s)
                T.copy(B[ko * bk, bx * bn], B_s)
                T.gemm(A_s, B_s, C_f)
            T.copy(C_f, C[by * bm, bx * bn])
    return f.func


class _Epoch:
    value = 0

    def next(self) -> int:
        self.value += 1
        return self.value


EPOCH = _Epoch()


def run(group: Any) -> None:
    import torch
    import tsir.runtime.dist as dist

    r, w = group.rank, group.world_size
    with dist.scope():
        flags = dist.zeros((w,), "int32")
        for n in (1, 1000, 65536 + 5):
            ag = tsir.compile(cp_all_gather(n, w), target="cuda")
            with dist.scope():
                inp, out = dist.empty((n,), "bfloat16"), dist.empty((w * n,), "bfloat16")
                for it in range(2):
                    inp.copy_(pattern(n, torch.bfloat16, r, salt=it))
                    out.view(torch.uint8).fill_(0xA5)
                    torch.cuda.synchronize()
                    dist.barrier()
                    ag(inp, out, flags, EPOCH.next())
                    torch.cuda.synchronize()
                    want = torch.cat([pattern(n, torch.bfloat16, q, salt=it) for q in range(w)])
                    check_equal(f"cp_all_gather n={n} iteration {it}", out, want)
                    dist.barrier()
        m, nn, kk = 256, 256, 128
        kern = tsir.compile(ag_gemm(m, nn, kk, w), target="cuda")
        with dist.scope():
            A, AG = dist.empty((m, kk), "float16"), dist.empty((w * m, kk), "float16")
            gen = torch.Generator(device="cuda").manual_seed(1234)
            B = torch.randn(kk, nn, device="cuda", dtype=torch.float16, generator=gen)
            A.copy_((pattern(m * kk, torch.float16, r) / 64).view(m, kk))
            C = torch.full((w * m, nn), float("nan"), device="cuda", dtype=torch.float16)
            torch.cuda.synchronize()
            dist.barrier()
            kern(A, AG, B, C, flags, EPOCH.next())
            torch.cuda.synchronize()
            full = torch.cat(
                [(pattern(m * kk, torch.float16, q) / 64).view(m, kk) for q in range(w)]
            )
            ref = (full.float() @ B.float()).half()
            if not torch.allclose(C.float(), ref.float(), rtol=2e-2, atol=2e-1):
                raise AssertionError(f"ag_gemm: max error {(C.float() - ref.float()).abs().max()}")
            dist.barrier()


def bench(group: Any, iters: int = 20) -> list[tuple[str, float]]:
    """(name, microseconds) on this rank: all-gather by copy engines / SM kernel / NCCL, and
    AG+GEMM overlapped by copy engines / SM all-gather then GEMM / NCCL then GEMM."""
    import collectives
    import torch
    import torch.distributed as tdist
    import tsir.runtime.dist as dist

    r, w = group.rank, group.world_size
    rows: list[tuple[str, float]] = []

    def timeit(fn: Any) -> float:
        for _ in range(3):
            fn()
        torch.cuda.synchronize()
        dist.barrier()
        t0 = time.perf_counter()
        for _ in range(iters):
            fn()
        torch.cuda.synchronize()
        return (time.perf_counter() - t0) / iters * 1e6

    with dist.scope():
        flags = dist.zeros((w,), "int32")
        bar = dist.zeros((64,), "int32")
        n = 16 << 20  # elements per rank (bf16: 32 MiB)
        inp, out = dist.empty((n,), "bfloat16"), dist.empty((w * n,), "bfloat16")
        inp.copy_(pattern(n, torch.bfloat16, r))
        cp = tsir.compile(cp_all_gather(n, w), target="cuda")
        sm = tsir.compile(collectives.all_gather(n, w, blocks_per_peer=16), target="cuda")
        nbytes = w * n * 2
        for name, fn in (
            ("allgather copy-engine", lambda: cp(inp, out, flags, EPOCH.next())),
            ("allgather SM kernel", lambda: sm(inp, out, bar)),
            ("allgather NCCL", lambda: tdist.all_gather_into_tensor(out, inp)),
        ):
            us = timeit(fn)
            rows.append((f"{name} {nbytes >> 20} MiB", us))
        m, nn, kk = 4096, 4096, 4096
        A, AG = dist.empty((m, kk), "float16"), dist.empty((w * m, kk), "float16")
        A.normal_()
        B = torch.randn(kk, nn, device="cuda", dtype=torch.float16)
        C = torch.empty(w * m, nn, device="cuda", dtype=torch.float16)
        fused = tsir.compile(ag_gemm(m, nn, kk, w), target="cuda")
        gemm = tsir.compile(ag_gemm(m, nn, kk, w, wait=False), target="cuda")
        sm2 = tsir.compile(
            collectives.all_gather(m * kk, w, blocks_per_peer=16, dtype="float16"), target="cuda"
        )
        A1, AG1 = A.view(-1), AG.view(-1)
        for name, fn in (
            ("ag+gemm copy-engine overlapped", lambda: fused(A, AG, B, C, flags, EPOCH.next())),
            ("ag+gemm SM all-gather then GEMM", lambda: (sm2(A1, AG1, bar), gemm(A, AG, B, C))),
            (
                "ag+gemm NCCL then GEMM",
                lambda: (tdist.all_gather_into_tensor(AG1, A1), gemm(A, AG, B, C)),
            ),  # noqa: E501
            ("gemm alone", lambda: gemm(A, AG, B, C)),
        ):
            rows.append((f"{name} {w * m}x{nn}x{kk}", timeit(fn)))
    return rows


def _bench_main(group: Any) -> None:
    rows = bench(group)
    if group.rank == 0:
        print(f"{'benchmark (rank 0, world ' + str(group.world_size) + ')':<58} {'us':>10}")
        for name, us in rows:
            print(f"{name:<58} {us:>10.1f}")


if __name__ == "__main__":
    if "--bench" in sys.argv:
        run_main("cpengine_bench", _bench_main)
    else:
        run_main("cpengine_allgather", run)
