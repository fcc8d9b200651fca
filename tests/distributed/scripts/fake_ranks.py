"""A rank of a CPU-only group: tsir.runtime.dist over the launcher's FileStore with a fake IPC
backend. `mode`: ok | order (allocations in another order on rank 1) | dead (rank 1 exits first)."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import tsir.runtime.dist as dist  # noqa: E402
from fakes import FakeIpc  # noqa: E402

mode = sys.argv[1]
rank = int(os.environ["RANK"])
if mode == "dead" and rank == 1:
    sys.exit(0)
g = dist.init(device=0, heap_bytes=1 << 20, timeout=3.0, _ipc=FakeIpc(rank=rank))
try:
    a = dist.empty((16,), "float32")
    b = dist.empty((16,), "float32") if mode == "order" and rank == 1 else dist.zeros((8,), "int32")
    dist.barrier()
    print(
        f"ok rank {g.rank}/{g.world_size} offsets {a.ptr - dist.heap().local_base} {b.ptr - dist.heap().local_base}",
        flush=True,
    )
finally:
    dist.finalize(timeout=3.0)
