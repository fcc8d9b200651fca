"""GPU tests of `Launcher` on real kernels: raw CUDA compiled with cuda.bindings.nvrtc for the
device's architecture (no headers), run on torch tensors (and CuPy arrays when CuPy imports), outputs
poisoned before every launch. Run with `pytest -m gpu tests/runtime/test_launch_gpu.py`."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
import threading

import pytest
from tsir.runtime import driver as drv
from tsir.runtime.launch import (
    HostProgram,
    KernelArg,
    Launcher,
    LaunchStep,
    ScalarParam,
    TensorParam,
)

from tsir.errors import LaunchError

pytestmark = pytest.mark.gpu

SOURCE = r"""
extern "C" __global__ void add(const float* __restrict__ a, const float* __restrict__ b,
                               float* __restrict__ c, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) c[i] = a[i] + b[i];
}
extern "C" __global__ void scale_rows(float* x, long long ld, int m, int n, float alpha) {
  int r = blockIdx.y, col = blockIdx.x * blockDim.x + threadIdx.x;
  if (r < m && col < n) x[r * ld + col] *= alpha;
}
extern "C" __global__ void fill(long long* out, long long value, unsigned long long n, bool negate) {
  unsigned long long i = blockIdx.x * (unsigned long long)blockDim.x + threadIdx.x;
  if (i < n) out[i] = negate ? -value : value;
}
extern "C" __global__ void reverse_smem(const float* in, float* out, int n) {
  extern __shared__ float s[];  // n floats: more than 48 KiB needs the opt-in attribute
  for (int i = threadIdx.x; i < n; i += blockDim.x) s[i] = in[i];
  __syncthreads();
  for (int i = threadIdx.x; i < n; i += blockDim.x) out[i] = s[n - 1 - i];
}
extern "C" __global__ void fault(int* p) { *(volatile int*)(p - (1LL << 40)) = 1; }
"""


def compile_source(source: str = SOURCE) -> bytes:
    """NVRTC -> cubin for cuda:0's architecture, with the log in the error."""
    from cuda.bindings import nvrtc

    major, minor = drv.compute_capability(0)
    err, prog = nvrtc.nvrtcCreateProgram(source.encode(), b"launch_test.cu", 0, [], [])
    assert err == 0, err
    try:
        opts = [f"-arch=sm_{major}{minor}".encode(), b"-std=c++17"]
        (err,) = nvrtc.nvrtcCompileProgram(prog, len(opts), opts)
        if err != 0:
            _, size = nvrtc.nvrtcGetProgramLogSize(prog)
            log = b" " * size
            nvrtc.nvrtcGetProgramLog(prog, log)
            raise RuntimeError(
                f"NVRTC failed for sm_{major}{minor}: {log.decode(errors='replace')}"
            )
        _, size = nvrtc.nvrtcGetCUBINSize(prog)
        cubin = b" " * size
        (err,) = nvrtc.nvrtcGetCUBIN(prog, cubin)
        assert err == 0, err
        return cubin
    finally:
        nvrtc.nvrtcDestroyProgram(prog)


@pytest.fixture(scope="module")
def cubin() -> bytes:
    return compile_source()


@pytest.fixture(scope="module")
def torch():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA")
    return torch


