"""`tsir.runtime.dist`: process groups and symmetric memory over CUDA IPC (one process per GPU).

    import tsir.runtime.dist as dist
    group = dist.init()                       # RANK/WORLD_SIZE/LOCAL_RANK, or (rank, size, store=)
    x = dist.zeros((n,), "float32")           # the same offset of every rank's symmetric heap
    y = dist.peer(x, (group.rank + 1) % group.world_size)   # a view of the next rank's copy
    kernel(x, ...)                            # each module's rank table is filled on first launch
    dist.finalize()                           # collective: unmaps and frees (also run at exit)

Tensors are torch tensors when torch is installed, else DLPack `RawTensor`s; they live until
`dist.finalize()`. Allocation is collective and checked: every rank must allocate the same shapes
and dtypes in the same order (AllocationOrderError otherwise). See heap.py and table.py.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
from collections.abc import Iterator
from typing import Any

from ...errors import TSIRError
from .group import DEFAULT_TIMEOUT, Group, form_group
from .heap import DEFAULT_ALIGN, AllocationOrderError, HeapGroup, SymmetricHeap
from .store import FileStore, LocalStore, StoreTimeout, TorchStore

__all__ = [
    "init",
    "finalize",
    "is_initialized",
    "current_group",
    "heap",
    "rank",
    "world_size",
    "barrier",
    "empty",
    "zeros",
    "peer",
    "peers",
    "is_symmetric",
    "scope",
    "Group",
    "SymmetricHeap",
    "AllocationOrderError",
    "StoreTimeout",
    "FileStore",
    "LocalStore",
    "TorchStore",
    "DEFAULT_HEAP_BYTES",
]

DEFAULT_HEAP_BYTES = 1 << 30
_lock = threading.RLock()
_group: Group | None = None
_heap: SymmetricHeap | None = None
_atexit_registered = False


def _parse_bytes(text: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    t = text.strip().lower().removesuffix("ib").removesuffix("b")
    if t and t[-1] in units:
        return int(float(t[:-1]) * units[t[-1]])
    return int(t)


def init(
    rank: int | None = None,
    world_size: int | None = None,
    *,
    group: Any = None,
    store: Any = None,
    local_rank: int | None = None,
    device: int | None = None,
    heap_bytes: int | None = None,
    timeout: float | None = None,
    backend: str | None = None,
    _ipc: Any = None,
) -> Group:
    """Form the group and its symmetric heap (collective). Calling it again returns the group.

    `heap_bytes` defaults to TSIR_SYMMETRIC_HEAP_BYTES (accepts `2GiB`) or 1 GiB; `timeout`
    (seconds, default TSIR_DIST_TIMEOUT or 120) bounds every wait for a peer."""
    global _group, _heap, _atexit_registered
    with _lock:
        if _group is not None:
            if rank is not None and rank != _group.rank:
                raise TSIRError(f"dist.init: already initialized as rank {_group.rank}, not {rank}")
            return _group
        use_nvshmem = backend == "nvshmem"  # NVSHMEM's heap too; torch picks its own backend
        g = form_group(
            rank,
            world_size,
            group=group,
            store=store,
            local_rank=local_rank,
            device=device,
            timeout=timeout,
            backend=None if use_nvshmem else backend,
        )
        if g.world_size > 64:
            raise TSIRError(f"dist.init: {g.world_size} ranks, but the rank table holds at most 64")
        nbytes = heap_bytes or _parse_bytes(
            os.environ.get("TSIR_SYMMETRIC_HEAP_BYTES", str(DEFAULT_HEAP_BYTES))
        )
        nbytes = -(-nbytes // DEFAULT_ALIGN) * DEFAULT_ALIGN
        if _ipc is None:
            from .ipc import CudaIpc, node_id

            backend_obj, node = CudaIpc(g.device), node_id()
        else:
            backend_obj, node = _ipc, "fake-node"
        hg = HeapGroup(g.rank, g.world_size, g.store, g.prefix + "/heap", g.timeout)
        h = SymmetricHeap(hg, nbytes, backend_obj, node)
        _group, _heap = g, h
        _publish(g, h)
        if use_nvshmem:
            from . import nvshmem_heap

            nvshmem_heap.init(g)
        if not _atexit_registered:
            atexit.register(_finalize_at_exit)
            _atexit_registered = True
        return g


def _publish(g: Group | None, h: SymmetricHeap | None) -> None:
    """Tell the binder (symmetric argument checks), the builder (constant ranks) and every loaded
    module's rank table about the group (None: there is none any more)."""
    from ...builder import dist_lang
    from ..binder import SYMMETRIC_HEAP
    from . import table

    if g is None or h is None:
        SYMMETRIC_HEAP[:] = [0, 0]
        dist_lang.world_size_hint = None  # pyright: ignore[reportAttributeAccessIssue]  # a property of dist_lang's module class (_DistLangModule)
        table.set_table(None)
        return
    SYMMETRIC_HEAP[:] = [h.local_base, h.local_base + h.nbytes]
    dist_lang.world_size_hint = g.world_size  # pyright: ignore[reportAttributeAccessIssue]  # a property of dist_lang's module class (_DistLangModule)
    table.set_table(table.RankTable(g.rank, g.world_size, h.nbytes, tuple(h.bases)))


