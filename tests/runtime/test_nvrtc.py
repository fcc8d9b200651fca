"""NVRTC compilation (runtime/nvrtc.py) and its disk cache, on a machine without a GPU."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest
from tsir.runtime import cache, nvrtc

from tsir import knobs
from tsir.errors import CompileError
from tsir.target import Target

HALF_KERNEL = r"""
#include <cuda_fp16.h>
#include <cuda_bf16.h>

extern "C" __global__ void scale_fp16(__half* x, __nv_bfloat16* y, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) {
    x[i] = __hmul(x[i], __float2half(2.0f));
    y[i] = __float2bfloat16(__bfloat162float(y[i]) + 1.0f);
  }
}
"""

PLAIN_KERNEL = r"""
extern "C" __global__ void add_one(float* x, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) x[i] += 1.0f;
}
"""

ELF_MAGIC = b"\x7fELF"
ARCHS = ["sm_80", "sm_86", "sm_89", "sm_90", "sm_90a", "sm_100", "sm_100a", "sm_120"]


@pytest.mark.parametrize("arch", ARCHS)
def test_half_and_bfloat16_kernel_compiles_for_every_arch(tsir_cache: Path, arch: str) -> None:
    """cuda_fp16.h and cuda_bf16.h resolve, and the result is an ELF cubin with the kernel."""
    binary = nvrtc.compile_cuda(HALF_KERNEL, arch)
    assert binary.cubin.startswith(ELF_MAGIC)
    assert b"scale_fp16" in binary.cubin
    assert binary.arch == arch
    assert f"-arch={arch}" in binary.options
    assert "-std=c++17" in binary.options
    assert not binary.cache_hit
    assert binary.nvrtc_version == nvrtc.nvrtc_version()


def test_ptx_is_kept_and_names_the_target(tsir_cache: Path) -> None:
    ptx = nvrtc.get_ptx(HALF_KERNEL, "sm_90a")
    assert ".target sm_90a" in ptx
    assert ".entry scale_fp16" in ptx


def test_ptx_from_a_second_compile_when_nvrtc_keeps_none(
    tsir_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An NVRTC that gives no PTX after an sm_XX compile: get_ptx compiles for compute_XX."""
    real_run = nvrtc._run
    archs: list[str] = []

    def run_without_ptx(source, filename, options, want_cubin):
        ok, cubin, ptx, log = real_run(source, filename, options, want_cubin)
        arch = next(o for o in options if o.startswith("-arch="))
        archs.append(arch)
        return ok, cubin, (ptx if "compute_" in arch else None), log

    monkeypatch.setattr(nvrtc, "_run", run_without_ptx)
    assert nvrtc.compile_cuda(PLAIN_KERNEL, "sm_90a").ptx is None
    ptx = nvrtc.get_ptx(PLAIN_KERNEL, "sm_90a")
    assert ".target sm_90a" in ptx and ".entry add_one" in ptx
    assert archs == ["-arch=sm_90a", "-arch=compute_90a"]
    assert nvrtc.get_ptx(PLAIN_KERNEL, "sm_90a") == ptx  # cached: no third compile
    assert archs == ["-arch=sm_90a", "-arch=compute_90a"]


def test_target_object_and_string_give_the_same_key(tsir_cache: Path) -> None:
    a = nvrtc.compile_cuda(PLAIN_KERNEL, "sm_90a")
    b = nvrtc.compile_cuda(PLAIN_KERNEL, Target.parse("sm_90a"))
    assert a.key == b.key and b.cache_hit


def test_tsir_header_directory_is_on_the_include_path(tsir_cache: Path) -> None:
    include = nvrtc.tsir_include_dir()
    assert (include / "tsir").is_dir()
    assert f"-I{include}" in nvrtc.compile_cuda(PLAIN_KERNEL, "sm_80").options


def test_nvrtc_version_is_a_pair() -> None:
    major, minor = nvrtc.nvrtc_version()
    assert major >= 12 and minor >= 0


# -- errors ---------------------------------------------------------------------------------------