def add_program() -> HostProgram:
    return HostProgram(
        params=tuple(TensorParam(n, "float32", ("n",)) for n in "abc"),
        steps=(
            LaunchStep(
                "add",
                ("(n + 127) // 128", "1", "1"),
                (128, 1, 1),
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


@pytest.fixture(scope="module")
def add(cubin) -> Launcher:
    return Launcher(add_program(), cubin)


def operands(torch, n, device="cuda"):
    a = torch.randn(n, device=device)
    b = torch.randn(n, device=device)
    c = torch.full((n,), float("nan"), device=device)
    return a, b, c


@pytest.mark.parametrize("n", [1, 127, 128, 129, 1000, 4097, 1 << 20])
def test_add_matches_torch(torch, add, n):
    a, b, c = operands(torch, n)
    add(a, b, c)
    torch.cuda.synchronize()
    torch.testing.assert_close(c, a + b, rtol=0, atol=0)
    add.synchronize()


def test_zero_size_launches_nothing(torch, add):
    a, b, c = operands(torch, 0)
    add(a, b, c)  # a launch with grid (0, 1, 1) would fail with CUDA_ERROR_INVALID_VALUE
    add.synchronize()


def test_argument_errors_on_real_tensors(torch, add):
    a, b, c = operands(torch, 64)
    with pytest.raises(LaunchError, match="argument 'b': expected a compact row-major tensor"):
        add(a, torch.randn(128, device="cuda")[::2], c)
    with pytest.raises(
        LaunchError,
        match="argument 'a': data pointer 0x[0-9a-f]+ is not aligned to 16 bytes \\(it is 4 bytes",
    ):
        add(torch.randn(65, device="cuda")[1:], b, c)
    with pytest.raises(LaunchError, match="argument 'c': expected dtype float32, got float16"):
        add(a, b, c.half())
    with pytest.raises(LaunchError, match="argument 'a': expected a CUDA tensor, got cpu"):
        add(a.cpu(), b, c)
    with pytest.raises(
        LaunchError,
        match="argument 'b': dimension 0 is n, which argument 'a' dimension 0 set to 64, but here it is 63",
    ):
        add(a, b[:63], c)
    assert torch.isnan(c).all()  # nothing ran


def test_tensors_on_two_devices(torch, add):
    if torch.cuda.device_count() < 2:
        pytest.skip("needs 2 GPUs")
    a, b, c = operands(torch, 64)
    with pytest.raises(
        LaunchError, match="argument 'c' is on cuda:1 but argument 'a' is on cuda:0"
    ):
        add(a, b, c.to("cuda:1"))


def test_tensor_requiring_grad(torch, add):
    """torch may refuse to export a tensor that requires grad; then the error must say so."""
    a, b, c = operands(torch, 100)
    a.requires_grad_()
    try:
        add(a, b, c)
    except LaunchError as e:
        assert "argument 'a' (#1): importing the Tensor through DLPack failed" in str(e)
        assert "detach" in str(e)
    else:
        torch.cuda.synchronize()
        torch.testing.assert_close(c, (a + b).detach(), rtol=0, atol=0)


def test_second_device_and_context_restore(torch, add):
    if torch.cuda.device_count() < 2:
        pytest.skip("needs 2 GPUs")
    torch.cuda.set_device(0)
    a, b, c = operands(torch, 1000, device="cuda:1")
    add(a, b, c)
    assert torch.cuda.current_device() == 0  # our context switch was undone
    torch.cuda.synchronize(1)
    torch.testing.assert_close(c, a + b, rtol=0, atol=0)


def test_stream_object_int_and_current_stream(torch, add):
    """A kernel queued behind a ~0.1 s sleep on stream s must not have run when the (non-blocking
    to s) default stream reads the output; then it must have, after s syncs."""
    s = torch.cuda.Stream()
    for how in ("object", "int", "current"):
        a, b, c = operands(torch, 4096)
        torch.cuda.synchronize()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            torch.cuda._sleep(200_000_000)
        if how == "object":
            add(a, b, c, stream=s)
        elif how == "int":
            add(a, b, c, stream=s.cuda_stream)
        else:
            with torch.cuda.stream(s):
                add(a, b, c)
        early = c.cpu()  # on the default stream, which does not wait for s
        s.synchronize()
        assert torch.isnan(early).all(), (
            f"stream={how}: the kernel did not wait behind the sleep on s"
        )
        torch.testing.assert_close(c, a + b, rtol=0, atol=0)


def test_cuda_graph_capture(torch, add):
    a, b, c = operands(torch, 3000)
    add(a, b, c)  # load the module outside the capture
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        add(a, b, c)  # stream=None: the capture stream is torch's current stream
    c.fill_(float("nan"))
    g.replay()
    torch.cuda.synchronize()
    torch.testing.assert_close(c, a + b, rtol=0, atol=0)


def test_strided_symbol_and_float_scalar(torch, cubin):
    prog = HostProgram(
        params=(
            TensorParam("x", "float32", ("M", "N"), strides=("ld", 1)),
            ScalarParam("alpha", "float32"),
        ),
        steps=(
            LaunchStep(
                "scale_rows",
                ("(N + 63) // 64", "M", "1"),
                (64, 1, 1),
                0,
                (
                    KernelArg("x", "ptr"),
                    KernelArg("ld", "int64"),
                    KernelArg("M", "int32"),
                    KernelArg("N", "int32"),
                    KernelArg("alpha", "float32"),
                ),
            ),
        ),
    )
    L = Launcher(prog, cubin)
    base = torch.randn(37, 200, device="cuda")
    ref = base.clone()
    L(base[:, :130], 2.5)
    torch.cuda.synchronize()
    ref[:, :130] *= 2.5
    torch.testing.assert_close(base, ref, rtol=0, atol=0)


def test_64bit_and_bool_scalars(torch, cubin):
    prog = HostProgram(
        params=(
            TensorParam("out", "int64", ("n",)),
            ScalarParam("value", "int64"),
            ScalarParam("negate", "bool"),
        ),
        steps=(
            LaunchStep(
                "fill",
                ("(n + 255) // 256", "1", "1"),
                (256, 1, 1),
                0,
                (
                    KernelArg("out", "ptr"),
                    KernelArg("value", "int64"),
                    KernelArg("n", "uint64"),
                    KernelArg("negate", "bool"),
                ),
            ),
        ),
    )
    L = Launcher(prog, cubin)
    out = torch.zeros(777, dtype=torch.int64, device="cuda")
    L(out, 2**40 + 3, False)
    torch.cuda.synchronize()
    assert (out == 2**40 + 3).all()
    L(out, 5, True)
    torch.cuda.synchronize()
    assert (out == -5).all()


def test_dynamic_shared_memory_above_48k(torch, cubin):
    n = 20000  # 80,000 bytes of shared memory
    prog = HostProgram(
        params=(TensorParam("inp", "float32", ("n",)), TensorParam("out", "float32", ("n",))),
        steps=(
            LaunchStep(
                "reverse_smem",
                ("1", "1", "1"),
                (256, 1, 1),
                4 * n,
                (KernelArg("inp", "ptr"), KernelArg("out", "ptr"), KernelArg("n", "int32")),
            ),
        ),
    )
    L = Launcher(prog, cubin)
    x = torch.randn(n, device="cuda")
    y = torch.full((n,), float("nan"), device="cuda")
    L(x, y)
    torch.cuda.synchronize()
    torch.testing.assert_close(y, x.flip(0), rtol=0, atol=0)


def test_steps_run_in_order_on_one_stream(torch, cubin):
    prog = HostProgram(
        params=(
            TensorParam("a", "float32", ("n",)),
            TensorParam("b", "float32", ("n",)),
            TensorParam("c", "float32", ("n",)),
        ),
        steps=(
            LaunchStep(
                "add",
                ("(n + 127) // 128", "1", "1"),
                (128, 1, 1),
                0,
                (
                    KernelArg("a", "ptr"),
                    KernelArg("b", "ptr"),
                    KernelArg("c", "ptr"),
                    KernelArg("n", "int32"),
                ),
            ),
            LaunchStep(
                "add",
                ("(n + 127) // 128", "1", "1"),
                (128, 1, 1),
                0,
                (
                    KernelArg("c", "ptr"),
                    KernelArg("c", "ptr"),
                    KernelArg("c", "ptr"),
                    KernelArg("n", "int32"),
                ),
            ),
        ),
    )
    L = Launcher(prog, cubin)
    a, b, c = operands(torch, 5000)
    L(a, b, c)
    torch.cuda.synchronize()
    torch.testing.assert_close(c, (a + b) * 2, rtol=0, atol=0)


def test_threads(torch, add):
    results = {}

    def work(k):
        s = torch.cuda.Stream()
        with torch.cuda.stream(s):
            a, b, c = operands(torch, 1000 + 37 * k)
            for _ in range(50):
                add(a, b, c)
            s.synchronize()
            results[k] = bool(torch.equal(c, a + b))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {0: True, 1: True, 2: True, 3: True}


def test_cupy_arrays(cubin):
    cupy = pytest.importorskip("cupy")
    L = Launcher(add_program(), cubin)
    a = cupy.random.rand(3001, dtype=cupy.float32)
    b = cupy.random.rand(3001, dtype=cupy.float32)
    c = cupy.full(3001, math.nan, dtype=cupy.float32)
    with cupy.cuda.Stream(non_blocking=True):
        L(a, b, c)  # stream=None: CuPy's current stream
        cupy.cuda.get_current_stream().synchronize()
    assert bool((c == a + b).all())


def test_faulting_kernel_is_reported_by_synchronize(cubin, tmp_path):
    """Run in a child process: an illegal address poisons the CUDA context for good."""
    (tmp_path / "k.cubin").write_bytes(cubin)
    child = textwrap.dedent(
        f"""
        import torch
        from tsir.errors import LaunchError
        from tsir.runtime.launch import HostProgram, KernelArg, Launcher, LaunchStep, TensorParam
        prog = HostProgram(params=(TensorParam("p", "int32", (4,)),),
                           steps=(LaunchStep("fault", ("1", "1", "1"), (1, 1, 1), 0, (KernelArg("p", "ptr"),)),))
        L = Launcher(prog, open({str(tmp_path / "k.cubin")!r}, "rb").read())
        L(torch.zeros(4, dtype=torch.int32, device="cuda"))  # asynchronous: returns
        try:
            L.synchronize()
        except LaunchError as e:
            print("LAUNCH_ERROR:", e)
        """
    )
    r = subprocess.run(
        [sys.executable, "-c", child],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ),
    )
    assert "LAUNCH_ERROR:" in r.stdout, r.stdout + r.stderr
    assert "CUDA_ERROR_ILLEGAL_ADDRESS" in r.stdout and "sticky" in r.stdout