def finalize(timeout: float | None = None) -> None:
    """Collectively free the symmetric heap (waits for every rank, up to `timeout` seconds) and
    forget the group; tensors from dist.empty/zeros must not be used afterwards."""
    global _group, _heap
    with _lock:
        g, h = _group, _heap
        if g is None or h is None:
            return
        _group, _heap = None, None
        _publish(None, None)
        from . import nvshmem_heap

        nvshmem_heap.finalize()
        h.close(timeout)
        if g.owns_torch_group:
            tdist = _torch_dist()
            if tdist is not None and tdist.is_initialized():
                tdist.destroy_process_group()


def _finalize_at_exit() -> None:
    try:
        # Short: a rank that exits on an error must not wait long for peers that may be stuck.
        finalize(float(os.environ.get("TSIR_DIST_EXIT_TIMEOUT", "10")))
    except Exception:  # noqa: BLE001, S110  (best effort while the interpreter exits)
        pass


def _torch_dist() -> Any:
    try:
        import torch.distributed as tdist  # pyright: ignore[reportMissingImports]  # optional: torch is not a dependency of tsir
    except ImportError:
        return None
    return tdist


def is_initialized() -> bool:
    return _group is not None


def current_group() -> Group:
    if _group is None:
        raise TSIRError("no group: call tsir.runtime.dist.init() first")
    return _group


def heap() -> SymmetricHeap:
    current_group()
    assert _heap is not None
    return _heap


def rank() -> int:
    return current_group().rank


def world_size() -> int:
    return current_group().world_size


def barrier(timeout: float | None = None) -> None:
    """A host-side barrier of the group (no GPU synchronization)."""
    current_group().barrier("user", timeout)


# -- tensors ---------------------------------------------------------------------------------------


def _dtype_name(dtype: Any) -> str:
    from ..binder import tsir_dtype
    from ..launch_codegen import ITEMSIZE

    name = tsir_dtype(str(dtype).removeprefix("torch."))
    if name not in ITEMSIZE:
        raise TSIRError(
            f"dist: unsupported dtype {dtype!r}; use one of {', '.join(sorted(ITEMSIZE))}"
        )
    return name


def _wrap(ptr: int, shape: tuple[int, ...], dtype: str, owner: Any, strides: Any = None) -> Any:
    from ..dlpack import KDL_CUDA, RawTensor
    from ..host_program import TENSOR_DTYPES

    device = (KDL_CUDA, current_group().device)
    raw = RawTensor(ptr, shape, TENSOR_DTYPES[dtype], device, strides=strides, owner=owner)
    try:
        import torch  # pyright: ignore[reportMissingImports]  # optional: torch is not a dependency of tsir
    except ImportError:
        return raw
    return torch.from_dlpack(raw)


