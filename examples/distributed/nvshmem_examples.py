"""NVSHMEM device calls from tsir kernels (`T.nvshmem.*`): put/get, ring shift, and an all-gather with
putmem_signal + signal_wait_until; `--bench` times an NVSHMEM put against tsir's IPC put.

    python -m tsir.runtime.launch -n 2 examples/distributed/nvshmem_examples.py [--bench]

Needs nvidia-nvshmem-cu13 (>= 3.4.5) and nvshmem4py-cu13. NVSHMEM buffers come from
`dist.empty(..., backend="nvshmem")` and are declared with the default global scope.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import tsir.runtime.dist as dist
from common import check_equal, pattern

import tsir
from tsir import T


def put_get(n: int) -> tsir.PrimFunc:
    """dst = src of the previous PE (put by it), back = src of the next PE (get)."""
    with T.prim_func("nvshmem_put_get") as f:
        src, dst, back = (T.param(x, (n,), "float32") for x in ("src", "dst", "back"))
        with T.Kernel(1, threads=256):
            me, npes = T.nvshmem.my_pe(), T.nvshmem.n_pes()
            T.nvshmem.putmem(dst, src, n * 4, (me + 1) % npes, scope="block")
            T.nvshmem.getmem(back, src, n * 4, (me + 1) % npes, scope="warp")
            T.nvshmem.barrier_all(scope="block")
    return f.func


def ring_shift(n: int) -> tsir.PrimFunc:
    with T.prim_func("nvshmem_ring") as f:
        src, dst = T.param("src", (n,), "float32"), T.param("dst", (n,), "float32")
        sig = T.param("sig", (1,), "uint64")
        epoch = T.scalar("epoch", "int32")
        with T.Kernel(1, threads=256):
            peer = (T.nvshmem.my_pe() + 1) % T.nvshmem.n_pes()
            T.nvshmem.putmem_signal_nbi(dst, src, n * 4, sig, epoch, "set", peer, scope="block")
            T.nvshmem.signal_wait_until(sig, "ge", epoch)
    return f.func


def all_gather(n: int, world: int) -> tsir.PrimFunc:
    """Block b puts this PE's chunk to PE (me + b) % world and waits for the chunk of PE b."""
    with T.prim_func("nvshmem_all_gather") as f:
        src, out = T.param("src", (n,), "float32"), T.param("out", (world * n,), "float32")
        sig = T.param("sig", (world,), "uint64")
        epoch = T.scalar("epoch", "int32")
        with T.Kernel(world, threads=256) as bx:
            me = T.nvshmem.my_pe()
            peer = (me + bx) % T.nvshmem.n_pes()
            T.nvshmem.putmem_signal_nbi(out[me * n], src, n * 4, sig[me], epoch, "set", peer)
            T.nvshmem.signal_wait_until(sig[bx], "ge", epoch)
    return f.func


def ipc_put(n: int, blocks: int) -> tsir.PrimFunc:
    per = n // blocks
    with T.prim_func("ipc_put") as f:
        src = T.param("src", (n,), "float32", scope="symmetric")
        dst = T.param("dst", (n,), "float32", scope="symmetric")
        with T.Kernel(blocks, threads=512) as bx:
            T.put_block(
                src[bx * per], dst[bx * per], per, dst_pe=(T.get_rank() + 1) % T.get_num_ranks()
            )
    return f.func


def nvshmem_put(n: int, blocks: int) -> tsir.PrimFunc:
    per = n // blocks
    with T.prim_func("nvshmem_put") as f:
        src, dst = T.param("src", (n,), "float32"), T.param("dst", (n,), "float32")
        with T.Kernel(blocks, threads=512) as bx:
            peer = (T.nvshmem.my_pe() + 1) % T.nvshmem.n_pes()
            T.nvshmem.putmem_nbi(dst[bx * per], src[bx * per], per * 4, peer, scope="block")
    return f.func


def run(group: Any) -> None:
    import torch

    r, w = group.rank, group.world_size
    n = 4096 + 64
    src, dst, back = (dist.empty((n,), "float32", backend="nvshmem") for _ in range(3))
    sig = dist.zeros((w + 1,), "uint64", backend="nvshmem")  # [0, w): all-gather, [w]: ring
    out = dist.empty((w * n,), "float32", backend="nvshmem")
    src.copy_(pattern(n, torch.float32, r))
    torch.cuda.synchronize()
    dist.barrier()
    tsir.compile(put_get(n), target="cuda")(src, dst, back)
    torch.cuda.synchronize()
    check_equal("nvshmem put", dst, pattern(n, torch.float32, (r - 1) % w))
    check_equal("nvshmem get", back, pattern(n, torch.float32, (r + 1) % w))
    dist.barrier()
    ring = tsir.compile(ring_shift(n), target="cuda")
    ag = tsir.compile(all_gather(n, w), target="cuda")
    for epoch in (1, 2):
        src.copy_(pattern(n, torch.float32, r, salt=epoch))
        torch.cuda.synchronize()
        dist.barrier()
        ring(src, dst, sig[w : w + 1], epoch)
        torch.cuda.synchronize()
        check_equal(
            f"nvshmem ring shift {epoch}", dst, pattern(n, torch.float32, (r - 1) % w, salt=epoch)
        )
        dist.barrier()
        ag(src, out, sig[0:w], epoch)
        torch.cuda.synchronize()
        want = torch.cat([pattern(n, torch.float32, q, salt=epoch) for q in range(w)])
        check_equal(f"nvshmem all_gather {epoch}", out, want)
        dist.barrier()


def bench(group: Any, iters: int = 20) -> list[tuple[str, float]]:
    import torch

    rows = []
    n = 16 << 20  # 64 MiB of float32
    a, b = (
        dist.empty((n,), "float32", backend="nvshmem"),
        dist.empty((n,), "float32", backend="nvshmem"),
    )
    with dist.scope():
        c, d = dist.empty((n,), "float32"), dist.empty((n,), "float32")
        for blocks in (1, 132):
            size = n if blocks > 1 else n // 16
            for name, k, x, y in (
                ("IPC put_block", tsir.compile(ipc_put(size, blocks), target="cuda"), c, d),
                (
                    "NVSHMEM putmem_nbi_block",
                    tsir.compile(nvshmem_put(size, blocks), target="cuda"),
                    a,
                    b,
                ),
            ):
                xs, ys = x[:size], y[:size]
                for _ in range(3):
                    k(xs, ys)
                torch.cuda.synchronize()
                dist.barrier()
                t0 = time.perf_counter()
                for _ in range(iters):
                    k(xs, ys)
                torch.cuda.synchronize()
                us = (time.perf_counter() - t0) / iters * 1e6
                rows.append(
                    (f"{name} {blocks} block(s) {size * 4 >> 20} MiB", us, size * 4 / us / 1e3)
                )
                dist.barrier()
    return rows


def main() -> None:
    import torch

    group = dist.init(heap_bytes=512 << 20, backend="nvshmem")
    torch.cuda.set_device(group.device)
    t0 = time.perf_counter()
    if "--bench" in sys.argv:
        rows = bench(group)
        if group.rank == 0:
            for name, us, gbs in rows:
                print(f"{name:<58} {us:>10.1f} us {gbs:>8.1f} GB/s")
    else:
        try:
            run(group)
        except Exception:
            print(f"FAIL nvshmem_examples (rank {group.rank})", flush=True)
            raise
        print(
            f"PASS nvshmem_examples (rank {group.rank}, {time.perf_counter() - t0:.2f} s)",
            flush=True,
        )
    dist.finalize()


if __name__ == "__main__":
    main()
