"""Process groups: who this process is (rank, world size, local rank, GPU) and how ranks talk.

`form_group` reads, in order: explicit arguments; an initialized torch.distributed default group;
the launcher variables RANK / WORLD_SIZE / LOCAL_RANK (torchrun, mpirun, `python -m
tsir.runtime.launch`), initializing torch.distributed from MASTER_ADDR / MASTER_PORT when torch is
installed; and otherwise a group of one. Messages go through a store: the one passed, torch's
default store, the directory in TSIR_DIST_STORE (set by tsir's launcher, so no torch is needed), or
an in-process store for a single rank.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from typing import Any

from ...errors import TSIRError
from . import store as _store

__all__ = ["Group", "form_group", "DEFAULT_TIMEOUT"]

DEFAULT_TIMEOUT = float(os.environ.get("TSIR_DIST_TIMEOUT", "120"))
_formations = itertools.count()


@dataclass
class Group:
    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    device: int
    store: Any = field(repr=False)
    prefix: str = field(repr=False, default="tsir/0")
    timeout: float = DEFAULT_TIMEOUT
    torch_group: Any = field(
        repr=False, default=None
    )  # the torch ProcessGroup, when torch formed it
    owns_torch_group: bool = field(repr=False, default=False)
    _barriers: int = field(repr=False, default=0)

    def all_gather(self, tag: str, value: bytes, timeout: float | None = None) -> list[bytes]:
        if self.world_size == 1:
            return [value]
        t = self.timeout if timeout is None else timeout
        return _store.all_gather(
            self.store, f"{self.prefix}/{tag}", self.rank, self.world_size, value, t
        )

    def barrier(self, tag: str = "barrier", timeout: float | None = None) -> None:
        """A host-side barrier over the store (no GPU work): returns when every rank reached it."""
        self._barriers += 1
        self.all_gather(f"{tag}/{self._barriers}", b"", timeout)


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise TSIRError(f"environment variable {name}={value!r} is not an integer") from None


def _torch_dist() -> Any:
    try:
        import torch.distributed as tdist  # pyright: ignore[reportMissingImports]  # optional: torch is not a dependency of tsir
    except ImportError:
        return None
    return tdist if tdist.is_available() else None


def _device_count() -> int:
    from .. import driver as drv

    return drv.device_count()


def form_group(
    rank: int | None,
    world_size: int | None,
    *,
    group: Any = None,
    store: Any = None,
    local_rank: int | None = None,
    device: int | None = None,
    timeout: float | None = None,
    backend: str | None = None,
) -> Group:
    """Who we are and how to reach the others (the module docstring gives the sources' order)."""
    tdist = _torch_dist()
    torch_group, owns = None, False
    if (rank is None) != (world_size is None):
        raise TSIRError("dist.init: pass both rank and world_size, or neither")
    if group is not None:
        if tdist is None or not tdist.is_initialized():
            raise TSIRError("dist.init(group=...) needs torch.distributed to be initialized")
        torch_group = group
        rank, world_size = tdist.get_rank(group), tdist.get_world_size(group)
    elif rank is None and tdist is not None and tdist.is_initialized():
        rank, world_size = tdist.get_rank(), tdist.get_world_size()
    elif rank is None and _env_int("RANK") is not None:
        rank, world_size = _env_int("RANK"), _env_int("WORLD_SIZE")
        if world_size is None:
            raise TSIRError(
                "RANK is set but WORLD_SIZE is not; launch with torchrun or "
                "python -m tsir.runtime.launch"
            )
    elif rank is None:
        rank, world_size = 0, 1
    assert rank is not None and world_size is not None
    if not 0 <= rank < world_size:
        raise TSIRError(f"dist.init: rank {rank} is not in [0, {world_size})")
    if local_rank is None:
        local_rank = _env_int("LOCAL_RANK")
    if local_rank is None:
        local_rank = rank
    local_world = _env_int("LOCAL_WORLD_SIZE") or world_size
    if device is None:
        count = _device_count()
        if count == 0:
            raise TSIRError("dist.init: no CUDA device is visible to this process")
        device = local_rank % count
    torch_mod = _torch()
    if torch_mod is not None:
        torch_mod.cuda.set_device(device)  # so torch allocations of this rank land on its GPU
    if (
        store is None
        and world_size > 1
        and group is None
        and tdist is not None
        and not tdist.is_initialized()
    ):
        if os.environ.get("MASTER_ADDR") and os.environ.get("MASTER_PORT"):
            tdist.init_process_group(
                backend=backend
                or ("nccl" if torch_mod is not None and torch_mod.cuda.is_available() else "gloo"),
                rank=rank,
                world_size=world_size,
            )
            owns = True
    if store is not None:
        st = _store.as_store(store)
    elif tdist is not None and tdist.is_initialized():
        from torch.distributed import distributed_c10d as c10d  # pyright: ignore[reportMissingImports]  # optional: torch is not a dependency of tsir

        st = _store.TorchStore(c10d._get_default_store())
    elif os.environ.get("TSIR_DIST_STORE"):
        st = _store.FileStore(os.environ["TSIR_DIST_STORE"])
    elif world_size == 1:
        st = _store.LocalStore()
    else:
        raise TSIRError(
            f"dist.init: rank {rank} of {world_size} has no way to reach its peers: install torch, "
            f"launch with `python -m tsir.runtime.launch -n {world_size} script.py`, or pass store="
        )
    if tdist is not None and tdist.is_initialized() and torch_group is None:
        torch_group = tdist.group.WORLD
    prefix = f"tsir/{next(_formations)}"
    return Group(
        rank,
        world_size,
        local_rank,
        local_world,
        device,
        st,
        prefix,
        timeout if timeout is not None else DEFAULT_TIMEOUT,
        torch_group,
        owns,
    )


def _torch() -> Any:
    try:
        import torch  # pyright: ignore[reportMissingImports]  # optional: torch is not a dependency of tsir
    except ImportError:
        return None
    return torch
