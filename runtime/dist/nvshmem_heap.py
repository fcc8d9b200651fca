"""NVSHMEM's symmetric heap through nvshmem4py: bootstrap over tsir's group, tensors, module init.

`init(group)` (called by `dist.init(backend="nvshmem")`): rank 0 makes a unique id
(`nvshmem.core.get_unique_id`), the group's store all-gathers it, and every rank calls
`nvshmem.core.init(uid=, rank=, nranks=, initializer_method="uid")` on its device. `empty(shape,
dtype)` allocates with `nvshmem.core.tensor` (collective, like dist.empty). Modules that call
NVSHMEM are initialized after load by `cumodule_init` (runtime/nvshmem.py, via the driver's
MODULE_INITIALIZERS). Needs `nvshmem4py-cu13` (and `nvidia-nvshmem-cu13`).
"""

from __future__ import annotations

from typing import Any

from ...errors import TSIRError
from . import store as _store

__all__ = ["init", "finalize", "is_initialized", "empty", "cumodule_init"]

_state: dict[str, Any] = {}
_INSTALL = "pip install nvshmem4py-cu13 nvidia-nvshmem-cu13"


def _core() -> Any:
    try:
        import nvshmem.core as core  # pyright: ignore[reportMissingImports]  # optional: nvshmem is not a dependency of tsir
    except ImportError as e:
        raise TSIRError(
            f"NVSHMEM's host side needs nvshmem4py ({e}); {_INSTALL}", where="tsir.runtime.dist"
        ) from None
    return core


def is_initialized() -> bool:
    return bool(_state)


def init(group: Any) -> None:
    """Initialize NVSHMEM over `group` (collective; once per process)."""
    if _state:
        return
    import numpy as np

    core = _core()
    from cuda.core import Device  # pyright: ignore[reportAttributeAccessIssue]  # a compiled module: no stubs for the checker

    if group.rank == 0:
        uid = core.get_unique_id()
        data = bytes(uid._data.view(np.uint8))
    else:
        uid, data = core.get_unique_id(empty=True), b""
    key = f"{group.prefix}/nvshmem-uid"
    ids = _store.all_gather(group.store, key, group.rank, group.world_size, data, group.timeout)
    if group.rank != 0:
        uid._data.view(np.uint8)[:] = np.frombuffer(ids[0], np.uint8)
    dev = Device(group.device)
    dev.set_current()
    core.init(device=dev, uid=uid, rank=group.rank, nranks=group.world_size, initializer_method="uid")
    _state.update(core=core, group=group, tensors=[])


def empty(shape: Any, dtype: Any) -> Any:
    """A tensor in NVSHMEM's symmetric heap (collective: same calls on every rank)."""
    if not _state:
        raise TSIRError(
            'dist.empty(..., backend="nvshmem") needs dist.init(backend="nvshmem") first'
        )
    import torch  # pyright: ignore[reportMissingImports]  # optional: torch is not a dependency of tsir

    tdt = getattr(torch, str(dtype).removeprefix("torch.")) if not isinstance(dtype, torch.dtype) else dtype
    dims = (shape,) if isinstance(shape, int) else tuple(int(d) for d in shape)
    t = _state["core"].tensor(dims, dtype=tdt)
    _state["tensors"].append(t)
    return t


def cumodule_init(module: Any) -> None:
    import nvshmem.bindings as bindings  # pyright: ignore[reportMissingImports]  # optional: nvshmem is not a dependency of tsir

    bindings.cumodule_init(int(module))


def finalize() -> None:
    if not _state:
        return
    core = _state["core"]
    try:
        import torch  # pyright: ignore[reportMissingImports]  # optional: torch is not a dependency of tsir

        torch.cuda.synchronize()
        for t in _state["tensors"]:
            core.free_tensor(t)
        core.finalize()
    finally:
        _state.clear()