def _allocate(shape: Any, dtype: Any, align: int, zero: bool) -> Any:
    from ..launch_codegen import ITEMSIZE

    h = heap()
    dims = (shape,) if isinstance(shape, int) else tuple(int(d) for d in shape)
    if any(d < 0 for d in dims):
        raise TSIRError(f"dist: negative dimension in shape {dims}")
    name = _dtype_name(dtype)
    n = 1
    for d in dims:
        n *= d
    what = f"{name}[{', '.join(map(str, dims))}]"
    ptr = h.allocate(n * ITEMSIZE[name], what, align=max(align, 16), zero=zero)
    return _wrap(ptr, dims, name, h)


def empty(
    shape: Any,
    dtype: Any = "float32",
    group: Any = None,
    *,
    align: int = DEFAULT_ALIGN,
    backend: str | None = None,
) -> Any:
    """A symmetric tensor (collective: every rank allocates the same, in the same order).
    `group`, when given, must be the group dist.init() returned."""
    _check_group(group)
    if backend == "nvshmem":  # NVSHMEM's symmetric heap (dist.init(backend="nvshmem"))
        from . import nvshmem_heap

        return nvshmem_heap.empty(shape, dtype)
    return _allocate(shape, dtype, align, zero=False)


def zeros(
    shape: Any,
    dtype: Any = "float32",
    group: Any = None,
    *,
    align: int = DEFAULT_ALIGN,
    backend: str | None = None,
) -> Any:
    """A zeroed symmetric tensor: zero on every rank once this returns on any rank."""
    _check_group(group)
    if backend == "nvshmem":
        from . import nvshmem_heap

        t = nvshmem_heap.empty(shape, dtype)
        t.zero_()
        import torch  # pyright: ignore[reportMissingImports]  # optional: torch is not a dependency of tsir

        torch.cuda.synchronize()
        barrier()
        return t
    return _allocate(shape, dtype, align, zero=True)


def _check_group(group: Any) -> None:
    if group is not None and group is not current_group():
        raise TSIRError(
            "dist.empty/zeros: `group` is not the group dist.init() formed in this process"
        )


def _info(t: Any) -> Any:
    from ..dlpack import import_tensor, tensor_info

    return tensor_info(import_tensor(t, "tensor", 0))


def _symmetric_info(t: Any) -> Any:
    """The tensor's DLPack facts when it lies entirely inside this rank's heap, else None."""
    from ..binder import tsir_dtype
    from ..launch_codegen import ITEMSIZE

    if _heap is None:
        return None
    info = _info(t)
    if any(s < 0 for s in info.strides):
        return None
    extent = (
        0 if 0 in info.shape else 1 + sum((d - 1) * s for d, s in zip(info.shape, info.strides))
    )
    return info if _heap.contains(info.ptr, extent * ITEMSIZE[tsir_dtype(info.dtype)]) else None


def is_symmetric(t: Any) -> bool:
    """Whether `t` lies entirely inside this rank's symmetric heap."""
    return _symmetric_info(t) is not None


def peer(t: Any, pe: int) -> Any:
    """A view of rank `pe`'s copy of the symmetric tensor `t` (same shape, strides and dtype),
    through this process's mapping of pe's heap: readable and writable with plain GPU accesses."""
    from ..binder import tsir_dtype

    info = _symmetric_info(t)
    if info is None:
        raise TSIRError(
            "dist.peer: the tensor is not in this rank's symmetric heap (use dist.empty/zeros)"
        )
    ptr = heap().peer_address(info.ptr, pe)
    return _wrap(ptr, info.shape, tsir_dtype(info.dtype), heap(), strides=info.strides)


def peers(t: Any) -> list[Any]:
    """Every rank's copy of `t`, in rank order (this rank's is `t` itself)."""
    return [t if r == rank() else peer(t, r) for r in range(world_size())]


@contextlib.contextmanager
def scope() -> Iterator[None]:
    """Symmetric allocations made inside are freed (collectively) when the block exits."""
    h = heap()
    m = h.mark()
    try:
        yield
    finally:
        if not h.closed:
            h.release(m)


_ = DEFAULT_TIMEOUT
