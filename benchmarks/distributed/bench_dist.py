"""Distributed benchmarks, side by side in one run (one process per GPU):

1. one-block put bandwidth, 2 KiB to 4 MiB (rank 0 pushes to rank 1; 128 and 1024 threads; and a
   one-block get, 1024 threads, for reference);
2. full-GPU put of 256 MiB against the copy engine (cuMemcpyDtoDAsync into the peer's mapped
   heap), rank 0 -> rank 1 alone, and every rank to the next at once (ring);
3. all-gather and all-to-all, 64 KiB to 128 MiB per rank (bf16), against NCCL through
   torch.distributed, eager and replayed from CUDA graphs. Every size is checked against NCCL's
   output first.
The GEMM benchmarks (all-gather + GEMM, GEMM + reduce-scatter) wait for the tile GEMM.

    python -m tsir.runtime.launch -n 2 benchmarks/distributed/bench_dist.py --json out.json --markdown out.md

Times: CUDA events around a loop of back-to-back runs after warm-up, the slowest rank's mean;
bandwidth = bytes each rank sends (put) or gathers (collectives: world x per-rank bytes for
all-gather "algbw", as nccl-tests counts it) per second.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import sys
from collections.abc import Callable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "examples", "distributed"))

import tsir.runtime.dist as dist  # noqa: E402

import tsir  # noqa: E402
from tsir import T  # noqa: E402

KiB, MiB = 1 << 10, 1 << 20
WAIT = 20_000_000_000


def one_block_copy(max_elems: int, threads: int, put: bool) -> tsir.PrimFunc:
    with T.prim_func("one_block_put" if put else "one_block_get") as f:
        src = T.param("src", (max_elems,), "float32", scope="symmetric")
        dst = T.param("dst", (max_elems,), "float32", scope="symmetric")
        n = T.scalar("n", "int32")
        with T.Kernel(1, threads=threads):
            peer = (T.get_rank() + 1) % T.get_num_ranks()
            if put:
                T.put_block(src, dst, n, dst_pe=peer)
            else:
                T.get_block(src, dst, n, src_pe=peer)
            T.fence_sys()
    return f.func


def full_gpu_put(nelems: int, blocks: int, threads: int) -> tsir.PrimFunc:
    per = T.ceildiv(T.ceildiv(nelems, blocks), 256) * 256  # 1 KiB multiples: aligned slices
    with T.prim_func("full_gpu_put") as f:
        src = T.param("src", (nelems,), "float32", scope="symmetric")
        dst = T.param("dst", (nelems,), "float32", scope="symmetric")
        with T.Kernel(blocks, threads=threads) as bx:
            peer = (T.get_rank() + 1) % T.get_num_ranks()
            T.put_block(src[bx * per], dst[bx * per], per, dst_pe=peer)
    return f.func


def timed(fn: Callable[[], Any], iters: int, warmup: int = 3) -> float:
    """Mean seconds per call over `iters` back-to-back calls, the slowest rank's (collective)."""
    import torch

    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    dist.barrier()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        fn()
    end.record()
    end.synchronize()
    mine = start.elapsed_time(end) / 1e3 / iters
    return max(
        struct.unpack("d", b)[0]
        for b in dist.current_group().all_gather(f"t{next(_seq)}", struct.pack("d", mine))
    )


def graph_timed(fn: Callable[[], Any], iters: int) -> float | None:
    """Like `timed`, replaying `iters` calls captured in one CUDA graph (no host launch cost)."""
    import torch

    ok = 1
    try:
        fn()
        torch.cuda.synchronize()
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            for _ in range(iters):
                fn()
        torch.cuda.synchronize()
    except Exception as e:  # noqa: BLE001  (reported as n/a)
        print(f"[rank {dist.rank()}] graph capture failed: {type(e).__name__}: {e}", flush=True)
        ok = 0
    if not all(
        struct.unpack("i", b)[0]
        for b in dist.current_group().all_gather(f"g{next(_seq)}", struct.pack("i", ok))
    ):
        return None
    return timed(g.replay, 3, warmup=1) / iters


def _counter() -> Any:
    n = 0
    while True:
        n += 1
        yield n


_seq = _counter()


def bench_one_block(rows: list[dict[str, Any]], sizes: list[int]) -> None:
    import torch

    me = dist.rank()
    max_elems = max(sizes) // 4
    kernels = {
        ("put", 128): tsir.compile(one_block_copy(max_elems, 128, True), target="cuda"),
        ("put", 1024): tsir.compile(one_block_copy(max_elems, 1024, True), target="cuda"),
        ("get", 1024): tsir.compile(one_block_copy(max_elems, 1024, False), target="cuda"),
    }
    with dist.scope():
        src, dst = dist.empty((max_elems,), "float32"), dist.zeros((max_elems,), "float32")
        src.copy_(torch.arange(max_elems, device="cuda", dtype=torch.float32) + me)
        for nbytes in sizes:
            n = nbytes // 4
            row: dict[str, Any] = {"bench": "one_block", "bytes": nbytes}
            for (kind, threads), k in kernels.items():

                def run(k: Any = k) -> None:
                    if me == 0:
                        k(src, dst, n)

                t = timed(run, 20 if nbytes >= MiB else 100)
                row[f"{kind}{threads}_GBps"] = nbytes / t / 1e9
            rows.append(row)
            _print(row)
        torch.cuda.synchronize()
        dist.barrier()
        if me == 1:  # the last put landed in full
            n = max(sizes) // 4
            want = torch.arange(n, device="cuda", dtype=torch.float32)
            assert torch.equal(dst[:n], want), "one-block put: wrong data"
        dist.barrier()


