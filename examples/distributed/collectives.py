"""All-gather (push) and all-to-all, each one kernel: blocks push their slice of the data straight
into the peers' symmetric output buffers, then one cross-rank barrier makes every rank's output
complete when its kernel ends. The benchmarks (benchmarks/distributed/) time these kernels.

    python -m tsir.runtime.launch -n 2 examples/distributed/collectives.py
"""

from __future__ import annotations

from typing import Any

from common import WAIT_CYCLES, check_equal, pattern, run_main

import tsir
from tsir import T


def _slice(chunk: int, blocks: int) -> int:
    """Elements per block: an even share, rounded up to 64 elements so slices stay aligned."""
    return min(chunk, T.ceildiv(T.ceildiv(chunk, blocks), 64) * 64)


def all_gather(
    chunk: int,
    world: int,
    blocks_per_peer: int = 4,
    threads: int = 512,
    dtype: str = "bfloat16",
    timeout_cycles: int | None = WAIT_CYCLES,
) -> tsir.PrimFunc:
    """out[r * chunk: (r + 1) * chunk] on every rank = inp of rank r. Block (b, j) pushes slice b
    of this rank's input to rank (rank + j) % world (j = 0 is the local copy), so each block row
    targets a different peer and all NVLinks carry traffic at once."""
    per = _slice(chunk, blocks_per_peer)
    with T.prim_func("all_gather") as f:
        inp = T.param("inp", (chunk,), dtype, scope="symmetric")
        out = T.param("out", (world * chunk,), dtype, scope="symmetric")
        bar = T.param("bar", (64,), "int32", scope="symmetric")
        with T.Kernel(blocks_per_peer, world, threads=threads) as (bx, by):
            me = T.get_rank()
            peer = (me + by) % T.get_num_ranks()
            size = T.min(per, chunk - bx * per) if per * blocks_per_peer != chunk else per
            T.put_block(inp[bx * per], out[me * chunk + bx * per], size, dst_pe=peer)
            T.barrier_blocks(bar, timeout_cycles=timeout_cycles)
    return f.func


def all_to_all(
    chunk: int,
    world: int,
    blocks_per_peer: int = 4,
    threads: int = 512,
    dtype: str = "bfloat16",
    timeout_cycles: int | None = WAIT_CYCLES,
) -> tsir.PrimFunc:
    """out[r * chunk: (r + 1) * chunk] on rank p = inp[p * chunk: (p + 1) * chunk] of rank r."""
    per = _slice(chunk, blocks_per_peer)
    with T.prim_func("all_to_all") as f:
        inp = T.param("inp", (world * chunk,), dtype, scope="symmetric")
        out = T.param("out", (world * chunk,), dtype, scope="symmetric")
        bar = T.param("bar", (64,), "int32", scope="symmetric")
        with T.Kernel(blocks_per_peer, world, threads=threads) as (bx, by):
            me = T.get_rank()
            peer = (me + by) % T.get_num_ranks()
            size = T.min(per, chunk - bx * per) if per * blocks_per_peer != chunk else per
            T.put_block(inp[peer * chunk + bx * per], out[me * chunk + bx * per], size, dst_pe=peer)
            T.barrier_blocks(bar, timeout_cycles=timeout_cycles)
    return f.func


SIZES = [
    (1, 1),
    (1000, 3),
    (4096, 4),
    (65536 + 5, 8),
    (1 << 20, 16),
]  # (elements per rank, blocks per peer)


def kernels() -> dict[str, tsir.PrimFunc]:
    out = {}
    for world in (2, 4):
        for n, b in SIZES[2:4]:
            out[f"all_gather_w{world}_{n}"] = all_gather(n, world, b)
            out[f"all_to_all_w{world}_{n}"] = all_to_all(n, world, b, dtype="float32")
    return out


def run(group: Any) -> None:
    import torch
    import tsir.runtime.dist as dist

    r, w = group.rank, group.world_size
    with dist.scope():
        bar = dist.zeros((64,), "int32")
        for n, b in SIZES:
            for dtype in ("bfloat16", "int8"):  # 2-byte and 1-byte elements
                tdt = getattr(torch, dtype)
                ag = tsir.compile(all_gather(n, w, b, dtype=dtype), target="cuda")
                a2a = tsir.compile(all_to_all(n, w, b, dtype=dtype), target="cuda")
                with dist.scope():
                    inp = dist.empty((n,), dtype)
                    inp2 = dist.empty((w * n,), dtype)
                    out = dist.empty((w * n,), dtype)
                    for it in range(2):  # twice: the barrier is reused without a reset
                        inp.copy_(pattern(n, tdt, r, salt=it))
                        inp2.copy_(pattern(w * n, tdt, r, salt=it + 7))
                        out.view(torch.uint8).fill_(0xA5)
                        torch.cuda.synchronize()
                        dist.barrier()
                        ag(inp, out, bar)
                        torch.cuda.synchronize()
                        want = torch.cat([pattern(n, tdt, q, salt=it) for q in range(w)])
                        check_equal(f"all_gather {dtype} n={n} iteration {it}", out, want)
                        dist.barrier()
                        out.view(torch.uint8).fill_(0xA5)
                        torch.cuda.synchronize()
                        dist.barrier()
                        a2a(inp2, out, bar)
                        torch.cuda.synchronize()
                        want = torch.cat(
                            [
                                pattern(w * n, tdt, q, salt=it + 7)[r * n : (r + 1) * n]
                                for q in range(w)
                            ]
                        )
                        check_equal(f"all_to_all {dtype} n={n} iteration {it}", out, want)
                        dist.barrier()


if __name__ == "__main__":
    run_main("collectives", run)
