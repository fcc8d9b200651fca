"""1000 back-to-back cross-rank barriers in one kernel, checking for torn data at every step.

Iteration i: every block writes the stamp `base + i` into its own slot on every rank (plain remote
stores), passes `T.barrier_blocks`, reads all ranks' slots of every block and counts any that does
not hold the stamp, then passes a second barrier before the next iteration overwrites them. The
kernel runs several times on one barrier buffer, with different numbers of blocks (the barrier
needs no reset), and every barrier has a timeout: a hang becomes an error.

    python -m tsir.runtime.launch -n 2 examples/distributed/barrier_stress.py
"""

from __future__ import annotations

from typing import Any

from common import WAIT_CYCLES, run_main

import tsir
from tsir import T

ITERATIONS = 500  # two barriers each: 1000 barriers per launch
MAX_SLOTS = 256


def barrier_stress(blocks: int, iterations: int = ITERATIONS, fence: bool = True) -> tsir.PrimFunc:
    with T.prim_func("barrier_stress") as f:
        data = T.param("data", (MAX_SLOTS,), "int32", scope="symmetric")
        bar = T.param("bar", (64,), "int32", scope="symmetric")
        errors = T.param("errors", (1,), "int32")
        base = T.scalar("base", "int32")
        with T.Kernel(blocks, threads=128) as bx:
            tx = T.get_thread_binding(0)
            me = T.get_rank()
            world = T.get_num_ranks()
            for i in T.serial(iterations):
                with T.If(tx < world):
                    T.st(data[me * blocks + bx], base + i, dst_pe=tx)
                if fence:
                    T.barrier_blocks(bar, timeout_cycles=WAIT_CYCLES)
                else:
                    T.fence_sys()
                    T.sync_blocks(bar, timeout_cycles=WAIT_CYCLES)
                    T.fence_sys()
                with T.If(tx < world * blocks):
                    with T.If(data[tx] != base + i):
                        T.atom_add(errors[0], 1)
                T.barrier_blocks(bar, timeout_cycles=WAIT_CYCLES)
    return f.func


def kernels() -> dict[str, tsir.PrimFunc]:
    return {"barrier_stress_8": barrier_stress(8), "sync_blocks_3": barrier_stress(3, fence=False)}


def run(group: Any) -> None:
    import torch
    import tsir.runtime.dist as dist

    if group.world_size * 8 > min(128, MAX_SLOTS):
        raise RuntimeError(f"barrier_stress supports up to 16 ranks, got {group.world_size}")
    with dist.scope():
        data = dist.zeros((MAX_SLOTS,), "int32")
        bar = dist.zeros((64,), "int32")
        errors = torch.zeros(1, dtype=torch.int32, device="cuda")
        runs = [(8, True), (3, True), (8, False), (1, True), (8, True)]
        for k, (blocks, fence) in enumerate(runs):
            kernel = tsir.compile(barrier_stress(blocks, fence=fence), target="cuda")
            kernel(data, bar, errors, 1 + k * ITERATIONS)
            torch.cuda.synchronize()
            n = int(errors.item())
            if n:
                raise AssertionError(
                    f"barrier_stress: {n} torn or stale slots in run {k} ({blocks} blocks, fence={fence})"
                )
        # Quiescent barrier state: every own count back to 0 (epochs only in the high bits).
        own = int(bar[group.rank].item()) & 0xFFFFF
        if own != 0:
            raise AssertionError(
                f"barrier_stress: the barrier's arrival count is {own}, not 0, after the runs"
            )
        dist.barrier()


if __name__ == "__main__":
    run_main("barrier_stress", run)
