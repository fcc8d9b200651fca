"""CPU tests of `Launcher`: the generated fast path, the slow path's errors, parameter packing, grids,
streams, contexts and module loading, against a fake CUDA driver (a Python object standing in for
`cuda.bindings.driver`) and fake CUDA tensors (`RawTensor`s claiming device cuda:N, never
dereferenced). One test also runs the real `cuda.bindings` path against a stub libcuda built with cc.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
from cuda.bindings import driver as cbd
from fake_driver import FakeDriver
from tsir.runtime import dlpack
from tsir.runtime import driver as drv
from tsir.runtime.dlpack import RawTensor
from tsir.runtime.launch import (
    HostProgram,
    KernelArg,
    Launcher,
    LaunchStep,
    ScalarParam,
    TensorParam,
)

from tsir.errors import LaunchError

OK = cbd.CUresult.CUDA_SUCCESS


@pytest.fixture
def fake(monkeypatch):
    f = FakeDriver({"add": 4, "scale": 3, "big": 1})
    monkeypatch.setattr(drv, "_driver", f)
    monkeypatch.setattr(drv, "_primary", {})
    return f


ADD = HostProgram(
    params=(
        TensorParam("a", "float32", ("n",)),
        TensorParam("b", "float32", ("n",)),
        TensorParam("c", "float32", ("n",)),
    ),
    steps=(
        LaunchStep(
            "add",
            ("(n + 255) // 256", "1", "1"),
            (256, 1, 1),
            0,
            (
                KernelArg("a", "ptr"),
                KernelArg("b", "ptr"),
                KernelArg("c", "ptr"),
                KernelArg("n", "int32"),
            ),
        ),
    ),
)


def vec(n, ptr=0x10000, dtype="float32", device=(2, 0), strides=None):
    return RawTensor(ptr, (n,), dtype, device, strides)


def abc(n=1000, device=(2, 0)):
    return (
        vec(n, 0x10000, device=device),
        vec(n, 0x20000, device=device),
        vec(n, 0x30000, device=device),
    )


def f32(bits):
    return struct.unpack("<f", struct.pack("<I", bits & 0xFFFFFFFF))[0]


def i32(bits):
    return struct.unpack("<i", struct.pack("<I", bits & 0xFFFFFFFF))[0]


# ---- launching ------------------------------------------------------------------------------------


def test_launch_packs_pointers_and_symbols(fake):
    L = Launcher(ADD, b"CUBIN")
    L(*abc(1000))
    (rec,) = fake.launches
    assert rec["kernel"] == "add" and rec["grid"] == (4, 1, 1) and rec["block"] == (256, 1, 1)
    assert rec["slots"][:3] == [0x10000, 0x20000, 0x30000] and i32(rec["slots"][3]) == 1000
    assert rec["stream"] == 0 and rec["smem"] == 0
    assert fake.loads == [(b"CUBIN", 0x1000)]


def test_second_call_takes_the_fast_path(fake):
    L = Launcher(ADD, b"")
    L(*abc(10))
    calls = []
    slow = type(L).__call__.__globals__["_slow"]
    type(L).__call__.__globals__["_slow"] = lambda *a: calls.append(a) or slow(*a)
    L(*abc(300))
    L(*abc(300))
    assert calls == [] and [r["grid"][0] for r in fake.launches] == [1, 2, 2]
    with pytest.raises(LaunchError, match="argument 'a': expected dtype float32, got float16"):
        L(vec(3, dtype="float16"), vec(3), vec(3))
    assert len(calls) == 1  # the fast path deferred, the slow path explained


def test_zero_extent_launches_nothing(fake):
    L = Launcher(ADD, b"")
    L(*abc(0))
    assert fake.launches == []


def test_scalars_and_multi_step_order(fake):
    prog = HostProgram(
        params=(
            TensorParam("x", "float32", ("M", "N")),
            ScalarParam("alpha", "float32"),
            ScalarParam("k", "int64"),
        ),
        steps=(
            LaunchStep(
                "scale",
                ("N // 32", "M", "1"),
                (32, 4, 1),
                1024,
                (KernelArg("x", "ptr"), KernelArg("alpha", "float32"), KernelArg("k", "int64")),
            ),
            LaunchStep("big", ("k", "1", "1"), (64, 1, 1), 64 * 1024, (KernelArg("M", "uint32"),)),
        ),
    )
    L = Launcher(prog, b"")
    x = RawTensor(0x40000, (6, 64), "float32")
    L(x, 0.5, 3)
    L(x, 2, 0)  # an int for a float parameter is fine; k = 0 skips the second step
    assert [r["kernel"] for r in fake.launches] == ["scale", "big", "scale"]
    s1, b1, s2 = fake.launches
    assert s1["grid"] == (2, 6, 1) and s1["block"] == (32, 4, 1) and s1["smem"] == 1024
    assert f32(s1["slots"][1]) == 0.5 and s1["slots"][2] == 3 and f32(s2["slots"][1]) == 2.0
    assert b1["grid"] == (3, 1, 1) and b1["slots"] == [6] and b1["smem"] == 65536
    assert fake.attrs == [("big", "CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES", 65536)]
    L(x, np.float32(1.5), np.int64(1))  # numpy scalars go through the slow path
    assert f32(fake.launches[-2]["slots"][1]) == 1.5 and fake.launches[-1]["grid"] == (1, 1, 1)


def test_constant_zero_grid_never_launches(fake):
    prog = HostProgram(
        params=(TensorParam("a", "float32", ("n",)),),
        steps=(LaunchStep("big", ("0", "1", "1"), (32, 1, 1), 0, (KernelArg("a", "ptr"),)),),
    )
    L = Launcher(prog, b"")
    L(vec(4))
    assert fake.launches == [] and "never launched" in L.python_source


def test_grid_errors(fake):
    prog = HostProgram(
        params=(TensorParam("a", "float32", ("n",)), ScalarParam("k", "int32")),
        steps=(LaunchStep("big", ("k - 1", "n", "1"), (32, 1, 1), 0, (KernelArg("a", "ptr"),)),),
    )
    L = Launcher(prog, b"")
    with pytest.raises(
        LaunchError,
        match=re.escape(
            "kernel 'big': grid dimension x = 'k - 1' evaluates to -3, which is negative"
        ),
    ):
        L(vec(4), -2)
    with pytest.raises(
        LaunchError,
        match=re.escape("grid dimension y = 'n' evaluates to 70000, above CUDA's limit of 65535"),
    ):
        L(vec(70000), 2)
    L(vec(4), 1)  # x = 0: nothing
    assert fake.launches == []


def test_dynamic_smem_above_device_limit(fake):
    fake.smem_optin = 100 * 1024
    prog = HostProgram(
        params=(TensorParam("a", "float32", (4,)),),
        steps=(
            LaunchStep("big", ("1", "1", "1"), (32, 1, 1), 200 * 1024, (KernelArg("a", "ptr"),)),
        ),
    )
    with pytest.raises(
        LaunchError,
        match="kernel 'big' needs 204800 bytes of dynamic shared memory but cuda:0 allows at most 102400",
    ):
        Launcher(prog, b"")(vec(4))


# ---- argument errors through the launcher ---------------------------------------------------------


def test_wrong_count(fake):
    with pytest.raises(
        LaunchError,
        match=re.escape(
            "add(a: float32[n], b: float32[n], c: float32[n]) takes 3 arguments, got 2"
        ),
    ):
        Launcher(ADD, b"")(vec(4), vec(4))


def test_not_a_tensor(fake):
    with pytest.raises(
        LaunchError,
        match=re.escape("argument 'b' (#2): expected a tensor (an object with __dlpack__"),
    ) as e:
        Launcher(ADD, b"")(vec(4), [1.0, 2.0], vec(4))
    assert "got list" in str(e.value)


def test_numpy_array_is_a_cpu_tensor(fake):
    x = np.zeros(4, np.float32)
    with pytest.raises(LaunchError, match="argument 'a': expected a CUDA tensor, got cpu"):
        Launcher(ADD, b"")(x, x, x)


def test_failing_dlpack_export_is_reported(fake):
    x = np.zeros(4, np.float32)
    x.flags.writeable = False

    class Broken:
        def __dlpack__(self, **kw):
            raise BufferError("cannot export")

    with pytest.raises(
        LaunchError,
        match=re.escape(
            "argument 'c' (#3): importing the Broken through DLPack failed: BufferError: cannot export"
        ),
    ):
        Launcher(ADD, b"")(vec(4), vec(4), Broken())


def test_device_dtype_shape_stride_alignment_errors(fake):
    L = Launcher(ADD, b"")
    with pytest.raises(
        LaunchError, match=re.escape("argument 'c' is on cuda:1 but argument 'a' is on cuda:0")
    ):
        L(vec(4), vec(4), vec(4, device=(2, 1)))
    with pytest.raises(
        LaunchError,
        match=re.escape(
            "argument 'b': dimension 0 is n, which argument 'a' dimension 0 set to 4, but here it is 5"
        ),
    ):
        L(vec(4), vec(5), vec(4))
    with pytest.raises(
        LaunchError, match=re.escape("argument 'a': expected 1 dimension (shape [n]), got 2")
    ):
        L(RawTensor(0x1000, (2, 2), "float32"), vec(4), vec(4))
    with pytest.raises(
        LaunchError,
        match=re.escape(
            "argument 'b': expected a compact row-major tensor (strides [1]), got strides [2]"
        ),
    ):
        L(vec(4), vec(4, strides=(2,)), vec(4))
    with pytest.raises(
        LaunchError,
        match=re.escape(
            "argument 'a': data pointer 0x10008 is not aligned to 16 bytes (it is 8 bytes past"
        ),
    ):
        L(vec(4, ptr=0x10008), vec(4), vec(4))
    assert fake.launches == []


def test_symbol_too_big_for_int32(fake):
    with pytest.raises(
        LaunchError,
        match=re.escape(
            "n = 2147483648 (from argument 'a' dimension 0) does not fit the int32 parameter 'n'"
        ),
    ):
        Launcher(ADD, b"")(*abc(2**31))


def test_scalar_errors(fake):
    prog = HostProgram(
        params=(TensorParam("a", "float32", (4,)), ScalarParam("k", "int32")),
        steps=(LaunchStep("big", ("1", "1", "1"), (32, 1, 1), 0, (KernelArg("k", "int32"),)),),
    )
    L = Launcher(prog, b"")
    with pytest.raises(LaunchError, match=re.escape("argument 'k': 4294967296 does not fit int32")):
        L(vec(4), 2**32)
    with pytest.raises(LaunchError, match="argument 'k': expected an integer \\(int32\\), got str"):
        L(vec(4), "3")


# ---- streams, contexts, modules -------------------------------------------------------------------


def test_stream_argument_forms(fake):
    L = Launcher(ADD, b"")

    class Proto:
        def __cuda_stream__(self):
            return (0, 0xBEEF)

    class TorchLike:
        cuda_stream = 0x1234

    for s, want in [
        (None, 0),
        (0x77, 0x77),
        (Proto(), 0xBEEF),
        (TorchLike(), 0x1234),
        (cbd.CUstream(9), 9),
    ]:
        L(*abc(4), stream=s)
        assert fake.launches[-1]["stream"] == want
    with pytest.raises(LaunchError, match="argument 'stream': expected None, an int handle"):
        L(*abc(4), stream="default")


def test_stream_none_uses_the_tensor_frameworks_current_stream(fake, monkeypatch):
    class FrameworkTensor(RawTensor):
        pass

    monkeypatch.setitem(dlpack._STREAM_FNS, FrameworkTensor, lambda device: 0xC0DE + device)
    L = Launcher(ADD, b"")
    L(*(FrameworkTensor(0x10000 * i, (4,), "float32", (2, 1)) for i in (1, 2, 3)))
    assert fake.launches[-1]["stream"] == 0xC0DE + 1


def test_framework_detection_by_module(monkeypatch):
    monkeypatch.setattr(dlpack, "_torch_stream_fn", lambda: lambda device: 42)
    Tensor = type("Tensor", (), {"__module__": "torch"})
    Parameter = type("Parameter", (Tensor,), {"__module__": "torch.nn.parameter"})
    Sub = type("MyTensor", (Parameter,), {"__module__": "user_code"})
    monkeypatch.setattr(dlpack, "_STREAM_FNS", {})
    assert dlpack.current_stream_fn(Sub)(0) == 42
    assert dlpack.current_stream_fn(RawTensor)(3) == 0


def test_context_made_current_only_when_needed_and_restored(fake):
    L = Launcher(ADD, b"")
    L(*abc(4, device=(2, 1)))  # no context current: set cuda:1's, then restore "none"
    assert fake.launches[-1]["ctx"] == 0x1001 and int(fake.current) == 0
    fake.current = cbd.CUcontext(0x1001)
    fake.ctx_sets.clear()
    L(*abc(4, device=(2, 1)))
    assert fake.ctx_sets == []  # already current: no switch
    fake.current = cbd.CUcontext(0x1000)  # e.g. torch.cuda.set_device(0)
    L(*abc(4, device=(2, 1)))
    assert fake.launches[-1]["ctx"] == 0x1001 and fake.ctx_sets == [0x1001, 0x1000]
    assert [ctx for _, ctx in fake.loads] == [0x1001]  # loaded once, into cuda:1's context


def test_module_loaded_once_per_device(fake):
    L = Launcher(ADD, b"IMG")
    for dev in (0, 1, 0, 1):
        L(*abc(4, device=(2, dev)))
    assert [ctx for _, ctx in fake.loads] == [0x1000, 0x1001]


def test_missing_kernel_symbol(fake):
    prog = HostProgram(
        params=(TensorParam("a", "float32", (4,)),),
        steps=(LaunchStep("nope", ("1", "1", "1"), (32, 1, 1), 0, ()),),
    )
    with pytest.raises(
        LaunchError, match=re.escape("cuModuleGetFunction('nope') failed: CUDA_ERROR_NOT_FOUND")
    ):
        Launcher(prog, b"")(vec(4))


def test_launch_failure_names_kernel_and_error(fake):
    fake.launch_result = cbd.CUresult.CUDA_ERROR_INVALID_VALUE
    with pytest.raises(
        LaunchError,
        match=re.escape(
            "launching kernel 'add' (grid (1, 1, 1), block (256, 1, 1), 0 bytes dynamic shared memory, stream 0x0) failed: CUDA_ERROR_INVALID_VALUE"
        ),
    ):
        Launcher(ADD, b"")(*abc(4))


def test_synchronize_surfaces_sticky_errors(fake):
    L = Launcher(ADD, b"")
    L(*abc(4))
    L.synchronize()
    fake.sync_result = cbd.CUresult.CUDA_ERROR_ILLEGAL_ADDRESS
    with pytest.raises(
        LaunchError,
        match="cuda:0: work launched earlier failed: CUDA_ERROR_ILLEGAL_ADDRESS .*sticky",
    ):
        L.synchronize()


def test_threads_use_their_own_parameter_buffers(fake):
    L = Launcher(ADD, b"")
    L(*abc(1))
    errors = []

    def worker(n):
        try:
            for _ in range(200):
                L(*abc(n))
        except Exception as e:  # noqa: BLE001  (reported by the assert below)
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(256 * k,)) for k in range(1, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for rec in fake.launches[1:]:
        assert rec["grid"][0] * 256 == i32(rec["slots"][3])


def test_no_driver_is_a_launch_error(monkeypatch):
    try:
        drv.driver()
    except LaunchError:
        pass
    else:
        pytest.skip("this machine has a CUDA driver")
    L = Launcher(ADD, b"")
    with pytest.raises(LaunchError, match="no CUDA driver|cuInit failed"):
        L(*abc(4))


# ---- the real cuda.bindings path, against a stub libcuda ------------------------------------------

STUB_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <string.h>
static void* cur = 0;
static uint64_t last[16];
static unsigned last_grid[3], last_block[3], last_smem, nlaunch;
static void* last_stream;
static int generic(void) { return 0; }
int cuInit(unsigned f) { return 0; }
int cuDriverGetVersion(int* v) { *v = 13000; return 0; }
int cuDeviceGetCount(int* n) { *n = 1; return 0; }
int cuDeviceGet(int* d, int o) { *d = o; return 0; }
int cuDeviceGetAttribute(int* v, int a, int d) { *v = 232448; return 0; }
int cuDevicePrimaryCtxRetain(void** c, int d) { *c = (void*)(uintptr_t)(0x1000 + d); return 0; }
int cuCtxGetCurrent(void** c) { *c = cur; return 0; }
int cuCtxSetCurrent(void* c) { cur = c; return 0; }
int cuModuleLoadData(void** m, const void* img) { *m = (void*)0x2000; return 0; }
int cuModuleGetFunction(void** f, void* m, const char* n) { *f = (void*)0x3000; return 0; }
int cuLaunchKernel(void* f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                   unsigned bz, unsigned smem, void* s, void** params, void** extra) {
  for (int i = 0; i < 4; ++i) memcpy(&last[i], params[i], 8);
  last_grid[0] = gx; last_grid[1] = gy; last_grid[2] = gz;
  last_block[0] = bx; last_block[1] = by; last_block[2] = bz;
  last_smem = smem; last_stream = s; ++nlaunch;
  return 0;
}
int cuGetErrorName(int e, const char** s) { *s = "CUDA_ERROR_STUB"; return 0; }
int cuGetErrorString(int e, const char** s) { *s = "stub"; return 0; }
int cuGetProcAddress_v2(const char* sym, void** pfn, int v, uint64_t fl, int* st) {
  void* p = dlsym(RTLD_DEFAULT, sym);
  *pfn = p ? p : (void*)generic;
  if (st) *st = 0;
  return 0;
}
int cuGetProcAddress(const char* sym, void** pfn, int v, uint64_t fl) { return cuGetProcAddress_v2(sym, pfn, v, fl, 0); }
unsigned stub_report(uint64_t* out) {
  memcpy(out, last, 32);
  out[4] = last_grid[0]; out[5] = last_grid[1]; out[6] = last_grid[2];
  out[7] = last_block[0]; out[8] = last_smem; out[9] = (uint64_t)(uintptr_t)last_stream;
  return nlaunch;
}
"""

