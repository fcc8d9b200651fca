"""Stand-ins for CUDA in the CPU tests of tsir.runtime.dist: an IPC backend that hands out fake
addresses (never dereferenced), and a driver with just the calls module loading and the rank
table make."""

from __future__ import annotations

import itertools

from cuda.bindings import driver as cbd

OK = cbd.CUresult.CUDA_SUCCESS
_addresses = itertools.count(1)


class FakeIpc:
    """Each allocation is a fresh 1 TiB-aligned range; opening a handle maps it at another address."""

    def __init__(self, device: int = 0, rank: int = 0):
        self.device = device
        self.rank = rank
        self.allocs: dict[int, int] = {}
        self.opened: list[int] = []
        self.closed: list[int] = []
        self.freed: list[int] = []
        self.memsets: list[tuple[int, int]] = []
        self.peer_uuids: list[bytes] = []

    def alloc(self, nbytes: int) -> int:
        ptr = next(_addresses) << 40
        self.allocs[ptr] = nbytes
        return ptr

    def free(self, ptr: int) -> None:
        self.freed.append(ptr)

    def export(self, ptr: int) -> bytes:
        return ptr.to_bytes(8, "little") * 8

    def open(self, handle: bytes) -> int:
        ptr = (next(_addresses) << 40) | 0x8000
        self.opened.append(ptr)
        return ptr

    def close(self, ptr: int) -> None:
        self.closed.append(ptr)

    def memset_zero(self, ptr: int, nbytes: int) -> None:
        self.memsets.append((ptr, nbytes))

    def synchronize(self) -> None:
        pass

    def uuid(self) -> bytes:
        return bytes([self.rank]) * 16

    def enable_peer_access(self, peer_uuids: list[bytes]) -> list[int]:
        self.peer_uuids = list(peer_uuids)
        return []


class FakeDriver:
    """Module loading, globals and host-to-device copies, recorded."""

    CUresult = cbd.CUresult
    CUstream = cbd.CUstream
    CUcontext = cbd.CUcontext
    CUfunction_attribute = cbd.CUfunction_attribute
    CUdevice_attribute = cbd.CUdevice_attribute

    def __init__(self, table_bytes: int = 528):
        self.current = cbd.CUcontext(0)
        self.table_bytes = table_bytes
        self.copies: list[tuple[int, bytes]] = []
        self.unloaded: list[str] = []
        self.launches: list[tuple] = []
        self.n = 0

    def cuInit(self, flags):
        return (OK,)

    def cuDeviceGetCount(self):
        return (OK, 2)

    def cuDeviceGet(self, ordinal):
        return (OK, ordinal)

    def cuDevicePrimaryCtxRetain(self, dev):
        return (OK, cbd.CUcontext(0x1000 + int(dev)))

    def cuCtxGetCurrent(self):
        return (OK, self.current)

    def cuCtxSetCurrent(self, ctx):
        self.current = ctx
        return (OK,)

    def cuCtxGetDevice(self):
        return (OK, 0)

    def cuDeviceGetAttribute(self, attr, dev):
        return (OK, 227 * 1024)

    def cuModuleLoadData(self, image):
        self.n += 1
        return (OK, cbd.CUmodule(0x5000 + self.n))

    def cuModuleGetGlobal(self, module, name):
        assert name == b"tsir_rank_table"
        return (OK, cbd.CUdeviceptr(0x900000 + int(module)), self.table_bytes)

    def cuMemcpyHtoD(self, dst, src, n):
        self.copies.append((int(dst), bytes(src[:n])))
        return (OK,)

    def cuModuleGetFunction(self, module, name):
        return (OK, name.decode())

    def cuModuleUnload(self, module):
        self.unloaded.append(module)
        return (OK,)

    def cuLaunchKernel(self, *args):
        self.launches.append(args)
        return (OK,)

    def cuGetErrorName(self, err):
        return (OK, err.name.encode())

    def cuGetErrorString(self, err):
        return (OK, b"a description")

    def cuCtxSynchronize(self):
        return (OK,)