def bench_full_gpu(rows: list[dict[str, Any]], nbytes: int) -> None:
    import torch
    from tsir.runtime import driver as drv

    me, w = dist.rank(), dist.world_size()
    n = nbytes // 4
    sms = torch.cuda.get_device_properties(torch.cuda.current_device()).multi_processor_count
    with dist.scope():
        src, dst = dist.empty((n,), "float32"), dist.empty((n,), "float32")
        src.copy_(torch.arange(n, device="cuda", dtype=torch.float32) + me)
        peer_dst = dist.peer(dst, (me + 1) % w).data_ptr()
        d = drv.driver()

        def memcpy() -> None:
            stream = d.CUstream(torch.cuda.current_stream().cuda_stream)
            drv.check(d.cuMemcpyDtoDAsync(peer_dst, src.data_ptr(), nbytes, stream), "peer memcpy")

        configs = [(sms, 1024), (2 * sms, 512), (4 * sms, 256)]
        for mode in ("uni", "ring"):
            active = (lambda: me == 0) if mode == "uni" else (lambda: True)
            row: dict[str, Any] = {"bench": f"full_gpu_put_{mode}", "bytes": nbytes}
            row["memcpy_GBps"] = nbytes / timed(lambda: memcpy() if active() else None, 10) / 1e9
            best = 0.0
            for blocks, threads in configs:
                k = tsir.compile(full_gpu_put(n, blocks, threads), target="cuda")
                gbps = nbytes / timed(lambda k=k: k(src, dst) if active() else None, 10) / 1e9
                row[f"put_{blocks}x{threads}_GBps"] = gbps
                if gbps > best:
                    best, row["put_best_config"] = gbps, f"{blocks}x{threads}"
            row["put_GBps"] = best
            row["put_vs_memcpy"] = best / row["memcpy_GBps"]
            rows.append(row)
            _print(row)
        torch.cuda.synchronize()
        dist.barrier()
        want = torch.arange(n, device="cuda", dtype=torch.float32) + (me - 1) % w
        assert torch.equal(dst, want), "full-GPU put: wrong data"
        dist.barrier()


