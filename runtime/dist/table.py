"""The rank table of each loaded module: filled after the module is loaded, before its first launch.

A module whose CUDA includes `tsir/distributed.h` defines `__constant__ tsir::RankTable
tsir_rank_table` (rank, number of ranks, heap size, every rank's heap base in this process). The
driver (`tsir.runtime.driver.load_module`) calls `initialize_module` for every module that defines
the symbol, right after `cuModuleLoadData` and while the module's context is current; this module
then copies the current group's table into it. Modules stay registered until unloaded, so a group
formed (or re-formed) later refills them, and `dist.finalize()` leaves them pointing at nothing.
"""

from __future__ import annotations

import struct
import threading
from dataclasses import dataclass
from typing import Any

from ...errors import LaunchError
from .. import driver as drv

__all__ = [
    "SYMBOL",
    "MAX_RANKS",
    "TABLE_BYTES",
    "RankTable",
    "pack",
    "initialize_module",
    "forget_module",
    "set_table",
    "current_table",
    "loaded_modules",
]

SYMBOL = "tsir_rank_table"
MAX_RANKS = 64  # TSIR_MAX_RANKS in codegen/include/tsir/distributed.h
_LAYOUT = struct.Struct(f"<iiQ{MAX_RANKS}Q")  # struct tsir::RankTable
TABLE_BYTES = _LAYOUT.size


@dataclass(frozen=True)
class RankTable:
    rank: int
    num_ranks: int
    heap_bytes: int
    bases: tuple[int, ...]


def pack(t: RankTable) -> bytes:
    if not 1 <= t.num_ranks <= MAX_RANKS or len(t.bases) != t.num_ranks:
        raise ValueError(f"a rank table holds 1..{MAX_RANKS} ranks and one base each, got {t}")
    return _LAYOUT.pack(
        t.rank, t.num_ranks, t.heap_bytes, *t.bases, *([0] * (MAX_RANKS - t.num_ranks))
    )


_lock = threading.Lock()
_table: RankTable | None = None
# id -> (module handle, device, address of its tsir_rank_table) of every loaded module with a table
_modules: dict[int, tuple[Any, int, int]] = {}


def current_table() -> RankTable | None:
    return _table


def loaded_modules() -> int:
    return len(_modules)


def _global_address(module: Any) -> int:
    d = drv.driver()
    result = d.cuModuleGetGlobal(module, SYMBOL.encode())
    # The status first: on failure the size is meaningless (TileScale compared it before checking).
    ptr, size = drv.check(result, f"cuModuleGetGlobal({SYMBOL!r})")
    if int(size) != TABLE_BYTES:
        raise LaunchError(
            f"the module's {SYMBOL} is {int(size)} bytes, but tsir.runtime.dist expects "
            f"{TABLE_BYTES}: "
            f"the cubin was built from another version of tsir/distributed.h; recompile it"
        )
    return int(ptr)


def _copy(address: int, data: bytes) -> None:
    d = drv.driver()
    drv.check(d.cuMemcpyHtoD(address, data, len(data)), f"writing {SYMBOL} (cuMemcpyHtoD)")


def initialize_module(module: Any, device: int) -> None:
    """Fill a freshly loaded module's table (the module's context is current). Raises when no
    group exists: the kernel would otherwise run with rank 0 of 0 ranks and null heaps."""
    address = _global_address(module)
    with _lock:
        table = _table
        if table is None:
            raise LaunchError(
                "this kernel uses tsir's distributed operations (its module has a rank table), but "
                "this process has no group: call tsir.runtime.dist.init() before launching it"
            )
        _copy(address, pack(table))
        _modules[int(module)] = (module, device, address)


def forget_module(module: Any, device: int) -> None:
    with _lock:
        _modules.pop(int(module), None)


def set_table(table: RankTable | None) -> None:
    """Make `table` current and write it into every registered module (None: forget the group;
    modules keep their old contents until a new group is set)."""
    global _table
    with _lock:
        _table = table
        if table is None:
            return
        data = pack(table)
        for module, device, address in list(_modules.values()):
            prev = drv.activate(drv.primary_context(device))
            try:
                _copy(address, data)
            finally:
                drv.restore(prev)