def test_syntax_error_names_the_line_and_shows_it(tsir_cache: Path) -> None:
    source = PLAIN_KERNEL + "\n__device__ int broken_value = 1\n__device__ int next_value;\n"
    bad_line = len(source.splitlines())  # NVRTC reports the missing ';' on the following line
    with pytest.raises(CompileError) as info:
        nvrtc.compile_cuda(source, "sm_90a", filename="kernel_with_typo.cu")
    message = str(info.value)
    assert f'kernel_with_typo.cu:{bad_line}: error: expected a ";"' in message
    assert "__device__ int next_value;" in message  # the offending line itself
    assert "__device__ int broken_value = 1" in message  # and the one before it
    assert "NVRTC log:" in message and "1 error detected" in message
    assert "-arch=sm_90a" in message
    assert info.value.lineno == bad_line
    assert "expected a" in info.value.log


def test_first_error_is_reported_when_there_are_several(tsir_cache: Path) -> None:
    source = 'extern "C" __global__ void k() {\n  undefined_a();\n  undefined_b();\n}\n'
    with pytest.raises(CompileError) as info:
        nvrtc.compile_cuda(source, "sm_80")
    first_line = str(info.value).splitlines()[0:2]
    assert any("tsir_kernel.cu:2: error" in line for line in first_line)
    assert "undefined_a" in str(info.value) and "2 errors detected" in str(info.value)


def test_missing_header_says_what_to_do(tsir_cache: Path) -> None:
    source = '#include "no_such_header_anywhere.h"\n' + PLAIN_KERNEL
    with pytest.raises(CompileError) as info:
        nvrtc.compile_cuda(source, "sm_90a")
    message = str(info.value)
    assert "no_such_header_anywhere.h" in message
    assert "tsir_kernel.cu:1:" in message
    assert "hint:" in message and "-I<dir>" in message
    assert cache.stats().compiles == 1  # not mistaken for a damaged header bundle


def test_invalid_option_is_a_compile_error(tsir_cache: Path) -> None:
    with pytest.raises(CompileError, match="unrecognized option --no-such-option"):
        nvrtc.compile_cuda(PLAIN_KERNEL, "sm_90a", extra_options=["--no-such-option"])


def test_failed_compiles_are_not_cached(tsir_cache: Path) -> None:
    for _ in range(2):
        with pytest.raises(CompileError):
            nvrtc.compile_cuda("this is not C++", "sm_80")
    assert cache.stats().compiles == 2 and cache.stats().writes == 0


def test_missing_cuda_bindings_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    import cuda.bindings

    monkeypatch.delattr(cuda.bindings, "nvrtc", raising=False)
    monkeypatch.setitem(sys.modules, "cuda.bindings.nvrtc", None)
    nvrtc._nvrtc.cache_clear()
    try:
        with pytest.raises(CompileError, match=r"pip install 'cuda-python.*nvidia-cuda-nvrtc"):
            nvrtc._nvrtc()
    finally:
        monkeypatch.undo()
        nvrtc._nvrtc.cache_clear()
    assert nvrtc._nvrtc() is not None


# -- headers on NVRTC without a bundle (the GPU machines run NVRTC 13.0) --------------------------


def _fake_toolkit(root: Path) -> Path:
    (root / "include" / "cccl").mkdir(parents=True)
    (root / "include" / "cuda_fp16.h").write_text("// fake\n")
    return root


def test_old_nvrtc_uses_cuda_home_include_and_cccl(tmp_path: Path) -> None:
    home = _fake_toolkit(tmp_path / "cuda")
    setup = nvrtc._header_setup((13, 0), tmp_path / "cache", home)
    assert setup.options == (f"-I{home}/include", f"-I{home}/include/cccl")
    assert setup.bundled_dir is None and "CUDA_HOME" in setup.origin


def test_new_nvrtc_uses_the_bundle_under_the_cache_dir(tmp_path: Path) -> None:
    setup = nvrtc._header_setup((13, 4), tmp_path, None)
    assert setup.options == (f"--use-bundled-headers={tmp_path}/nvrtc-headers/13.4",)
    assert setup.key_options == ("--use-bundled-headers=<nvrtc 13.4 bundle>",)


