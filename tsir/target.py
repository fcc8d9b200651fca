"""Compilation targets: which GPU architecture tsir generates code for, and what that GPU can do.

A `Target` is a plain value (a frozen dataclass compared and hashed by value, not an IR node). Its
only field is the architecture name; every capability and limit is a property read from one table,
so passes and codegen ask `target.has_wgmma` instead of comparing architecture strings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from .errors import LaunchError, UnsupportedError

__all__ = ["SUPPORTED_ARCHS", "Target", "cuda_device_count"]

_KIB: Final = 1024
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class _ArchFacts:
    """Hardware facts of one compute capability (CUDA C++ Programming Guide, technical specs)."""

    major: int
    minor: int
    # Opt-in maximum of shared memory one block may use (cudaDevAttrMaxSharedMemoryPerBlockOptin):
    # the SM's shared memory minus the 1 KiB the system reserves per block.
    max_shared_memory_per_block: int
    max_shared_memory_per_sm: int
    max_threads_per_sm: int


# Per compute capability. Consumer parts (8.6, 8.9, 12.x) have 100 KiB shared memory per SM and
# 1536 threads per SM; data-center parts (8.0, 9.0, 10.x) have 164 or 228 KiB and 2048 threads.
_FACTS: Final[dict[int, _ArchFacts]] = {
    80: _ArchFacts(8, 0, 163 * _KIB, 164 * _KIB, 2048),
    86: _ArchFacts(8, 6, 99 * _KIB, 100 * _KIB, 1536),
    89: _ArchFacts(8, 9, 99 * _KIB, 100 * _KIB, 1536),
    90: _ArchFacts(9, 0, 227 * _KIB, 228 * _KIB, 2048),
    100: _ArchFacts(10, 0, 227 * _KIB, 228 * _KIB, 2048),
    103: _ArchFacts(10, 3, 227 * _KIB, 228 * _KIB, 2048),
    120: _ArchFacts(12, 0, 99 * _KIB, 100 * _KIB, 1536),
    121: _ArchFacts(12, 1, 99 * _KIB, 100 * _KIB, 1536),
}

# Capabilities that have an arch-specific ("a") variant. Code compiled for sm_90a runs only on 9.0
# but may use wgmma/setmaxnreg; sm_100a/sm_103a unlock tcgen05. "cuda" picks the "a" variant
# because the binary is built for exactly the GPU that is present.
_ARCH_SPECIFIC: Final = frozenset({90, 100, 103, 120, 121})

SUPPORTED_ARCHS: Final[tuple[str, ...]] = tuple(
    name
    for sm in sorted(_FACTS)
    for name in ((f"sm_{sm}", f"sm_{sm}a") if sm in _ARCH_SPECIFIC else (f"sm_{sm}",))
)


@dataclass(frozen=True, slots=True)
class Target:
    """A CUDA GPU architecture, e.g. `Target("sm_90a")`; build one with `Target.parse`."""

    arch: str
    """The architecture name as NVRTC spells it: "sm_80", "sm_90a", "sm_100a", ..."""

    def __post_init__(self) -> None:
        if self.arch not in SUPPORTED_ARCHS:
            raise UnsupportedError(_unknown_message(self.arch))

    # -- construction ---------------------------------------------------------------------------

    @staticmethod
    def parse(spec: Target | str) -> Target:
        """A Target from a Target, an architecture ("sm_90a"), or "cuda" / "cuda:N" (a GPU)."""
        if isinstance(spec, Target):
            return spec
        if not isinstance(spec, str):  # untyped callers
            raise UnsupportedError(
                f"a target is a string such as 'sm_90a' or a tsir.Target, got {type(spec).__name__}"
            )
        text = spec.strip().lower()
        if text == "cuda":
            return Target.current()
        if text.startswith("cuda:") and text[5:].isdigit():
            return Target.current(int(text[5:]))
        return Target(text)

    @staticmethod
    def current(device: int | None = None) -> Target:
        """The target of a present GPU: `device`, else the current context's, else device 0."""
        major, minor = _device_capability(device)
        sm = major * 10 + minor
        if sm not in _FACTS:
            raise UnsupportedError(
                f"the GPU has compute capability {major}.{minor}, which tsir does not support; "
                f"supported: {', '.join(SUPPORTED_ARCHS)}"
            )
        return Target(f"sm_{sm}a" if sm in _ARCH_SPECIFIC else f"sm_{sm}")

    # -- identity ---------------------------------------------------------------------------------

    def __str__(self) -> str:
        return self.arch

    @property
    def sm(self) -> int:
        """The compute capability as one number: 90 for sm_90a."""
        return int(self.arch[3:].rstrip("a"))

    @property
    def compute_capability(self) -> tuple[int, int]:
        facts = self._facts
        return (facts.major, facts.minor)

    @property
    def arch_specific(self) -> bool:
        """True for the "a" variants, whose code runs only on that exact compute capability."""
        return self.arch.endswith("a")

    @property
    def nvrtc_arch(self) -> str:
        """The value of NVRTC's `-arch=` for a cubin."""
        return self.arch

    @property
    def ptx_arch(self) -> str:
        """The value of NVRTC's `-arch=` for PTX only: "compute_90a"."""
        return "compute_" + self.arch[3:]

    # -- instructions -----------------------------------------------------------------------------

    @property
    def has_cp_async(self) -> bool:
        return self.sm >= 80

    @property
    def has_mma_sync(self) -> bool:
        return self.sm >= 80

    @property
    def has_bf16(self) -> bool:
        return self.sm >= 80

    @property
    def has_fp8(self) -> bool:
        """fp8 (e4m3/e5m2) conversions and MMA operands: Ada and later."""
        return self.sm >= 89

    @property
    def has_tma(self) -> bool:
        """cp.async.bulk(.tensor) and mbarrier transaction counts: every arch from sm_90 on."""
        return self.sm >= 90

    @property
    def has_cluster(self) -> bool:
        """Thread-block clusters and distributed shared memory."""
        return self.sm >= 90

    @property
    def has_wgmma(self) -> bool:
        """Warpgroup MMA exists only on sm_90a (Blackwell dropped it for tcgen05)."""
        return self.arch == "sm_90a"

    @property
    def has_tcgen05(self) -> bool:
        """5th-generation tensor core instructions (tensor memory, UMMA): sm_100a and sm_103a."""
        return self.arch in ("sm_100a", "sm_103a")

    # -- limits -----------------------------------------------------------------------------------

    @property
    def max_shared_memory_per_block(self) -> int:
        """Bytes of shared memory one block may use after opting in (above the default 48 KiB)."""
        return self._facts.max_shared_memory_per_block

    @property
    def max_shared_memory_per_sm(self) -> int:
        return self._facts.max_shared_memory_per_sm

    @property
    def default_shared_memory_per_block(self) -> int:
        """Bytes usable without cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES)."""
        return 48 * _KIB

    @property
    def max_threads_per_block(self) -> int:
        return 1024

    @property
    def max_threads_per_sm(self) -> int:
        return self._facts.max_threads_per_sm

    @property
    def max_registers_per_thread(self) -> int:
        return 255

    @property
    def warp_size(self) -> int:
        return 32

    @property
    def _facts(self) -> _ArchFacts:
        return _FACTS[self.sm]


