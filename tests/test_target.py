"""Target parsing, capabilities and limits (tsir/target.py)."""

from __future__ import annotations

import enum
import sys
import types
from typing import Any

import pytest

from tsir.errors import UnsupportedError
from tsir.target import SUPPORTED_ARCHS, Target, cuda_device_count

REQUIRED = ["sm_80", "sm_86", "sm_89", "sm_90", "sm_90a", "sm_100", "sm_100a", "sm_120", "sm_120a"]


@pytest.mark.parametrize("arch", REQUIRED)
def test_parse_accepts_each_architecture(arch: str) -> None:
    target = Target.parse(arch)
    assert target.arch == arch and str(target) == arch and target.nvrtc_arch == arch
    assert target.arch_specific == arch.endswith("a")
    assert target.sm == int(arch[3:].rstrip("a"))
    assert target.max_threads_per_block == 1024 and target.warp_size == 32


def test_parse_is_lenient_about_case_and_spaces_and_returns_targets_unchanged() -> None:
    target = Target.parse("  SM_90A ")
    assert target == Target("sm_90a")
    assert Target.parse(target) is target


def test_targets_compare_and_hash_by_value() -> None:
    assert Target.parse("sm_90a") == Target.parse("sm_90a")
    assert Target.parse("sm_90a") != Target.parse("sm_90")
    assert len({Target.parse("sm_100a"), Target("sm_100a"), Target("sm_80")}) == 2


def test_targets_are_immutable() -> None:
    target = Target("sm_80")
    with pytest.raises(AttributeError):
        target.arch = "sm_90"  # type: ignore[misc]  # frozen: assignment must fail


@pytest.mark.parametrize(
    ("arch", "cp_async", "mma", "wgmma", "tma", "tcgen05"),
    [
        ("sm_80", True, True, False, False, False),
        ("sm_86", True, True, False, False, False),
        ("sm_89", True, True, False, False, False),
        ("sm_90", True, True, False, True, False),
        ("sm_90a", True, True, True, True, False),
        ("sm_100", True, True, False, True, False),
        ("sm_100a", True, True, False, True, True),
        ("sm_120", True, True, False, True, False),
        ("sm_120a", True, True, False, True, False),
    ],
)
def test_instruction_capabilities(
    arch: str, cp_async: bool, mma: bool, wgmma: bool, tma: bool, tcgen05: bool
) -> None:
    target = Target.parse(arch)
    got = (target.has_cp_async, target.has_mma_sync, target.has_wgmma, target.has_tma)
    assert got == (cp_async, mma, wgmma, tma)
    assert target.has_tcgen05 == tcgen05


@pytest.mark.parametrize(
    ("arch", "kib"),
    [
        ("sm_80", 163),
        ("sm_86", 99),
        ("sm_89", 99),
        ("sm_90a", 227),
        ("sm_100", 227),
        ("sm_100a", 227),
        ("sm_120", 99),
    ],
)
def test_opt_in_shared_memory_per_block(arch: str, kib: int) -> None:
    target = Target.parse(arch)
    assert target.max_shared_memory_per_block == kib * 1024
    # 1 KiB of the SM's shared memory is reserved by the system for each block
    assert target.max_shared_memory_per_sm == (kib + 1) * 1024
    assert target.default_shared_memory_per_block == 48 * 1024


def test_ptx_arch_and_compute_capability() -> None:
    assert Target("sm_90a").ptx_arch == "compute_90a"
    assert Target("sm_86").compute_capability == (8, 6)
    assert Target("sm_100a").compute_capability == (10, 0)


@pytest.mark.parametrize("spec", ["sm_75", "sm_91", "sm_80a", "", "gfx942", "cuda:x"])
def test_unknown_architecture_lists_the_supported_ones(spec: str) -> None:
    with pytest.raises(UnsupportedError) as info:
        Target.parse(spec)
    message = str(info.value)
    assert f"unknown target {spec.strip().lower()!r}" in message
    assert all(arch in message for arch in REQUIRED)
    assert "'cuda'" in message


def test_non_string_spec_is_rejected() -> None:
    with pytest.raises(UnsupportedError, match="got int"):
        Target.parse(90)  # type: ignore[arg-type]  # wrong type on purpose


def test_supported_archs_cover_the_required_ones() -> None:
    assert set(REQUIRED) <= set(SUPPORTED_ARCHS)


# -- "cuda": the present GPU, through a fake driver -----------------------------------------------


class _Result(enum.IntEnum):
    CUDA_SUCCESS = 0
    CUDA_ERROR_NO_DEVICE = 100


class _Attr(enum.IntEnum):
    CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75
    CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76


def _fake_driver(
    capabilities: list[tuple[int, int]], *, init: Any = _Result.CUDA_SUCCESS, current: int = -1
) -> types.SimpleNamespace:
    """A stand-in for cuda.bindings.driver with devices of the given compute capabilities."""

    def cu_init(flags: int) -> tuple[Any]:
        if isinstance(init, Exception):
            raise init
        return (init,)

    def attribute(which: _Attr, device: int) -> tuple[_Result, int]:
        major, minor = capabilities[device]
        major_attr = _Attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR
        return _Result.CUDA_SUCCESS, major if which == major_attr else minor

    return types.SimpleNamespace(
        CUresult=_Result,
        CUdevice_attribute=_Attr,
        cuInit=cu_init,
        cuDeviceGetCount=lambda: (_Result.CUDA_SUCCESS, len(capabilities)),
        cuDeviceGet=lambda ordinal: (_Result.CUDA_SUCCESS, ordinal),
        cuDeviceGetAttribute=attribute,
        cuCtxGetCurrent=lambda: (_Result.CUDA_SUCCESS, 0 if current < 0 else 0xC0FFEE),
        cuCtxGetDevice=lambda: (_Result.CUDA_SUCCESS, max(current, 0)),
    )