@pytest.fixture
def old_nvrtc_without_headers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend NVRTC is 13.0 and no toolkit or header wheel exists."""
    monkeypatch.setattr(nvrtc, "nvrtc_version", lambda: (13, 0))
    monkeypatch.setattr(nvrtc, "_toolkit_candidates", lambda home: [])
    monkeypatch.setattr(nvrtc, "_wheel_header_dirs", lambda: [])
    nvrtc._header_setup.cache_clear()
    yield
    nvrtc._header_setup.cache_clear()


def test_old_nvrtc_without_headers_still_compiles_plain_code(
    tsir_cache: Path, old_nvrtc_without_headers: None
) -> None:
    binary = nvrtc.compile_cuda(PLAIN_KERNEL, "sm_90a")
    assert binary.cubin.startswith(ELF_MAGIC)
    assert not any(o.startswith("--use-bundled-headers") for o in binary.options)


def test_old_nvrtc_without_headers_explains_the_missing_header(
    tsir_cache: Path, old_nvrtc_without_headers: None
) -> None:
    with pytest.raises(CompileError) as info:
        nvrtc.compile_cuda(HALF_KERNEL, "sm_90a")
    message = str(info.value)
    assert 'open source file "cuda_fp16.h"' in message
    assert "nvidia-cuda-nvrtc>=13.4" in message and "CUDA_HOME" in message
    assert "nvidia-cuda-runtime" in message


def test_toolkit_headers_work_with_the_wheel_nvrtc(
    tsir_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The -I<toolkit>/include path that NVRTC 13.0 uses, exercised here when a toolkit exists."""
    toolkits = [c for c in nvrtc._toolkit_candidates(knobs.cuda_home) if c[0].is_dir()]
    if not any((inc / "cuda_fp16.h").is_file() for inc, _ in toolkits):
        pytest.skip("no CUDA toolkit headers on this machine")
    monkeypatch.setattr(nvrtc, "nvrtc_version", lambda: (13, 0))
    nvrtc._header_setup.cache_clear()
    try:
        binary = nvrtc.compile_cuda(HALF_KERNEL, "sm_90a")
    finally:
        nvrtc._header_setup.cache_clear()
    assert binary.cubin.startswith(ELF_MAGIC)
    assert any(o.startswith("-I") and o.endswith("/include") for o in binary.options)


# -- the cache ------------------------------------------------------------------------------------


def test_second_compile_is_a_hit(tsir_cache: Path) -> None:
    first = nvrtc.compile_cuda(HALF_KERNEL, "sm_100a")
    second = nvrtc.compile_cuda(HALF_KERNEL, "sm_100a")
    assert (first.cache_hit, second.cache_hit) == (False, True)
    assert second.cubin == first.cubin and second.ptx == first.ptx
    assert cache.stats() == cache.CacheStats(hits=1, misses=1, writes=1, compiles=1)


@pytest.mark.parametrize(
    "change",
    [
        {"extra_options": ["-lineinfo"]},
        {"extra_options": ["-DTSIR_SOMETHING=1"]},
        {"target": "sm_90"},
        {"source": PLAIN_KERNEL + "// a comment changes the key\n"},
        {"filename": "other_name.cu"},
    ],
)
def test_anything_in_the_key_that_differs_is_a_miss(tsir_cache: Path, change: dict) -> None:
    args = {"source": PLAIN_KERNEL, "target": "sm_90a", "extra_options": [], "filename": "k.cu"}
    base = nvrtc.compile_cuda(args["source"], args["target"], filename="k.cu")
    args.update(change)
    other = nvrtc.compile_cuda(
        args["source"],
        args["target"],
        extra_options=args["extra_options"],
        filename=args["filename"],
    )
    assert not other.cache_hit and other.key != base.key
    assert cache.stats().compiles == 2 and cache.stats().hits == 0


def test_nvrtc_options_knob_is_part_of_the_key(tsir_cache: Path) -> None:
    base = nvrtc.compile_cuda(PLAIN_KERNEL, "sm_90a")
    with knobs.override(nvrtc_options="-lineinfo"):
        other = nvrtc.compile_cuda(PLAIN_KERNEL, "sm_90a")
    assert "-lineinfo" in other.options and other.key != base.key and not other.cache_hit


