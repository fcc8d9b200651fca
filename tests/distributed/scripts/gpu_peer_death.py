"""Rank 1 exits after the group formed; rank 0 waits on a flag only rank 1 would set, with a
timeout: the kernel must print what it saw and trap, and the host must get an error, not hang."""

import ctypes
import os
import sys

import torch
import tsir.runtime.dist as dist

import tsir
from tsir import T

g = dist.init(heap_bytes=16 << 20)
torch.cuda.set_device(g.device)
flag = dist.zeros((4,), "int32")
with T.prim_func("wait_for_peer") as f:
    fl = T.param("flag", (4,), "int32", scope="symmetric")
    with T.Kernel(1, threads=32):
        with T.If(T.get_thread_binding() == 0):
            T.wait_eq(fl[2], 1, timeout_cycles=400_000_000)
kernel = tsir.compile(f.func, target="cuda")
dist.barrier()
if g.rank == 1:
    print("rank 1 exits without setting the flag", flush=True)
    os._exit(0)
kernel(flag)
try:
    torch.cuda.synchronize()
except Exception as e:  # noqa: BLE001
    print(f"host saw: {type(e).__name__}: {e}", flush=True)
    # The device's printf goes through C stdio, which os._exit does not flush.
    ctypes.CDLL(None).fflush(None)
    os._exit(3)
print("the wait returned although nobody set the flag", flush=True)
sys.exit(1)