def _unknown_message(arch: object) -> str:
    return (
        f"unknown target {arch!r}; supported: {', '.join(SUPPORTED_ARCHS)}, "
        "or 'cuda' for the GPU of the current context"
    )


_NO_GPU_HINT: Final = (
    "name an architecture instead (for example target='sm_90a') to compile without a GPU"
)


def cuda_device_count() -> int:
    """The number of CUDA GPUs the driver shows this process; UnsupportedError (with the reason)
    when there is no usable driver at all."""
    return _ask_driver(lambda drv: drv.device_count())


def _device_capability(device: int | None) -> tuple[int, int]:
    """(major, minor) of `device`, else of the current context's device, else of device 0."""

    def ask(drv: Any) -> tuple[int, int]:
        count: int = drv.device_count()
        if count == 0:
            raise UnsupportedError(f"target 'cuda' found no CUDA device; {_NO_GPU_HINT}")
        ordinal: int = drv.current_device() if device is None else device
        if not 0 <= ordinal < count:
            raise UnsupportedError(
                f"target 'cuda:{ordinal}' names a missing device: {count} present"
            )
        return drv.compute_capability(ordinal)

    return _ask_driver(ask)


def _ask_driver(question: Callable[[Any], _T]) -> _T:
    """`question(tsir.runtime.driver)`, the driver's LaunchError turned into UnsupportedError.

    tsir has one CUDA driver layer, tsir.runtime.driver. The IR never imports the runtime at
    module level, so target 'cuda' (which needs the present GPU's architecture) reaches it here
    only, through this deliberate function-level import, on first use.
    """
    from tsir.runtime import driver

    try:
        return question(driver)
    except LaunchError as exc:
        raise UnsupportedError(
            f"target 'cuda' needs a usable NVIDIA GPU and driver, but {exc.message}; {_NO_GPU_HINT}"
        ) from None
