"""CUDA C++ -> cubin with NVRTC (through cuda.core's `Program`, runtime/program.py), cached on disk.

Where the CUDA headers (cuda_fp16.h, cuda_bf16.h, cuda/std/...) come from depends on the NVRTC:
- NVRTC >= 13.4 carries them: `--use-bundled-headers=<dir>` extracts them once into `dir` (under the
  cache dir; about 26 MB in 2400 files, 0.3-2 s the first time) and uses them: no toolkit needed.
- Older NVRTC (the GPU machines have 13.0) has none: tsir adds `-I<toolkit>/include` (and its
  `cccl/`) from CUDA_HOME/CUDA_PATH, else /usr/local/cuda, else the nvidia-cuda-runtime (+cccl)
  wheels found by cuda.pathfinder. With none of them, sources that include no CUDA header still
  compile, and a missing header is reported with what to install.

Everything here works without a GPU: the cubin comes from `Program.compile("cubin")`, and the PTX
is the one NVRTC keeps beside it (see runtime/program.py for what stays on `cuda.bindings.nvrtc`).
"""

from __future__ import annotations

import importlib
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Final

from tsir import knobs
from tsir.errors import CompileError
from tsir.target import Target

from . import cache as _cache
from . import nvshmem as _nvshmem
from . import program as _program

__all__ = [
    "CudaBinary",
    "HeaderSetup",
    "NvrtcError",
    "compile_cuda",
    "get_ptx",
    "header_setup",
    "nvrtc_version",
    "common_options",
    "tsir_include_dir",
]

_log = logging.getLogger("tsir.nvrtc")

_BUNDLED_HEADERS_SINCE: Final = (13, 4)
_NAMESPACE: Final = "nvrtc"


@dataclass(frozen=True, slots=True, repr=False)
class CudaBinary:
    """The result of one NVRTC compilation (or of its cache entry)."""

    cubin: bytes
    ptx: str | None
    """The PTX NVRTC produced on the way to the cubin, when it keeps it; else see `get_ptx`."""
    log: str
    """NVRTC's log: warnings, or empty."""
    options: tuple[str, ...]
    cache_hit: bool
    seconds: float
    """Wall time of the call: the NVRTC run, or the cache lookup including key hashing."""
    nvrtc_version: tuple[int, int]
    arch: str
    key: str
    """The cache key (sha256 hex)."""

    def __repr__(self) -> str:
        ptx = "None" if self.ptx is None else f"<{len(self.ptx)} chars>"
        return (
            f"CudaBinary(arch={self.arch!r}, cubin=<{len(self.cubin)} bytes>, ptx={ptx}, "
            f"cache_hit={self.cache_hit}, seconds={self.seconds:.4f}, "
            f"nvrtc_version={self.nvrtc_version})"
        )


@dataclass(frozen=True, slots=True)
class HeaderSetup:
    """The include options NVRTC gets, and how they enter the cache key."""

    options: tuple[str, ...]
    key_options: tuple[str, ...]
    """`options` with machine-specific directories whose content the key already covers replaced
    by placeholders (the bundle is fixed by the NVRTC version), so entries survive a move."""
    origin: str
    """Where the CUDA headers come from, for messages; "none" when nothing was found."""
    bundled_dir: Path | None = None


class NvrtcError(CompileError):
    """NVRTC rejected the source; the message has the first error, its source line and the log."""

    def __init__(
        self, message: str, *, log: str, options: tuple[str, ...], lineno: int | None
    ) -> None:
        super().__init__(message, where="nvrtc")
        self.log = log
        self.options = options
        self.lineno = lineno
        """The line of the first error (in the file the log names), if the log has one."""


# -- the NVRTC library ----------------------------------------------------------------------------


# `cuda.bindings.nvrtc`, checked (the version, the header bundle and the program's outputs use it)
_nvrtc = _program.nvrtc_bindings


def _check(status: Any, what: str) -> None:
    if status != _nvrtc().nvrtcResult.NVRTC_SUCCESS:
        raise CompileError(f"{what} failed: {status.name}", where="nvrtc")


@cache
def nvrtc_version() -> tuple[int, int]:
    """(major, minor) of the loaded NVRTC library, e.g. (13, 5)."""
    status, major, minor = _nvrtc().nvrtcVersion()
    _check(status, "nvrtcVersion")
    return (int(major), int(minor))