CHILD = r"""
import ctypes, json
from tsir.runtime.dlpack import RawTensor
from tsir.runtime.launch import Launcher
from tsir.runtime.host_program import HostProgram, KernelArg, LaunchStep, TensorParam
prog = HostProgram(
    params=tuple(TensorParam(n, "float32", ("n",)) for n in "abc"),
    steps=(LaunchStep("add", ("(n + 255) // 256", "1", "1"), (256, 1, 1), 60000,
        tuple(KernelArg(n, "ptr") for n in "abc") + (KernelArg("n", "int32"),)),),
)
L = Launcher(prog, b"cubin")
L(*(RawTensor(0x10000 * i, (1000,), "float32") for i in (1, 2, 3)), stream=0xABC)
L(*(RawTensor(0x10000 * i, (1000,), "float32") for i in (1, 2, 3)), stream=0xABC)
out = (ctypes.c_uint64 * 10)()
n = ctypes.CDLL("libcuda.so.1").stub_report(out)
print(json.dumps({"launches": n, "report": list(out)}))
"""


def test_real_cuda_bindings_path_against_stub_libcuda(tmp_path):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build the stub libcuda")
    (tmp_path / "stub.c").write_text(STUB_C)
    subprocess.run(
        [
            cc,
            "-shared",
            "-fPIC",
            "-o",
            str(tmp_path / "libcuda.so.1"),
            str(tmp_path / "stub.c"),
            "-ldl",
        ],
        check=True,
    )
    env = dict(os.environ, LD_LIBRARY_PATH=str(tmp_path), TVM_FFI_DISABLE_TORCH_C_DLPACK="1")
    r = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CHILD)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout.strip().splitlines()[-1])
    rep = got["report"]
    assert got["launches"] == 2
    assert rep[:3] == [0x10000, 0x20000, 0x30000] and i32(rep[3]) == 1000
    assert rep[4:9] == [4, 1, 1, 256, 60000] and rep[9] == 0xABC
