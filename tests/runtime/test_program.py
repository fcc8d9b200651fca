"""NVRTC through cuda.core's Program (runtime/program.py): the cubin is the one NVRTC makes, whole;
the cuda.core release is found or named; options reach NVRTC verbatim or the compile fails."""

from __future__ import annotations

import struct
import sys
import types
from pathlib import Path
from typing import Any, ClassVar

import pytest
from tsir.runtime import nvrtc, program

from tsir.errors import CompileError

KERNEL = r"""
extern "C" __global__ void add_one(float* x, int n) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) x[i] += 1.0f;
}
"""


def _direct_cubin(source: str, options: tuple[str, ...]) -> bytes:
    """The cubin of `source` compiled with cuda.bindings.nvrtc alone (no cuda.core, no tsir)."""
    from cuda.bindings import nvrtc as raw

    status, prog = raw.nvrtcCreateProgram(source.encode(), b"direct.cu", 0, [], [])
    assert status == raw.nvrtcResult.NVRTC_SUCCESS
    try:
        (status,) = raw.nvrtcCompileProgram(prog, len(options), [o.encode() for o in options])
        assert status == raw.nvrtcResult.NVRTC_SUCCESS, status
        status, size = raw.nvrtcGetCUBINSize(prog)
        data = bytearray(size)
        (status,) = raw.nvrtcGetCUBIN(prog, data)
        assert status == raw.nvrtcResult.NVRTC_SUCCESS
        return bytes(data)
    finally:
        raw.nvrtcDestroyProgram(prog)


@pytest.mark.parametrize("arch", ["sm_80", "sm_90a", "sm_100a"])
def test_cubin_is_nvrtcs_own_and_whole(tsir_cache: Path, arch: str) -> None:
    """The ELF's program headers end at the file's end (the last bytes are zeros of p_align), so a
    cubin cut at its trailing zeros would lose them; the bytes equal a direct NVRTC compile's."""
    binary = nvrtc.compile_cuda(KERNEL, arch, filename="direct.cu")
    cubin = binary.cubin
    (ph_offset,) = struct.unpack_from("<Q", cubin, 0x20)
    ph_size, ph_count = struct.unpack_from("<HH", cubin, 0x36)
    assert len(cubin) >= ph_offset + ph_size * ph_count
    assert cubin == _direct_cubin(KERNEL, binary.options)


def test_the_log_of_a_successful_compile_is_kept(tsir_cache: Path) -> None:
    source = 'extern "C" __global__ void k(int* p) { int unused_value; *p = 1; }\n'
    binary = nvrtc.compile_cuda(source, "sm_90a")
    assert 'variable "unused_value" was declared but never referenced' in binary.log


@pytest.fixture
def fresh_core():
    """Forget which cuda.core was found, before and after the test."""
    program._core.cache_clear()
    yield
    program._core.cache_clear()


def test_missing_cuda_core_names_the_package(
    monkeypatch: pytest.MonkeyPatch, fresh_core: None
) -> None:
    monkeypatch.setitem(sys.modules, "cuda.core", None)
    monkeypatch.setitem(sys.modules, "cuda.core.experimental", None)
    with pytest.raises(
        CompileError, match=r"cuda.core's Program.*pip install -U 'cuda-core>=0\.3'"
    ):
        nvrtc.compile_cuda(KERNEL, "sm_90a", use_cache=False)


def test_cuda_core_before_0_5_is_found_under_experimental(
    tsir_cache: Path, monkeypatch: pytest.MonkeyPatch, fresh_core: None
) -> None:
    """cuda-core 0.3/0.4 have Program only in cuda.core.experimental."""
    real = program._core()  # whichever cuda.core is installed
    program._core.cache_clear()
    old = types.ModuleType("cuda.core")
    experimental = types.ModuleType("cuda.core.experimental")
    experimental.Program = real.program  # type: ignore[attr-defined]
    experimental.ProgramOptions = real.options.__mro__[1]  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "cuda.core", old)
    monkeypatch.setitem(sys.modules, "cuda.core.experimental", experimental)
    binary = nvrtc.compile_cuda(KERNEL, "sm_80", use_cache=False)
    assert binary.cubin.startswith(b"\x7fELF")
    assert program._core().program is real.program


class _RecordingProgram:
    """Stands in for cuda.core's Program: records close(), fails or not as told."""

    closed: ClassVar[list[str]] = []

    def __init__(self, code: str, code_type: str, options: Any) -> None:
        self.options = options
        self.handle = None

    def compile(self, target_type: str) -> Any:
        raise NotImplementedError

    def close(self) -> None:
        _RecordingProgram.closed.append(self.options.name)


class _PlainOptions:
    """A ProgramOptions with neither as_bytes nor _as_bytes that tsir's subclass could answer."""

    def __init__(self, name: str, arch: str) -> None:
        self.name = name


def _install(monkeypatch: pytest.MonkeyPatch, prog: type, options: type = _PlainOptions) -> None:
    core = program._Core(prog, program._verbatim_options(options), "9.9.9")
    monkeypatch.setattr(program, "_core", lambda: core)
    _RecordingProgram.closed = []


def test_options_that_never_reach_nvrtc_are_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """A cuda.core that compiles without asking for the option list would drop tsir's options."""

    class Silent(_RecordingProgram):
        def compile(self, target_type: str) -> Any:
            return types.SimpleNamespace(code=b"\x7fELF")

    _install(monkeypatch, Silent)
    with pytest.raises(CompileError, match=r"cuda-core 9\.9\.9 .*did not reach NVRTC"):
        nvrtc.compile_cuda(KERNEL, "sm_90a", use_cache=False)
    assert _RecordingProgram.closed == ["tsir_kernel.cu"]


def test_a_cuda_core_failure_names_the_version_and_the_driver_hint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """cuda-core before 0.7 asks the driver's version after compiling; without a GPU that fails."""

    class NeedsDriver(_RecordingProgram):
        def compile(self, target_type: str) -> Any:
            self.options.as_bytes("nvrtc", target_type)
            raise RuntimeError('"cuda" is an NVIDIA driver library and can only be found ...')

    _install(monkeypatch, NeedsDriver)
    with pytest.raises(CompileError) as info:
        nvrtc.compile_cuda(KERNEL, "sm_90a", filename="k.cu", use_cache=False)
    message = str(info.value)
    assert "cuda-core 9.9.9's Program.compile failed: RuntimeError" in message
    assert "pip install -U 'cuda-core>=0.7'" in message
    assert _RecordingProgram.closed == ["k.cu"]  # destroyed on the failing path too


def test_options_are_handed_over_verbatim() -> None:
    """Both hooks of cuda.core's releases return exactly tsir's strings."""
    options = program._verbatim_options(_PlainOptions)(
        "k.cu", "sm_90a", ("-arch=sm_90a", "--use-bundled-headers=/x y", "-DA=b c")
    )
    expected = [b"-arch=sm_90a", b"--use-bundled-headers=/x y", b"-DA=b c"]
    assert options.as_bytes("nvrtc", "cubin") == expected
    assert options._as_bytes() == expected
    with pytest.raises(CompileError, match="backend 'nvvm'"):
        options.as_bytes("nvvm")