# -- include paths --------------------------------------------------------------------------------


def common_options(arch: str) -> tuple[str, str]:
    """The options every compile starts with: `-arch=` for `arch` (a `Target.nvrtc_arch`) and the
    C++ standard of the generated code."""
    return (f"-arch={arch}", "-std=c++17")


def tsir_include_dir() -> Path:
    """The directory that contains tsir's device headers as `tsir/*.h`."""
    return _cache.codegen_dir() / "include"


def header_setup() -> HeaderSetup:
    """The CUDA header options for the loaded NVRTC (see the module docstring)."""
    return _header_setup(nvrtc_version(), knobs.cache_dir, knobs.cuda_home)


@cache
def _header_setup(version: tuple[int, int], cache_dir: Path, cuda_home: Path | None) -> HeaderSetup:
    if version >= _BUNDLED_HEADERS_SINCE:
        bundle = cache_dir / "nvrtc-headers" / f"{version[0]}.{version[1]}"
        return HeaderSetup(
            options=(f"--use-bundled-headers={bundle}",),
            key_options=(f"--use-bundled-headers=<nvrtc {version[0]}.{version[1]} bundle>",),
            origin=f"the headers bundled with NVRTC {version[0]}.{version[1]} ({bundle})",
            bundled_dir=bundle,
        )
    for include, origin in _toolkit_candidates(cuda_home):
        if (include / "cuda_fp16.h").is_file():
            dirs = [include, include / "cccl"] if (include / "cccl").is_dir() else [include]
            options = tuple(f"-I{d}" for d in dirs)
            return HeaderSetup(options, options, f"{origin} ({include})")
    dirs = _wheel_header_dirs()
    if dirs:
        options = tuple(f"-I{d}" for d in dirs)
        return HeaderSetup(options, options, f"the nvidia-cuda-runtime wheel ({dirs[0]})")
    return HeaderSetup((), (), "none")


def _toolkit_candidates(cuda_home: Path | None) -> list[tuple[Path, str]]:
    found = [(cuda_home / "include", "CUDA_HOME/CUDA_PATH")] if cuda_home is not None else []
    return [*found, (Path("/usr/local/cuda/include"), "/usr/local/cuda")]


def _wheel_header_dirs() -> list[Path]:
    """cudart (+ cccl) include dirs of the nvidia-* wheels, via cuda.pathfinder when it has them."""
    try:
        pathfinder: Any = importlib.import_module("cuda.pathfinder")
    except ImportError:
        return []
    dirs: list[Path] = []
    for lib in ("cudart", "cccl"):
        try:
            found = pathfinder.find_nvidia_header_directory(lib)
        except Exception:  # unknown name in older pathfinder releases, or not installed
            found = None
        if found:
            dirs.append(Path(found))
        elif lib == "cudart":
            return []
    return dirs


# -- compilation ----------------------------------------------------------------------------------


def compile_cuda(
    source: str,
    target: Target | str,
    *,
    filename: str = "tsir_kernel.cu",
    extra_options: Sequence[str] = (),
    use_cache: bool = True,
) -> CudaBinary:
    """Compile one CUDA C++ translation unit to a cubin for `target`, through the disk cache.

    Raises CompileError with the first error's file:line, that source line and the full log.
    """
    start = time.perf_counter()
    tgt = Target.parse(target)
    version = nvrtc_version()
    headers = header_setup()
    include = tsir_include_dir()
    common = common_options(tgt.nvrtc_arch)
    tail = (*knobs.nvrtc_options, *extra_options)
    if f'#include "{_nvshmem.HEADER}"' in source:  # T.nvshmem.* calls (runtime/nvshmem.py)
        tail = (*_nvshmem.nvrtc_options(headers.options, headers.bundled_dir), *tail)
    options = (*common, f"-I{include}", *headers.options, *tail)
    key_options = (*common, "-I<tsir include>", *headers.key_options, *tail)
    # the file name is in the key because it ends up in the cubin with -lineinfo / -G
    key = _cache.make_key(
        "nvrtc-cubin",
        [source, filename, "\0".join(key_options), tgt.arch, f"{version[0]}.{version[1]}"],
    )
    caching = use_cache and _cache.enabled()
    if caching:
        entry = _cache.load(_NAMESPACE, key)
        if entry is not None and entry.blobs.get("cubin"):
            ptx = entry.blobs.get("ptx")
            return CudaBinary(
                cubin=entry.blobs["cubin"],
                ptx=ptx.decode() if ptx else None,
                log=str(entry.meta.get("log", "")),
                options=options,
                cache_hit=True,
                seconds=time.perf_counter() - start,
                nvrtc_version=version,
                arch=tgt.arch,
                key=key,
            )
    cubin, ptx, log = _compile_or_raise(source, filename, tgt, options, headers)
    if caching:
        blobs = {"cubin": cubin} if ptx is None else {"cubin": cubin, "ptx": ptx.encode()}
        meta = {"log": log, "arch": tgt.arch, "nvrtc": list(version), "filename": filename}
        _cache.store(_NAMESPACE, key, _cache.CacheEntry(blobs, meta))
    seconds = time.perf_counter() - start
    _log.debug("nvrtc: %s for %s in %.3f s", filename, tgt.arch, seconds)
    return CudaBinary(cubin, ptx, log, options, False, seconds, version, tgt.arch, key)