def _cache_dir_sharing_headers(shared: Path, new: Path) -> Path:
    """A new cache dir whose nvrtc-headers/ is the shared one's (extracting costs 0.2-3 s)."""
    nvrtc.compile_cuda(PLAIN_KERNEL, "sm_80")  # makes sure the shared bundle exists
    new.mkdir()
    (new / "nvrtc-headers").symlink_to(shared / "nvrtc-headers", target_is_directory=True)
    return new


def test_key_does_not_depend_on_where_the_cache_lives(tsir_cache: Path, tmp_path: Path) -> None:
    """The bundle path is replaced by its NVRTC version in the key, so entries can move."""
    one = nvrtc.compile_cuda(PLAIN_KERNEL, "sm_90a")
    with knobs.override(cache_dir=_cache_dir_sharing_headers(tsir_cache, tmp_path / "two")):
        two = nvrtc.compile_cuda(PLAIN_KERNEL, "sm_90a")
    assert one.options != two.options or nvrtc.header_setup().bundled_dir is None
    assert one.key == two.key


def _entry_file(binary: nvrtc.CudaBinary) -> Path:
    path = cache.entry_path("nvrtc", binary.key)
    assert path.is_file()
    return path


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: data[: len(data) // 2], id="truncated"),
        pytest.param(lambda data: b"", id="empty"),
        pytest.param(lambda data: data[:-40] + bytes(b ^ 0xFF for b in data[-40:]), id="flipped"),
        pytest.param(lambda data: b"garbage" + data[7:], id="bad-magic"),
    ],
)
def test_damaged_entry_is_recompiled_and_rewritten(tsir_cache: Path, damage) -> None:
    first = nvrtc.compile_cuda(HALF_KERNEL, "sm_90a")
    path = _entry_file(first)
    path.write_bytes(damage(path.read_bytes()))
    again = nvrtc.compile_cuda(HALF_KERNEL, "sm_90a")
    assert not again.cache_hit and again.cubin == first.cubin
    assert cache.stats().corrupt == 1 and cache.stats().compiles == 2
    third = nvrtc.compile_cuda(HALF_KERNEL, "sm_90a")  # the rewritten entry is good again
    assert third.cache_hit and third.cubin == first.cubin


def test_entry_of_another_key_is_not_trusted(tsir_cache: Path) -> None:
    a = nvrtc.compile_cuda(PLAIN_KERNEL, "sm_90a")
    b = nvrtc.compile_cuda(PLAIN_KERNEL, "sm_80")
    _entry_file(b).write_bytes(_entry_file(a).read_bytes())
    again = nvrtc.compile_cuda(PLAIN_KERNEL, "sm_80")
    assert not again.cache_hit and cache.stats().corrupt == 1


def test_disable_cache_knob_bypasses_reads_and_writes(tsir_cache: Path) -> None:
    with knobs.override(disable_cache=True):
        nvrtc.compile_cuda(PLAIN_KERNEL, "sm_90a")
        second = nvrtc.compile_cuda(PLAIN_KERNEL, "sm_90a")
    assert not second.cache_hit
    assert cache.stats() == cache.CacheStats(compiles=2)
    assert not (tsir_cache / "nvrtc").exists()