def blocks_per_peer(nbytes_per_peer: int, world: int, sms: int) -> int:
    """About 1 MiB per block, at least one block per peer, every block resident (barrier)."""
    return max(1, min(sms // world, nbytes_per_peer // MiB))


def bench_collectives(rows: list[dict[str, Any]], sizes: list[int], graphs: bool) -> None:
    import collectives
    import torch
    import torch.distributed as tdist

    me, w = dist.rank(), dist.world_size()
    sms = torch.cuda.get_device_properties(torch.cuda.current_device()).multi_processor_count
    with dist.scope():
        bar = dist.zeros((64,), "int32")
        for nbytes in sizes:
            chunk = nbytes // 2
            bpp = blocks_per_peer(nbytes, w, sms)
            ag = tsir.compile(collectives.all_gather(chunk, w, bpp, threads=512), target="cuda")
            a2a = tsir.compile(
                collectives.all_to_all(chunk // w, w, bpp, threads=512), target="cuda"
            )
            with dist.scope():
                inp, out = dist.empty((chunk,), "bfloat16"), dist.empty((w * chunk,), "bfloat16")
                inp.copy_((torch.arange(chunk, device="cuda") % 251 + me).to(torch.bfloat16))
                ref = torch.empty(w * chunk, dtype=torch.bfloat16, device="cuda")
                a_in, a_out = dist.empty((chunk,), "bfloat16"), dist.empty((chunk,), "bfloat16")
                a_in.copy_((torch.arange(chunk, device="cuda") % 241 + 3 * me).to(torch.bfloat16))
                a_ref = torch.empty(chunk, dtype=torch.bfloat16, device="cuda")
                cases = {
                    "all_gather": (
                        lambda: ag(inp, out, bar),
                        lambda: tdist.all_gather_into_tensor(ref, inp),
                        out,
                        ref,
                        w * nbytes,
                    ),
                    "all_to_all": (
                        lambda: a2a(a_in, a_out, bar),
                        lambda: tdist.all_to_all_single(a_ref, a_in),
                        a_out,
                        a_ref,
                        nbytes,
                    ),
                }
                for name, (ours, nccl, got, want, moved) in cases.items():
                    ours()
                    nccl()
                    torch.cuda.synchronize()
                    assert torch.equal(got, want), (
                        f"{name} at {nbytes} bytes per rank differs from NCCL"
                    )
                    iters = 50 if nbytes <= 4 * MiB else 10
                    row: dict[str, Any] = {
                        "bench": name,
                        "bytes_per_rank": nbytes,
                        "blocks_per_peer": bpp,
                    }
                    row["tsir_us"] = timed(ours, iters) * 1e6
                    row["nccl_us"] = timed(nccl, iters) * 1e6
                    if graphs:
                        g_ours, g_nccl = graph_timed(ours, iters), graph_timed(nccl, iters)
                        row["tsir_graph_us"] = g_ours * 1e6 if g_ours else None
                        row["nccl_graph_us"] = g_nccl * 1e6 if g_nccl else None
                    row["tsir_GBps"] = moved / row["tsir_us"] / 1e3
                    row["nccl_GBps"] = moved / row["nccl_us"] / 1e3
                    row["speedup"] = row["nccl_us"] / row["tsir_us"]
                    rows.append(row)
                    _print(row)


def _print(row: dict[str, Any]) -> None:
    if dist.rank() == 0:
        cells = [f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()]
        print("  ".join(cells), flush=True)


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    out = [f"### Distributed, {meta['world_size']}x {meta['device']}, {meta['date']}", ""]
    out += [
        "One-block put (rank 0 -> 1), GB/s:",
        "",
        "| bytes | put 128 thr | put 1024 thr | get 1024 thr |",
        "|---:|---:|---:|---:|",
    ]
    for r in (r for r in rows if r["bench"] == "one_block"):
        out.append(
            f"| {r['bytes']} | {r['put128_GBps']:.2f} | {r['put1024_GBps']:.2f} | {r['get1024_GBps']:.2f} |"
        )
    out += [
        "",
        "Full-GPU put of 256 MiB vs the copy engine, GB/s:",
        "",
        "| mode | tsir put (config) | peer memcpy | ratio |",
        "|---|---:|---:|---:|",
    ]
    for r in (r for r in rows if r["bench"].startswith("full_gpu_put")):
        out.append(
            f"| {r['bench'][13:]} | {r['put_GBps']:.1f} ({r['put_best_config']}) | {r['memcpy_GBps']:.1f} | {r['put_vs_memcpy']:.1%} |"
        )
    for name in ("all_gather", "all_to_all"):
        out += [
            "",
            f"{name} (bf16), per-rank bytes; µs (graph-replayed µs):",
            "",
            "| bytes/rank | tsir µs | NCCL µs | speedup | tsir graph µs | NCCL graph µs | tsir GB/s | NCCL GB/s |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in (r for r in rows if r["bench"] == name):
            g = lambda v: f"{v:.1f}" if v else "n/a"  # noqa: E731
            out.append(
                f"| {r['bytes_per_rank']} | {r['tsir_us']:.1f} | {r['nccl_us']:.1f} | {r['speedup']:.2f}x | "
                f"{g(r.get('tsir_graph_us'))} | {g(r.get('nccl_graph_us'))} | {r['tsir_GBps']:.1f} | {r['nccl_GBps']:.1f} |"
            )
    return "\n".join(out) + "\n"


def main() -> None:
    import datetime

    import torch

    ap = argparse.ArgumentParser()
    ap.add_argument("--json", default="")
    ap.add_argument("--markdown", default="")
    ap.add_argument("--only", default="one_block,full_gpu,collectives")
    ap.add_argument("--max-collective-bytes", type=int, default=128 * MiB)
    ap.add_argument("--no-graphs", action="store_true")
    args = ap.parse_args()
    dist.init(heap_bytes=int(os.environ.get("TSIR_BENCH_HEAP", str(3 << 30))))
    torch.cuda.set_device(dist.current_group().device)
    rows: list[dict[str, Any]] = []
    only = set(args.only.split(","))
    if "one_block" in only:
        bench_one_block(rows, [2 * KiB << i for i in range(12)])
    if "full_gpu" in only:
        bench_full_gpu(rows, 256 * MiB)
    if "collectives" in only:
        sizes = [64 * KiB << i for i in range(12) if 64 * KiB << i <= args.max_collective_bytes]
        bench_collectives(rows, sizes, graphs=not args.no_graphs)
    meta = {
        "world_size": dist.world_size(),
        "device": torch.cuda.get_device_name(),
        "date": datetime.date.today().isoformat(),
        "tsir": tsir.__version__,
    }
    if dist.rank() == 0:
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"meta": meta, "rows": rows}, f, indent=1)
        text = markdown(rows, meta)
        print(text)
        if args.markdown:
            with open(args.markdown, "w") as f:
                f.write(text)
    dist.finalize()


if __name__ == "__main__":
    main()