def get_ptx(
    source: str,
    target: Target | str,
    *,
    filename: str = "tsir_kernel.cu",
    extra_options: Sequence[str] = (),
    use_cache: bool = True,
) -> str:
    """The PTX of `source` for `target`: kept from the cubin compile when NVRTC keeps it (13.x
    does), else from a second compile for `compute_XX`."""
    binary = compile_cuda(
        source, target, filename=filename, extra_options=extra_options, use_cache=use_cache
    )
    if binary.ptx is not None:
        return binary.ptx
    tgt = Target.parse(target)
    options = tuple(
        f"-arch={tgt.ptx_arch}" if opt.startswith("-arch=") else opt for opt in binary.options
    )
    key = _cache.make_key("nvrtc-ptx", [binary.key])
    caching = use_cache and _cache.enabled()
    if caching:
        entry = _cache.load(_NAMESPACE, key)
        if entry is not None and entry.blobs.get("ptx"):
            return entry.blobs["ptx"].decode()
    _, ptx, _ = _compile_or_raise(source, filename, tgt, options, header_setup(), want_cubin=False)
    if ptx is None:
        raise CompileError(f"NVRTC produced no PTX for {tgt.ptx_arch}", where="nvrtc")
    if caching:
        _cache.store(_NAMESPACE, key, _cache.CacheEntry({"ptx": ptx.encode()}))
    return ptx


def _compile_or_raise(
    source: str,
    filename: str,
    target: Target,
    options: tuple[str, ...],
    headers: HeaderSetup,
    *,
    want_cubin: bool = True,
) -> tuple[bytes, str | None, str]:
    ok, cubin, ptx, log = _run(source, filename, options, want_cubin)
    if not ok and _repair_bundle(headers, log):
        ok, cubin, ptx, log = _run(source, filename, options, want_cubin)
    if not ok:
        raise _compile_error(source, filename, target, options, headers, log)
    if want_cubin and not cubin:
        raise CompileError(
            f"NVRTC produced no cubin for {target.arch} (options: {' '.join(options)}); "
            "an -arch in extra_options must name a real sm_XX, not compute_XX",
            where="nvrtc",
        )
    return cubin, ptx, log


def _run(
    source: str, filename: str, options: tuple[str, ...], want_cubin: bool
) -> tuple[bool, bytes, str | None, str]:
    """One NVRTC run: (compiled?, cubin, ptx, log), counted as a compile."""
    _cache.record_compile()
    out = _program.run(source, filename, options, want_cubin=want_cubin)
    return out.ok, out.cubin, out.ptx, out.log


_repaired: set[Path] = set()


def _repair_bundle(headers: HeaderSetup, log: str) -> bool:
    """Re-extract NVRTC's header bundle when a failure comes from a damaged extraction (NVRTC
    trusts an existing directory and never repairs it); at most once per process. True: retry."""
    bundle = headers.bundled_dir
    if bundle is None or bundle in _repaired or not _bundle_damaged(bundle, log):
        return False
    _repaired.add(bundle)
    nvrtc = _nvrtc()
    _log.warning("tsir: NVRTC's extracted headers in %s are damaged; extracting again", bundle)
    status, *_ = nvrtc.nvrtcInstallBundledHeaders(
        str(bundle).encode(), nvrtc.NVRTC_INSTALL_HEADERS_FORCE_OVERWRITE
    )
    return bool(status == nvrtc.nvrtcResult.NVRTC_SUCCESS)


