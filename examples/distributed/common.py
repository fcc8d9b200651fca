"""Shared bits of the distributed examples: setup, exact checks, and a PASS/FAIL report.

Every example runs one process per GPU (`python -m tsir.runtime.launch -n 2 <example>.py`), checks
its results exactly, and prints `PASS <name>` (or raises). Every device-side wait has a timeout, so
a lost peer ends in an error, never a hang.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any

import tsir.runtime.dist as dist

# Device-side waits give up after this many clock cycles (~10 s at 2 GHz) and trap.
WAIT_CYCLES = int(os.environ.get("TSIR_EXAMPLE_WAIT_CYCLES", str(20_000_000_000)))


def setup(heap_bytes: int = 256 << 20) -> Any:
    """dist.init() and torch on this rank's GPU; returns the group."""
    import torch

    group = dist.init(heap_bytes=heap_bytes)
    torch.cuda.set_device(group.device)
    return group


def check_equal(name: str, got: Any, want: Any) -> None:
    """Exact equality (bitwise for floats: NaN poison must be gone)."""
    import torch

    if got.shape != want.shape or got.dtype != want.dtype:
        raise AssertionError(
            f"{name}: got {got.dtype}{tuple(got.shape)}, want {want.dtype}{tuple(want.shape)}"
        )
    g, w = got.contiguous().view(torch.uint8), want.contiguous().view(torch.uint8)
    if not torch.equal(g, w):
        bad = (got != want).nonzero()
        first = bad[0].tolist() if len(bad) else "?"
        raise AssertionError(
            f"{name}: {len(bad)} elements differ on rank {dist.rank()}; first at {first}: "
            f"got {got[tuple(bad[0])].item() if len(bad) else '?'}, want {want[tuple(bad[0])].item() if len(bad) else '?'}"
        )


def pattern(n: int, dtype: Any, rank: int, salt: int = 0) -> Any:
    """Distinct, exactly representable values that differ between ranks."""
    import torch

    x = (torch.arange(n, device="cuda", dtype=torch.int64) * 7 + rank * 1000 + salt * 13) % 251
    return x.to(dtype)


def run_main(name: str, run: Callable[[Any], None]) -> None:
    group = setup()
    t0 = time.perf_counter()
    try:
        run(group)
    except Exception:
        print(f"FAIL {name} (rank {group.rank})", flush=True)
        raise
    print(f"PASS {name} (rank {group.rank}, {time.perf_counter() - t0:.2f} s)", flush=True)
    dist.finalize()
    sys.stdout.flush()
