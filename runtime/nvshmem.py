"""NVSHMEM for tsir: finding the package, NVRTC options for kernels that call `T.nvshmem.*`, and the
per-module initialization after load.

Compilation. Generated CUDA that calls NVSHMEM includes tsir's `tsir/nvshmem.h`, which includes
`nvshmem.h`/`nvshmemx.h` from the `nvidia-nvshmem-cu13` wheel. NVRTC then gets
`-D__NVSHMEM_NUMBA_SUPPORT__` (NVSHMEM's own JIT mode: every device function inlined, and a
`__constant__ nvshmemi_device_state_d` per module, so no -rdc and no nvJitLink link step) and
`-default-device` (3.4's `nvshmem_tensor.h` has an unannotated constructor). `tsir/nvshmem.h` makes
the 3.4 headers NVRTC-clean without touching them: it includes NVSHMEM's build options first and
undefines NVSHMEM_IBGDA_SUPPORT (3.4 would otherwise include the IBGDA transport's device code,
which needs rdma-core's `infiniband/mlx5dv.h`; 3.8 guards that itself), and it names the three
`std::` traits 3.4's reduce templates use after `cuda::std`. Tested with 3.4.5 (the GPU machines');
versions before 3.4 are refused.

Loading. A cubin built that way defines `nvshmemi_device_state_d`; the driver's module-initializer
registry (`MODULE_INITIALIZERS`) calls `initialize_module`, which runs `nvshmemx_cumodule_init`
through nvshmem4py (`nvshmem.bindings.cumodule_init`) once NVSHMEM is initialized
(`tsir.runtime.dist.nvshmem_init`, see dist/nvshmem_heap.py).
"""

from __future__ import annotations

import os
import re
from functools import cache
from pathlib import Path

from ..errors import CompileError, LaunchError

__all__ = [
    "HEADER",
    "MIN_VERSION",
    "SYMBOL",
    "include_dir",
    "version",
    "nvrtc_options",
    "initialize_module",
    "forget_module",
]

HEADER = "tsir/nvshmem.h"
SYMBOL = "nvshmemi_device_state_d"
MIN_VERSION = (3, 4)
_INSTALL = "pip install nvidia-nvshmem-cu13 (NVSHMEM >= 3.4.5)"


@cache
def include_dir() -> Path:
    """`nvidia/nvshmem/include` of the installed nvidia-nvshmem wheel (or $NVSHMEM_HOME/include)."""
    candidates: list[Path] = []
    home = os.environ.get("NVSHMEM_HOME")
    if home:
        candidates.append(Path(home) / "include")
    try:
        import nvidia

        candidates += [Path(p) / "nvshmem" / "include" for p in nvidia.__path__]
    except ImportError:
        pass
    for c in candidates:
        if (c / "nvshmem.h").is_file():
            return c
    raise CompileError(
        f"this kernel calls NVSHMEM (T.nvshmem.*), but NVSHMEM's headers were not found; {_INSTALL}"
        f" (or set NVSHMEM_HOME)",
        where="nvrtc",
    )


@cache
def version() -> tuple[int, int, int]:
    text = (include_dir() / "non_abi" / "nvshmem_version.h").read_text()
    parts = [
        re.search(rf"#define NVSHMEM_VENDOR_{k}_VERSION (\d+)", text)
        for k in ("MAJOR", "MINOR", "PATCH")
    ]
    if any(p is None for p in parts):
        raise CompileError(f"cannot read NVSHMEM's version from {include_dir()}", where="nvrtc")
    return tuple(int(p.group(1)) for p in parts if p is not None)  # pyright: ignore[reportReturnType]  # narrowed by a check above that the checker cannot follow


def _cudart_dirs(existing: tuple[str, ...], bundled: Path | None) -> list[str]:
    """An include dir holding cuda_runtime.h (NVSHMEM's headers include it) unless one is there."""
    dirs = [Path(o[2:]) for o in existing if o.startswith("-I")] + ([bundled] if bundled else [])
    if any((d / "cuda_runtime.h").is_file() for d in dirs):
        return []
    found: list[Path] = []
    try:
        import nvidia

        found += [Path(p) / "cu13" / "include" for p in nvidia.__path__]
        found += [Path(p) / "cuda_runtime" / "include" for p in nvidia.__path__]
    except ImportError:
        pass
    for env in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(env):
            found.append(Path(os.environ[env]) / "include")
    found.append(Path("/usr/local/cuda/include"))
    for d in found:
        if (d / "cuda_runtime.h").is_file():
            return [str(d)] + ([str(d / "cccl")] if (d / "cccl").is_dir() else [])
    raise CompileError(
        "NVSHMEM's headers include cuda_runtime.h, which neither NVRTC's headers nor the CUDA "
        "toolkit provide here; pip install nvidia-cuda-runtime (or set CUDA_HOME)",
        where="nvrtc",
    )


def nvrtc_options(existing: tuple[str, ...], bundled: Path | None) -> tuple[str, ...]:
    """The extra NVRTC options of a source that includes tsir/nvshmem.h."""
    v = version()
    if v[:2] < MIN_VERSION:
        raise CompileError(
            f"NVSHMEM {'.'.join(map(str, v))} is too old for tsir's NVRTC path; {_INSTALL}",
            where="nvrtc",
        )
    inc = [str(include_dir()), *_cudart_dirs(existing, bundled)]
    return (
        *(f"-I{d}" for d in inc),
        "-D__NVSHMEM_NUMBA_SUPPORT__",
        "-default-device",
        f"-DTSIR_NVSHMEM_VERSION={v[0] * 10000 + v[1] * 100 + v[2]}",
    )


# -- module initialization (driver.MODULE_INITIALIZERS) -------------------------------------------

_modules: set[int] = set()


def initialize_module(module: object, device: int) -> None:
    """Fill the module's NVSHMEM device state (nvshmemx_cumodule_init); NVSHMEM must be initialized."""
    from .dist import nvshmem_heap

    if not nvshmem_heap.is_initialized():
        raise LaunchError(
            "this kernel calls NVSHMEM, but NVSHMEM is not initialized in this process; call "
            'tsir.runtime.dist.init(backend="nvshmem") (or dist.nvshmem_init()) first'
        )
    nvshmem_heap.cumodule_init(module)
    _modules.add(id(module))


def forget_module(module: object, device: int) -> None:
    _modules.discard(id(module))