def _bundle_damaged(bundle: Path, log: str) -> bool:
    """An error inside a bundled header, or a missing file while the bundle holds fewer files
    than NVRTC ships (a missing header that is simply not bundled, like cuda_runtime.h, is not
    damage)."""
    if str(bundle) in log:
        return True
    if not _MISSING_FILE.search(log):
        return False
    nvrtc = _nvrtc()
    if not hasattr(nvrtc, "nvrtcGetBundledHeadersInfo"):
        return False
    status, info, *_ = nvrtc.nvrtcGetBundledHeadersInfo()
    if status != nvrtc.nvrtcResult.NVRTC_SUCCESS:
        return False
    present = sum(
        1 for p in bundle.rglob("*") if not p.name.startswith(".nvrtc") and not p.is_dir()
    )
    return present < int(info.numFiles)


# -- error messages -------------------------------------------------------------------------------

_DIAGNOSTIC: Final = re.compile(
    r"^(?P<file>.+?)\((?P<line>\d+)\): (?P<kind>(?:catastrophic )?error|warning)"
    r"(?: #[\w-]+)?: (?P<message>.*)$",
    re.MULTILINE,
)
_MISSING_FILE: Final = re.compile(r'(?:cannot|could not) open source file "(?P<name>[^"]+)"')


def _compile_error(
    source: str,
    filename: str,
    target: Target,
    options: tuple[str, ...],
    headers: HeaderSetup,
    log: str,
) -> NvrtcError:
    first = next((m for m in _DIAGNOSTIC.finditer(log) if "error" in m.group("kind")), None)
    parts = [f"NVRTC could not compile {filename} for {target.arch}"]
    lineno: int | None = None
    if first is not None:
        lineno = int(first.group("line"))
        where = first.group("file")
        parts[0] += f":\n{where}:{lineno}: {first.group('kind')}: {first.group('message')}"
        lines = _source_lines(where, filename, source)
        if lines:
            parts.append(_excerpt(lines, lineno))
    missing = _MISSING_FILE.search(log)
    if missing is not None:
        parts.append("hint: " + _missing_header_hint(missing.group("name"), headers))
    parts.append("options: " + " ".join(options))
    parts.append("NVRTC log:\n" + _indent(log.strip()))
    return NvrtcError("\n".join(parts), log=log, options=options, lineno=lineno)


def _source_lines(where: str, filename: str, source: str) -> list[str]:
    if where == filename:
        return source.splitlines()
    try:  # an error inside a header: show that header's line
        return Path(where).read_text(errors="replace").splitlines()
    except OSError:
        return []


def _excerpt(lines: list[str], lineno: int) -> str:
    out: list[str] = []
    for number in range(max(1, lineno - 1), min(len(lines), lineno + 1) + 1):
        mark = ">" if number == lineno else " "
        out.append(f"  {mark}{number:5d} | {lines[number - 1]}")
    return "\n".join(out)


def _missing_header_hint(name: str, headers: HeaderSetup) -> str:
    version = ".".join(map(str, nvrtc_version()))
    if name.startswith("tsir/"):
        return (
            f"tsir's own header {name} is missing from {tsir_include_dir()}; "
            "the tsir installation is incomplete (package data codegen/include/tsir/*.h)"
        )
    if headers.bundled_dir is not None:
        return (
            f'"{name}" is not among the headers bundled with NVRTC {version} (cuda_runtime.h, '
            "for one, is not); add its directory with extra_options=['-I<dir>'] (runtime headers: "
            "pip install nvidia-cuda-runtime, then -I<site-packages>/nvidia/cu13/include)"
        )
    if headers.origin == "none":
        return (
            f"NVRTC {version} has no bundled CUDA headers (that needs NVRTC >= 13.4) and no CUDA "
            "headers were found; do one of: pip install -U 'nvidia-cuda-nvrtc>=13.4,<14'; set "
            "CUDA_HOME to a CUDA toolkit; or pip install nvidia-cuda-runtime nvidia-cuda-cccl"
        )
    return (
        f'"{name}" is not in the CUDA headers from {headers.origin}; point CUDA_HOME at a '
        "complete CUDA toolkit, or upgrade to NVRTC >= 13.4 (pip install -U nvidia-cuda-nvrtc)"
    )


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())
