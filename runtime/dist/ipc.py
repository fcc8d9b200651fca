"""CUDA IPC through the driver API: one allocation per rank, exported and mapped by every peer.

Legacy IPC (`cuIpcGetMemHandle` / `cuIpcOpenMemHandle`), which needs no file-descriptor passing
and works between any two processes of one node; the symmetric heap (heap.py) calls this through
the small interface of `CudaIpc`, so its logic is tested on CPU with a fake. Every call runs in the
device's primary context (the one torch and CuPy use) and restores the caller's context.
Peer access is enabled explicitly between this device and every peer device visible in this
process (lazy enabling alone was not enough for every kind of kernel on the GPU machines).
"""

from __future__ import annotations

import ctypes
import socket
from typing import Any

from .. import driver as drv

__all__ = ["CudaIpc", "node_id", "HANDLE_BYTES"]

HANDLE_BYTES = 64  # sizeof(CUipcMemHandle)


def node_id() -> str:
    """This machine: host name and boot id (two containers may share a host name)."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
    except OSError:
        boot = ""
    return f"{socket.gethostname()}/{boot}"


class CudaIpc:
    """The CUDA side of a symmetric heap on `device` (an ordinal visible to this process)."""

    def __init__(self, device: int):
        self.device = device
        self.ctx = drv.primary_context(device)
        self.d = drv.driver()

    def _call(self, what: str, fn: Any, *args: Any) -> Any:
        prev = drv.activate(self.ctx)
        try:
            return drv.check(fn(*args), f"{what} on cuda:{self.device}")
        finally:
            drv.restore(prev)

    def alloc(self, nbytes: int) -> int:
        return int(
            self._call(
                f"cuMemAlloc({nbytes} bytes) for the symmetric heap", self.d.cuMemAlloc, nbytes
            )
        )

    def free(self, ptr: int) -> None:
        self._call("cuMemFree (symmetric heap)", self.d.cuMemFree, ptr)

    def export(self, ptr: int) -> bytes:
        handle = self._call("cuIpcGetMemHandle", self.d.cuIpcGetMemHandle, ptr)
        return ctypes.string_at(handle.getPtr(), HANDLE_BYTES)

    def open(self, handle: bytes) -> int:
        h = self.d.CUipcMemHandle()
        ctypes.memmove(h.getPtr(), bytes(handle), HANDLE_BYTES)
        flags = int(self.d.CUipcMem_flags.CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS)
        return int(
            self._call(
                "cuIpcOpenMemHandle (mapping a peer's heap)", self.d.cuIpcOpenMemHandle, h, flags
            )
        )

    def close(self, ptr: int) -> None:
        self._call("cuIpcCloseMemHandle", self.d.cuIpcCloseMemHandle, ptr)

    def memset_zero(self, ptr: int, nbytes: int) -> None:
        self._call("cuMemsetD8", self.d.cuMemsetD8, ptr, 0, nbytes)
        self.synchronize()

    def synchronize(self) -> None:
        self._call("cuCtxSynchronize", self.d.cuCtxSynchronize)

    def uuid(self) -> bytes:
        dev = drv.check(self.d.cuDeviceGet(self.device), "cuDeviceGet")
        return bytes(drv.check(self.d.cuDeviceGetUuid(dev), "cuDeviceGetUuid").bytes)

    def enable_peer_access(self, peer_uuids: list[bytes]) -> list[int]:
        """Enable access from this device's context to every peer device visible here (by UUID);
        returns their ordinals. Peers not visible (CUDA_VISIBLE_DEVICES) rely on the lazy
        enabling of cuIpcOpenMemHandle."""
        count = drv.device_count()
        by_uuid: dict[bytes, int] = {}
        for i in range(count):
            dev = drv.check(self.d.cuDeviceGet(i), "cuDeviceGet")
            by_uuid[bytes(drv.check(self.d.cuDeviceGetUuid(dev), "cuDeviceGetUuid").bytes)] = i
        enabled = []
        for u in peer_uuids:
            ordinal = by_uuid.get(u)
            if ordinal is None or ordinal == self.device:
                continue
            me = drv.check(self.d.cuDeviceGet(self.device), "cuDeviceGet")
            other = drv.check(self.d.cuDeviceGet(ordinal), "cuDeviceGet")
            if not drv.check(self.d.cuDeviceCanAccessPeer(me, other), "cuDeviceCanAccessPeer"):
                continue
            prev = drv.activate(self.ctx)
            try:
                err = self.d.cuCtxEnablePeerAccess(drv.primary_context(ordinal), 0)[0]
            finally:
                drv.restore(prev)
            if err != 0 and drv.error_name(err) != "CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED":
                drv.check((err,), f"cuCtxEnablePeerAccess(cuda:{self.device} -> cuda:{ordinal})")
            enabled.append(ordinal)
        return enabled

    def copy_to_symbol(self, dptr: int, data: bytes) -> None:
        self._call("cuMemcpyHtoD", self.d.cuMemcpyHtoD, dptr, data, len(data))
