"""T.nvshmem.*: builder checks, the CUDA it prints, and NVRTC compilation against NVSHMEM's headers
(skipped when nvidia-nvshmem-cu13 or a cuda_runtime.h is not installed here)."""

from __future__ import annotations

import sys
import types

import pytest

import tsir
from tsir import T
from tsir.errors import BuildError, CompileError, DTypeError

N = 256


def kernel() -> tsir.PrimFunc:
    with T.prim_func("nvs") as f:
        src, dst = T.param("src", (N,), "float32"), T.param("dst", (N,), "float32")
        sig = T.param("sig", (2,), "uint64")
        with T.Kernel(1, threads=128):
            peer = (T.nvshmem.my_pe() + 1) % T.nvshmem.n_pes()
            T.nvshmem.putmem_signal_nbi(dst, src, N * 4, sig[0], 1, "set", peer, scope="block")
            T.nvshmem.putmem(dst, src, N * 4, peer, scope="warp")
            T.nvshmem.getmem_nbi(dst, src, 16, peer)
            T.nvshmem.signal_op(sig[1], 1, "add", peer)
            T.nvshmem.signal_wait_until(sig[0], "ge", 1)
            T.nvshmem.p(dst[1], 2.0, peer)
            dst[2] = T.nvshmem.g(src[3], peer)
            T.nvshmem.fence()
            T.nvshmem.quiet()
            T.nvshmem.barrier_all(scope="block")
            T.nvshmem.sync_all(scope="warp")
    return f.func


def test_codegen_prints_nvshmem_calls_and_its_header_only_when_used() -> None:
    from tsir.codegen.cuda import generate_cuda

    src = generate_cuda(tsir.lower(kernel(), "sm_90a").module)
    assert '#include "tsir/nvshmem.h"' in src
    for line in (
        "nvshmemx_putmem_signal_nbi_block(&dst[0], &src[0], 1024LL, &sig[0], 1ull, 9, ",
        "nvshmemx_putmem_warp(&dst[0], &src[0], 1024LL, ",
        "nvshmem_getmem_nbi(&dst[0], &src[0], 16LL, ",
        "nvshmemx_signal_op(&sig[1], 1ull, 10, ",
        "nvshmem_signal_wait_until(&sig[0], 5, 1ull);",
        "nvshmem_float_p(&dst[1], 2.0f, ",
        "dst[2] = nvshmem_float_g(&src[3], ",
        "nvshmem_fence();",
        "nvshmem_quiet();",
        "nvshmemx_barrier_all_block();",
        "nvshmemx_sync_all_warp();",
    ):
        assert line in src, line
    with T.prim_func("plain") as f:
        A = T.param("A", (N,), "float32")
        with T.Kernel(1, threads=32) as bx:
            A[bx] = 1.0
    assert "nvshmem" not in generate_cuda(tsir.lower(f.func, "sm_90a").module)


def test_builder_errors() -> None:
    def build(body):  # type: ignore[no-untyped-def]
        with T.prim_func("bad") as f:
            src, dst = T.param("src", (N,), "float32"), T.param("dst", (N,), "float32")
            sig = T.param("sig", (2,), "int32")
            with T.Kernel(1, threads=32):
                body(src, dst, sig)
        return f.func

    with pytest.raises(BuildError, match="scope must be thread, warp or block"):
        build(lambda s, d, g: T.nvshmem.putmem(d, s, 4, 0, scope="grid"))
    with pytest.raises(DTypeError, match="signal `sig` must be uint64"):
        build(lambda s, d, g: T.nvshmem.signal_wait_until(g, "ge", 1))
    with pytest.raises(BuildError, match="sig_op must be 'set' or 'add'"):
        build(lambda s, d, g: T.nvshmem.signal_op(g, 1, "xor", 0))
    with pytest.raises(BuildError, match="pe is required"):
        build(lambda s, d, g: T.nvshmem.putmem(d, s, 4, None))
    with pytest.raises(BuildError, match="must be inside a `with T.Kernel"):
        with T.prim_func("host"):
            T.nvshmem.quiet()


def test_missing_nvshmem_names_the_package(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tsir.runtime import nvshmem

    nvshmem.include_dir.cache_clear()
    nvshmem.version.cache_clear()
    monkeypatch.setenv("NVSHMEM_HOME", str(tmp_path))
    monkeypatch.setitem(sys.modules, "nvidia", types.SimpleNamespace(__path__=[str(tmp_path)]))
    try:
        with pytest.raises(CompileError, match="pip install nvidia-nvshmem-cu13"):
            tsir.compile(kernel(), "sm_90a")
    finally:
        nvshmem.include_dir.cache_clear()
        nvshmem.version.cache_clear()


def test_nvrtc_compiles_nvshmem_kernels() -> None:
    """With NVSHMEM >= 3.4.5 installed: a self-contained cubin with the per-module device state."""
    from tsir.runtime import nvshmem

    try:
        nvshmem.include_dir()
        from tsir.runtime.nvrtc import header_setup

        h = header_setup()
        nvshmem.nvrtc_options(h.options, h.bundled_dir)
    except CompileError as e:
        pytest.skip(f"NVSHMEM build prerequisites missing: {e.message[:120]}")
    k = tsir.compile(kernel(), "sm_90a")
    assert b"nvshmemi_device_state_d" in k.cubin
    assert "-D__NVSHMEM_NUMBA_SUPPORT__" in k.binary.options
