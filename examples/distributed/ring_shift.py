"""Ring shift with per-block ready flags: every block pushes its chunk of `src` to the next rank,
raises that rank's flag for the chunk with a system-scope release store, then waits (acquire,
with a timeout) for the previous rank's flag before copying the chunk that arrived into a plain
(non-symmetric) output. Flags are epoch numbers, never reset, so the kernel runs again and again.

    python -m tsir.runtime.launch -n 2 examples/distributed/ring_shift.py
"""

from __future__ import annotations

from typing import Any

from common import WAIT_CYCLES, check_equal, pattern, run_main

import tsir
from tsir import T

N = 1 << 20
BLOCKS = 16
THREADS = 256


def ring_shift(n: int = N, blocks: int = BLOCKS, dtype: str = "float32") -> tsir.PrimFunc:
    chunk = T.ceildiv(n, blocks)
    with T.prim_func("ring_shift") as f:
        src = T.param("src", (n,), dtype, scope="symmetric")
        dst = T.param("dst", (n,), dtype, scope="symmetric")
        flags = T.param("flags", (blocks,), "int32", scope="symmetric")
        out = T.param("out", (n,), dtype)
        epoch = T.scalar("epoch", "int32")
        with T.Kernel(blocks, threads=THREADS) as bx:
            tx = T.get_thread_binding(0)
            nxt = (T.get_rank() + 1) % T.get_num_ranks()
            T.put_block(src[bx * chunk], dst[bx * chunk], chunk, dst_pe=nxt)
            with T.If(tx == 0):
                # after put_block's barrier: every thread's part of the chunk is ordered before this
                T.st(flags[bx], epoch, sem="release", scope="sys", dst_pe=nxt)
                T.wait_ge(flags[bx], epoch, timeout_cycles=WAIT_CYCLES)
            T.sync_threads()
            T.copy(dst[bx * chunk : bx * chunk + chunk], out[bx * chunk : bx * chunk + chunk])
    return f.func


def kernels() -> dict[str, tsir.PrimFunc]:
    return {
        "ring_shift": ring_shift(),
        "ring_shift_odd": ring_shift(1000 * 1000 + 3, 7, "bfloat16"),
    }


def run(group: Any) -> None:
    import torch
    import tsir.runtime.dist as dist

    prev = (group.rank - 1) % group.world_size
    for n, blocks, dtype in ((N, BLOCKS, "float32"), (1000 * 1000 + 3, 7, "bfloat16")):
        tdt = getattr(torch, dtype)
        kernel = tsir.compile(ring_shift(n, blocks, dtype), target="cuda")
        with dist.scope():
            src = dist.empty((n,), dtype)
            dst = dist.empty((n,), dtype)
            flags = dist.zeros((blocks,), "int32")
            out = torch.empty(n, dtype=tdt, device="cuda")
            for epoch in range(1, 4):
                src.copy_(pattern(n, tdt, group.rank, salt=epoch))
                out.fill_(float("nan"))
                torch.cuda.synchronize()
                dist.barrier()  # the previous epoch's reads of dst are over on every rank
                kernel(src, dst, flags, out, epoch)
                torch.cuda.synchronize()
                check_equal(
                    f"ring_shift {dtype} n={n} epoch {epoch}",
                    out,
                    pattern(n, tdt, prev, salt=epoch),
                )
            dist.barrier()


if __name__ == "__main__":
    run_main("ring_shift", run)