def test_disable_cache_environment_variable(
    tsir_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TSIR_DISABLE_CACHE", "1")
    knobs.reset("disable_cache")  # drop the fixture's override so the variable decides
    assert knobs.disable_cache
    nvrtc.compile_cuda(PLAIN_KERNEL, "sm_90a")
    second = nvrtc.compile_cuda(PLAIN_KERNEL, "sm_90a")
    assert not second.cache_hit
    assert cache.stats() == cache.CacheStats(compiles=2)


def test_damaged_header_bundle_is_extracted_again(tsir_cache: Path) -> None:
    """NVRTC trusts an existing bundle dir; tsir re-extracts it once when a header went missing."""
    nvrtc.compile_cuda(PLAIN_KERNEL, "sm_90a")  # makes sure the bundle exists
    bundle = nvrtc.header_setup().bundled_dir
    if bundle is None:
        pytest.skip("this NVRTC has no bundled headers")
    (bundle / "cuda_fp16.h").unlink()
    nvrtc._repaired.discard(bundle)
    binary = nvrtc.compile_cuda(HALF_KERNEL, "sm_90a")
    assert binary.cubin.startswith(ELF_MAGIC)
    assert (bundle / "cuda_fp16.h").is_file()
    assert cache.stats().compiles == 3  # plain, the failed attempt, the retry


def test_use_cache_false_compiles_every_time(tsir_cache: Path) -> None:
    nvrtc.compile_cuda(PLAIN_KERNEL, "sm_90a")
    again = nvrtc.compile_cuda(PLAIN_KERNEL, "sm_90a", use_cache=False)
    assert not again.cache_hit and cache.stats().compiles == 2


def test_unwritable_cache_still_compiles(tsir_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache.tempfile, "mkstemp", refuse)
    binary = nvrtc.compile_cuda(PLAIN_KERNEL, "sm_90a")
    assert binary.cubin.startswith(ELF_MAGIC)
    assert cache.stats().write_errors == 1 and cache.stats().writes == 0


def test_concurrent_compiles_of_one_kernel_agree(tsir_cache: Path) -> None:
    results: list[bytes] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            results.append(nvrtc.compile_cuda(HALF_KERNEL, "sm_90a").cubin)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(set(results)) == 1
    assert nvrtc.compile_cuda(HALF_KERNEL, "sm_90a").cache_hit
    leftovers = [p for p in (tsir_cache / "nvrtc").rglob(".tmp-*")]
    assert leftovers == []


def test_cache_hit_is_fast(tsir_cache: Path) -> None:
    nvrtc.compile_cuda(HALF_KERNEL, "sm_100a")
    best = min(nvrtc.compile_cuda(HALF_KERNEL, "sm_100a").seconds for _ in range(20))
    assert best < 0.005, f"a cache hit took {best * 1e3:.2f} ms"


# -- on a GPU -------------------------------------------------------------------------------------


@pytest.mark.gpu
def test_cubin_for_the_current_gpu_loads_and_runs(tsir_cache: Path) -> None:
    """Compile for target 'cuda', load with the driver and check the kernel's effect."""
    import ctypes

    from cuda.bindings import driver

    def ok(result: tuple) -> object:
        status, *rest = result
        assert status == driver.CUresult.CUDA_SUCCESS, status
        return rest[0] if len(rest) == 1 else rest

    target = Target.parse("cuda")
    binary = nvrtc.compile_cuda(HALF_KERNEL + PLAIN_KERNEL, target)
    ok(driver.cuInit(0))
    device = ok(driver.cuDeviceGet(0))
    context = ok(driver.cuDevicePrimaryCtxRetain(device))
    ok(driver.cuCtxSetCurrent(context))
    try:
        module = ok(driver.cuModuleLoadData(binary.cubin))
        function = ok(driver.cuModuleGetFunction(module, b"add_one"))
        n = 256
        host = (ctypes.c_float * n)(*range(n))
        dev = ok(driver.cuMemAlloc(4 * n))
        ok(driver.cuMemcpyHtoD(dev, host, 4 * n))
        ptr = ctypes.c_void_p(int(dev))
        count = ctypes.c_int(n)
        params = (ctypes.c_void_p * 2)(ctypes.addressof(ptr), ctypes.addressof(count))
        ok(driver.cuLaunchKernel(function, 1, 1, 1, n, 1, 1, 0, 0, ctypes.addressof(params), 0))
        ok(driver.cuCtxSynchronize())
        ok(driver.cuMemcpyDtoH(host, dev, 4 * n))
        assert list(host) == [float(i + 1) for i in range(n)]
        ok(driver.cuMemFree(dev))
        ok(driver.cuModuleUnload(module))
    finally:
        ok(driver.cuDevicePrimaryCtxRelease(device))
