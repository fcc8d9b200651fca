"""A fake `cuda.bindings.driver` for CPU tests of the launcher: records module loads, context
switches and launches (with the bytes each kernel parameter pointer points at)."""

from __future__ import annotations

import ctypes

from cuda.bindings import driver as cbd

OK = cbd.CUresult.CUDA_SUCCESS


class FakeFunction:
    def __init__(self, name, sizes):
        self.name, self.sizes, self.nargs = name, sizes, len(sizes)


class FakeDriver:
    """Just enough of cuda.bindings.driver; records what the launcher does."""

    CUresult = cbd.CUresult
    CUstream = cbd.CUstream
    CUcontext = cbd.CUcontext
    CUfunction_attribute = cbd.CUfunction_attribute
    CUdevice_attribute = cbd.CUdevice_attribute

    def __init__(self, kernels, ndev=2, smem_optin=227 * 1024):
        # name -> number of 8-byte parameters, or the byte size of each parameter
        self.kernels = {k: (8,) * v if isinstance(v, int) else tuple(v) for k, v in kernels.items()}
        self.ndev = ndev
        self.smem_optin = smem_optin
        self.current = cbd.CUcontext(0)
        self.launches, self.loads, self.attrs, self.ctx_sets = [], [], [], []
        self.launch_result = OK
        self.sync_result = OK

    def cuInit(self, flags):
        return (OK,)

    def cuDeviceGetCount(self):
        return (OK, self.ndev)

    def cuDeviceGet(self, ordinal):
        return (OK, ordinal)

    def cuDevicePrimaryCtxRetain(self, dev):
        return (OK, cbd.CUcontext(0x1000 + int(dev)))

    def cuCtxGetCurrent(self):
        return (OK, self.current)

    def cuCtxSetCurrent(self, ctx):
        self.current = ctx
        self.ctx_sets.append(int(ctx))
        return (OK,)

    def cuCtxGetDevice(self):
        return (OK, max(int(self.current) - 0x1000, 0))

    def cuDeviceGetAttribute(self, attr, dev):
        return (OK, self.smem_optin if "OPTIN" in attr.name else 9)

    def cuModuleLoadData(self, image):
        self.loads.append((bytes(image), int(self.current)))
        return (OK, f"module{len(self.loads)}")

    def cuModuleGetFunction(self, module, name):
        if name.decode() not in self.kernels:
            return (cbd.CUresult.CUDA_ERROR_NOT_FOUND, None)
        return (OK, FakeFunction(name.decode(), self.kernels[name.decode()]))

    def cuFuncSetAttribute(self, func, attr, value):
        self.attrs.append((func.name, attr.name, value))
        return (OK,)

    def cuLaunchKernel(self, f, gx, gy, gz, bx, by, bz, smem, stream, params, extra):
        assert isinstance(params, int) and extra == 0
        entries = [ctypes.c_void_p.from_address(params + 8 * i).value for i in range(f.nargs)]
        self.launches.append(
            {
                "kernel": f.name,
                "grid": (gx, gy, gz),
                "block": (bx, by, bz),
                "smem": smem,
                "stream": int(stream),
                # the value of each 8-byte parameter; the bytes of a larger (by-value) one
                "slots": [
                    ctypes.string_at(entry, size)
                    if size != 8
                    else ctypes.c_uint64.from_address(entry).value
                    for entry, size in zip(entries, f.sizes)
                ],
                "entries": entries,
                "ctx": int(self.current),
            }
        )
        return (self.launch_result,)

    def cuGetErrorName(self, err):
        return (OK, err.name.encode())

    def cuGetErrorString(self, err):
        return (OK, b"a description")

    def cuCtxSynchronize(self):
        return (self.sync_result,)

    def cuModuleUnload(self, module):
        return (OK,)
