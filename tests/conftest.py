"""Shared test setup.

Tests marked `gpu` need one CUDA GPU and tests marked `multigpu` need two (or `multigpu(n)`: n);
they skip, with the reason, only when those GPUs are missing. CPU CI deselects them anyway
(`-m "not gpu and not multigpu"`); `make gpu-test` selects them. Nothing here skips a CPU test.

Helpers: `gpu_count()` and `gpu_available(n=1)` here, and the fixtures `num_gpus` and `tsir_cache`
(an isolated compile cache with fresh counters). Test modules should not `import conftest` (another
conftest.py, such as tests/examples/conftest.py, can shadow the name): use the fixtures, or
`tsir.target.cuda_device_count()`, which these helpers wrap.
"""

from __future__ import annotations

import functools
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest


@functools.cache
def _probe_gpus() -> tuple[int, str]:
    """(number of CUDA devices, why none when 0), asked of the driver once per session."""
    from tsir.errors import UnsupportedError
    from tsir.target import cuda_device_count

    try:
        count = cuda_device_count()
    except UnsupportedError as exc:
        return 0, exc.message
    return count, "" if count else "the driver reports no CUDA device"


def gpu_count() -> int:
    """How many CUDA GPUs this process can use."""
    return _probe_gpus()[0]


def gpu_available(n: int = 1) -> bool:
    """True when at least `n` CUDA GPUs are usable."""
    return gpu_count() >= n


def required_gpus(item: pytest.Item) -> int:
    """GPUs a test needs from its markers: gpu -> 1, multigpu -> 2, multigpu(n) -> n."""
    multi = item.get_closest_marker("multigpu")
    if multi is not None:
        return int(multi.args[0]) if multi.args else int(multi.kwargs.get("n", 2))
    return 1 if item.get_closest_marker("gpu") is not None else 0


def pytest_runtest_setup(item: pytest.Item) -> None:
    need = required_gpus(item)
    if need == 0:
        return
    count, why = _probe_gpus()
    if count < need:
        found = f"found {count}" + (f": {why}" if why else "")
        pytest.skip(f"needs {need} CUDA GPU{'s' if need > 1 else ''}, {found}")


@pytest.fixture(scope="session")
def num_gpus() -> int:
    """How many CUDA GPUs the tests can use (0 on CPU machines)."""
    return gpu_count()


@pytest.fixture(scope="session")
def _tsir_cache_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tsir-cache")


@pytest.fixture
def tsir_cache(_tsir_cache_root: Path) -> Iterator[Path]:
    """A compile cache dir with no entries, for one test, with the cache counters reset.

    NVRTC's extracted headers (nvrtc-headers/) are kept between tests: extracting them costs
    0.2 s and they are not cache entries.
    """
    from tsir.runtime import cache

    from tsir import knobs

    root = _tsir_cache_root
    for child in root.iterdir():
        if child.name == "nvrtc-headers":
            continue
        if child.is_dir():
            shutil.rmtree(child)
        else:
            child.unlink()
    cache.reset_stats()
    with knobs.override(cache_dir=root, disable_cache=False):
        yield root
    cache.reset_stats()