@pytest.fixture
def use_driver(monkeypatch: pytest.MonkeyPatch):
    """Install a fake `cuda.bindings.driver` under tsir's one driver layer (tsir.runtime.driver),
    which Target.parse("cuda") asks."""
    import cuda.bindings
    from tsir.runtime import driver as runtime_driver

    def install(fake: types.SimpleNamespace) -> None:
        monkeypatch.setattr(cuda.bindings, "driver", fake, raising=False)
        monkeypatch.setitem(sys.modules, "cuda.bindings.driver", fake)
        monkeypatch.setattr(runtime_driver, "_driver", None)  # forget a real driver already up

    return install


@pytest.mark.parametrize(
    ("capability", "arch"),
    [
        ((9, 0), "sm_90a"),
        ((10, 0), "sm_100a"),
        ((12, 0), "sm_120a"),
        ((8, 0), "sm_80"),
        ((8, 6), "sm_86"),
        ((8, 9), "sm_89"),
    ],
)
def test_cuda_maps_compute_capability_to_arch(use_driver, capability, arch) -> None:
    use_driver(_fake_driver([capability]))
    assert Target.parse("cuda") == Target(arch)


def test_cuda_uses_the_current_context_device(use_driver) -> None:
    use_driver(_fake_driver([(8, 0), (9, 0)], current=1))
    assert Target.parse("cuda").arch == "sm_90a"
    assert Target.parse("cuda:0").arch == "sm_80"


def test_cuda_without_context_uses_device_zero(use_driver) -> None:
    use_driver(_fake_driver([(10, 0), (8, 6)]))
    assert Target.parse("cuda").arch == "sm_100a"


def test_cuda_with_missing_driver_library(use_driver) -> None:
    use_driver(_fake_driver([], init=RuntimeError('"cuda" is an NVIDIA driver library')))
    with pytest.raises(UnsupportedError, match=r"needs a usable NVIDIA GPU and driver.*sm_90a"):
        Target.parse("cuda")


def test_cuda_with_no_device(use_driver) -> None:
    use_driver(_fake_driver([], init=_Result.CUDA_ERROR_NO_DEVICE))
    with pytest.raises(UnsupportedError, match="cuInit failed with CUDA_ERROR_NO_DEVICE"):
        Target.parse("cuda")


def test_cuda_with_an_unsupported_gpu(use_driver) -> None:
    use_driver(_fake_driver([(7, 5)]))
    with pytest.raises(UnsupportedError, match=r"compute capability 7\.5.*supported: sm_80"):
        Target.parse("cuda")


def test_device_count_through_the_driver(use_driver) -> None:
    use_driver(_fake_driver([(9, 0), (9, 0)]))
    assert cuda_device_count() == 2


def test_device_count_without_a_driver_says_why(use_driver) -> None:
    use_driver(_fake_driver([], init=RuntimeError("libcuda.so.1: cannot open")))
    with pytest.raises(UnsupportedError, match=r"libcuda\.so\.1: cannot open"):
        cuda_device_count()


def test_cuda_ordinal_out_of_range(use_driver) -> None:
    use_driver(_fake_driver([(9, 0)]))
    with pytest.raises(UnsupportedError, match=r"cuda:3.*1 present"):
        Target.parse("cuda:3")


def test_cuda_on_this_machine(num_gpus: int) -> None:
    """Without a GPU, 'cuda' is a clear UnsupportedError; with one, a supported target."""
    if num_gpus > 0:
        assert Target.parse("cuda").arch in SUPPORTED_ARCHS
        return
    with pytest.raises(UnsupportedError) as info:
        Target.parse("cuda")
    assert "target 'cuda'" in str(info.value)
    assert "target='sm_90a'" in str(info.value)  # says how to compile without a GPU


@pytest.mark.gpu
def test_cuda_target_matches_the_device() -> None:
    from cuda.bindings import driver

    driver.cuInit(0)
    _, device = driver.cuDeviceGet(0)
    attr = driver.CUdevice_attribute
    _, major = driver.cuDeviceGetAttribute(
        attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, device
    )
    _, minor = driver.cuDeviceGetAttribute(
        attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, device
    )
    assert Target.parse("cuda:0").compute_capability == (major, minor)


def test_lower_and_compile_share_one_default_target(
    monkeypatch: pytest.MonkeyPatch, num_gpus: int
) -> None:
    """No target means the `target` knob (TSIR_TARGET, default "cuda": the present GPU) for both
    tsir.lower and tsir.compile; the knob names an architecture to compile without a GPU."""
    import inspect

    import tsir
    from tsir import T, knobs

    assert inspect.signature(tsir.lower).parameters["target"].default is None
    assert inspect.signature(tsir.compile).parameters["target"].default is None
    with T.prim_func("k") as f:
        A = T.param("A", (128,), "float32")
        with T.Kernel(1, threads=128):
            for i in T.Parallel(128):
                A[i] = A[i] + 1.0
    monkeypatch.delenv("TSIR_TARGET", raising=False)
    if num_gpus == 0:
        with pytest.raises(UnsupportedError, match="target 'cuda' needs a usable NVIDIA GPU"):
            tsir.lower(f.func)
    monkeypatch.setenv("TSIR_TARGET", "sm_80")
    assert knobs.target == "sm_80"
    assert tsir.lower(f.func).module.host.name == "k"
    with knobs.override(target=Target("sm_100a")):
        assert knobs.target == "sm_100a"
