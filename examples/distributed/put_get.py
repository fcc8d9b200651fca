"""Remote copies at block and warp scope: every rank pushes (put) to, or pulls (get) from, the next
rank, for several dtypes, odd sizes and misaligned offsets (the 16-byte path, the narrower paths and
the bytewise head and tail), then checks every element exactly.

    python -m tsir.runtime.launch -n 2 examples/distributed/put_get.py
"""

from __future__ import annotations

from typing import Any

from common import WAIT_CYCLES, check_equal, pattern, run_main

import tsir
from tsir import T

# (dtype, elements per block, source offset, destination offset): aligned, misaligned, tiny.
CASES = [
    ("float32", 4096, 0, 0),
    ("float32", 1000, 1, 3),
    ("float16", 777, 0, 1),
    ("bfloat16", 4099, 5, 5),
    ("int8", 1023, 3, 0),
    ("float64", 129, 0, 1),
    ("int32", 1, 0, 0),
]
BLOCKS = 4
THREADS = 128


def remote_copy(
    dtype: str, chunk: int, off_src: int, off_dst: int, scope: str, put: bool
) -> tsir.PrimFunc:
    """Block b copies `chunk` elements starting at b*chunk+off between this rank and the next;
    at warp scope each of the block's warps copies its quarter (the last one the remainder)."""
    n = BLOCKS * chunk + 8
    name = f"{'put' if put else 'get'}_{scope}"
    with T.prim_func(name) as f:
        src = T.param("src", (n,), dtype, scope="symmetric")
        dst = T.param("dst", (n,), dtype, scope="symmetric")
        bar = T.param("bar", (64,), "int32", scope="symmetric")
        with T.Kernel(BLOCKS, threads=THREADS) as bx:
            tx = T.get_thread_binding(0)
            peer = (T.get_rank() + 1) % T.get_num_ranks()
            src_pe = (T.get_rank() + T.get_num_ranks() - 1) % T.get_num_ranks()
            if scope == "block":
                s, d, size = bx * chunk + off_src, bx * chunk + off_dst, chunk
            else:
                warps = THREADS // 32
                part = chunk // warps
                w = tx // 32
                s = bx * chunk + w * part + off_src
                d = bx * chunk + w * part + off_dst
                size = T.if_then_else(w == warps - 1, chunk - part * (warps - 1), part)
            copy = {
                ("block", True): T.put_block,
                ("block", False): T.get_block,
                ("warp", True): T.put_warp,
                ("warp", False): T.get_warp,
            }[(scope, put)]
            if put:
                copy(src[s], dst[d], size, dst_pe=peer)
            else:
                copy(src[s], dst[d], size, src_pe=src_pe)
            T.barrier_blocks(bar, timeout_cycles=WAIT_CYCLES)
    return f.func


def kernels() -> dict[str, tsir.PrimFunc]:
    """Every kernel of this example (the CPU tests compile them for sm_80 / sm_90a / sm_100a)."""
    out = {}
    for dtype, chunk, so, do in CASES:
        for scope in ("block", "warp"):
            for put in (True, False):
                out[f"{'put' if put else 'get'}_{scope}_{dtype}_{chunk}_{so}_{do}"] = remote_copy(
                    dtype, chunk, so, do, scope, put
                )
    return out


def run(group: Any) -> None:
    import torch
    import tsir.runtime.dist as dist

    r, w = group.rank, group.world_size
    prev = (r - 1) % w
    with dist.scope():
        bar = dist.zeros((64,), "int32")
        for dtype, chunk, so, do in CASES:
            tdt = getattr(torch, dtype)
            n = BLOCKS * chunk + 8
            src = dist.empty((n,), dtype)
            dst = dist.empty((n,), dtype)
            for scope in ("block", "warp"):
                for put in (True, False):
                    kernel = tsir.compile(
                        remote_copy(dtype, chunk, so, do, scope, put), target="cuda"
                    )
                    src.copy_(pattern(n, tdt, r, salt=chunk))
                    # poison: every byte must be overwritten or kept
                    dst.view(torch.uint8).fill_(0x5A)
                    torch.cuda.synchronize()
                    dist.barrier()  # every rank's src is written and dst poisoned before anyone copies
                    kernel(src, dst, bar)
                    torch.cuda.synchronize()
                    # put: our dst holds the previous rank's src; get: we pulled the previous rank's src
                    want = torch.empty_like(dst)
                    want.view(torch.uint8).fill_(0x5A)  # untouched bytes keep the poison
                    other = pattern(n, tdt, prev, salt=chunk)
                    for b in range(BLOCKS):
                        want[b * chunk + do : b * chunk + do + chunk] = other[
                            b * chunk + so : b * chunk + so + chunk
                        ]
                    check_equal(
                        f"{'put' if put else 'get'}_{scope} {dtype} n={chunk} offsets=({so},{do})",
                        dst,
                        want,
                    )
                    dist.barrier()  # nobody reuses src/dst while a peer may still read them


if __name__ == "__main__":
    run_main("put_get", run)
