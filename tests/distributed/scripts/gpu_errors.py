"""Bad input on real GPUs (run by test_multigpu.py through the launcher), each check printing
`OK <what>`; the allocation-order check comes last (it leaves the heap's order broken)."""

import sys

import torch
import tsir.runtime.dist as dist

import tsir
from tsir import T
from tsir.errors import BuildError, LaunchError

g = dist.init(heap_bytes=64 << 20)
torch.cuda.set_device(g.device)

with T.prim_func("shift") as f:
    src = T.param("src", (1024,), "float32", scope="symmetric")
    dst = T.param("dst", (1024,), "float32", scope="symmetric")
    with T.Kernel(1, threads=128):
        T.put_block(src, dst, 1024, dst_pe=(T.get_rank() + 1) % T.get_num_ranks())
kernel = tsir.compile(f.func, target="cuda")
a, b = dist.zeros((1024,), "float32"), dist.zeros((1024,), "float32")
kernel(a, b)  # the rank table was filled on this first launch, with no user call
torch.cuda.synchronize()
try:
    kernel(a, torch.zeros(1024, device="cuda"))
    sys.exit("a non-symmetric tensor was accepted")
except LaunchError as e:
    assert "argument 'dst' must be a symmetric tensor" in str(e), e
    print("OK non-symmetric argument rejected at call time", flush=True)

try:
    with T.prim_func("bad_pe") as f2:
        s = T.param("s", (8,), "int32", scope="symmetric")
        with T.Kernel(1, threads=32):
            T.st(s[0], 1, dst_pe=g.world_size)
    sys.exit("a constant peer out of range was accepted")
except BuildError as e:
    assert f"dst_pe={g.world_size} is out of range: the group has {g.world_size} ranks" in str(e), e
    print("OK constant peer out of range rejected when built", flush=True)

dist.barrier()
try:
    if g.rank == 0:
        dist.empty((16,), "float32")
    else:
        dist.empty((8,), "int64")
    sys.exit("allocations in different orders were accepted")
except dist.AllocationOrderError as e:
    assert "differs between ranks" in str(e), e
    print("OK allocation order mismatch reported", flush=True)
dist.finalize()
print("OK finalized", flush=True)
