"""One NVRTC compilation through `cuda.core`'s `Program`.

Which cuda.core: `cuda.core.Program` (cuda-core 0.5 and later, the only home from 1.0 on) or
`cuda.core.experimental.Program` (0.3, 0.4). Anything else is a CompileError that names the package
and the install command. Before 0.7, `Program.compile` asks the CUDA driver for its version while
wrapping the cubin, so on a machine without a GPU it needs cuda-core 0.7 (the error says so).

Options. tsir hands NVRTC its own option strings, verbatim: the include directories of a CUDA
toolkit, `--use-bundled-headers=<dir>` under tsir's cache directory, and the user's options from
`TSIR_NVRTC_OPTIONS` / `extra_options`, which may be any NVRTC option. `ProgramOptions`' typed
fields cannot carry all of them (its `use_bundled_headers` extracts into cuda.core's own directory,
and it has no field for many NVRTC options), so `_VerbatimOptions` subclasses it and answers the
method through which `Program.compile` asks for NVRTC's argument list: `as_bytes("nvrtc", ...)`
(0.5 on) or `_as_bytes()` (0.3, 0.4). It records that it was asked; if a future release asks some
other way, the compile fails with a CompileError naming the version instead of running with the
options silently dropped.

What stays on `cuda.bindings.nvrtc`, through `Program.handle`: the log (cuda.core puts the log of a
failed compile only into its exception's text) and the PTX kept beside the cubin (cuda.core's
`compile("ptx")` asks the driver whether it can load the result, so it fails on machines without
a GPU, where tsir must compile).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import re
from dataclasses import dataclass
from functools import cache
from typing import Any, Final

from tsir.errors import CompileError

__all__ = ["CORE_INSTALL_HINT", "INSTALL_HINT", "Outcome", "core_version", "nvrtc_bindings", "run"]

_log = logging.getLogger("tsir.nvrtc")

INSTALL_HINT: Final = "pip install 'cuda-python>=13,<14' 'nvidia-cuda-nvrtc>=13,<14'"
CORE_INSTALL_HINT: Final = "pip install -U 'cuda-core>=0.3'"
_STATUS: Final = re.compile(r"NVRTC_ERROR_[A-Z_]+")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one NVRTC run produced."""

    ok: bool
    """False when the source did not compile (NVRTC_ERROR_COMPILATION); `log` says why."""
    cubin: bytes
    ptx: str | None
    log: str


@dataclass(frozen=True, slots=True)
class _Core:
    program: Any
    options: Any
    version: str


@cache
def _core() -> _Core:
    """cuda.core's Program and a verbatim-options subclass of its ProgramOptions, or CompileError."""
    found: Any = None
    problems: list[str] = []
    for name in ("cuda.core", "cuda.core.experimental"):
        try:
            module: Any = importlib.import_module(name)  # compiled, no type stubs: Any
        except ImportError as exc:
            problems.append(f"{name}: {exc}")
            continue
        if hasattr(module, "Program") and hasattr(module, "ProgramOptions"):
            found = module
            break
        problems.append(f"{name} has no Program")
    version = core_version()
    if found is None:
        raise CompileError(
            f"NVRTC runs through cuda.core's Program, but cuda-core ({version}) provides none "
            f"({'; '.join(problems)}). Install it with: {CORE_INSTALL_HINT}"
        )
    return _Core(found.Program, _verbatim_options(found.ProgramOptions), version)


def core_version() -> str:
    """The installed cuda-core distribution's version, for messages."""
    try:
        return importlib.metadata.version("cuda-core")
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _verbatim_options(base: Any) -> Any:
    class _VerbatimOptions(base):
        """`base` (cuda.core's ProgramOptions) whose NVRTC argument list is tsir's, verbatim."""

        def __init__(self, name: str, arch: str, options: tuple[str, ...]) -> None:
            # name and arch set the program's file name and keep cuda.core from asking the driver
            # for the current GPU's architecture; NVRTC sees only `options`
            super().__init__(name=name, arch=arch)
            self.tsir_options = [o.encode() for o in options]
            self.tsir_asked = False

        def as_bytes(self, backend: str, target_type: str | None = None) -> list[bytes]:
            if str(backend).lower() != "nvrtc":
                raise CompileError(f"tsir's NVRTC options were asked for backend {backend!r}")
            self.tsir_asked = True
            return list(self.tsir_options)

        def _as_bytes(self) -> list[bytes]:
            self.tsir_asked = True
            return list(self.tsir_options)

    return _VerbatimOptions


@cache
def nvrtc_bindings() -> Any:
    """`cuda.bindings.nvrtc` with libnvrtc loaded, or CompileError saying what to install."""
    try:
        # imported as Any: cuda-bindings ships compiled modules without type stubs
        nvrtc: Any = importlib.import_module("cuda.bindings.nvrtc")
    except ImportError as exc:
        raise CompileError(
            f"NVRTC is not available: the Python package cuda-bindings is missing ({exc}). "
            f"Install it with: {INSTALL_HINT}"
        ) from None
    try:
        nvrtc.nvrtcVersion()
    except Exception as exc:  # noqa: BLE001  (cuda.pathfinder: DynamicLibNotFoundError)
        raise CompileError(
            f"NVRTC is not available: libnvrtc could not be loaded ({exc}). "
            f"Install it with: {INSTALL_HINT}"
        ) from None
    return nvrtc


def run(source: str, filename: str, options: tuple[str, ...], *, want_cubin: bool) -> Outcome:
    """Compile `source` with exactly `options` (which hold one `-arch=`). Every status is checked;
    the program is destroyed on every path."""
    core = _core()
    arch = next((o.split("=", 1)[1] for o in options if o.startswith("-arch=")), None)
    if arch is None:
        raise CompileError(f"internal: no -arch= among the NVRTC options {options}")
    opts = core.options(filename, arch, options)
    try:
        program = core.program(source, "c++", opts)
    except Exception as exc:  # noqa: BLE001  (cuda.core's or NVRTC's, reported with the options)
        raise CompileError(
            f"cuda.core could not create the NVRTC program for {filename}: "
            f"{type(exc).__name__}: {exc}",
            where="nvrtc",
        ) from None
    try:
        try:
            code = program.compile("cubin")
        except Exception as exc:  # noqa: BLE001  (an NVRTCError whose text names the status)
            status = _STATUS.search(str(exc))
            if status is None:
                raise _core_failure(exc, core) from None
            _check_asked(opts, core)
            log = _read_text(program, "log").strip()
            if status.group(0) == "NVRTC_ERROR_COMPILATION":
                return Outcome(False, b"", None, log)
            raise CompileError(
                f"nvrtcCompileProgram failed with {status.group(0)}: {log or '(no log)'}\n"
                f"options: {' '.join(options)}",
                where="nvrtc",
            ) from None
        _check_asked(opts, core)
        # the cubin whole: an ELF may end in zero bytes (they were once stripped like a text's NUL)
        cubin = bytes(code.code) if want_cubin else b""
        ptx = _read_text(program, "ptx", optional=True) or None
        return Outcome(True, cubin, ptx, _read_text(program, "log").strip())
    finally:
        try:
            program.close()
        except Exception as exc:  # noqa: BLE001  (a failed destroy leaks, it does not fail the compile)
            _log.warning("destroying the NVRTC program failed: %s", exc)


def _core_failure(exc: Exception, core: _Core) -> CompileError:
    """A failure of cuda.core itself (no NVRTC status in it)."""
    text = f"{type(exc).__name__}: {exc}"
    hint = ""
    if "driver" in text.lower():
        # before 0.7, Program.compile asks the driver's version while wrapping the cubin
        hint = (
            "; this cuda-core needs a CUDA driver to compile, which a machine without a GPU "
            "lacks: pip install -U 'cuda-core>=0.7'"
        )
    return CompileError(
        f"cuda-core {core.version}'s Program.compile failed: {text}{hint}", where="nvrtc"
    )


def _check_asked(opts: Any, core: _Core) -> None:
    if not opts.tsir_asked:
        raise CompileError(
            f"cuda-core {core.version} compiled without asking ProgramOptions.as_bytes or "
            f"_as_bytes for NVRTC's options, so tsir's options did not reach NVRTC; tsir supports "
            f"cuda-core 0.3 to 1.x: pip install 'cuda-core>=0.3,<2'",
            where="nvrtc",
        )


_TEXT_OUTPUTS: Final = {
    "log": ("nvrtcGetProgramLogSize", "nvrtcGetProgramLog"),
    "ptx": ("nvrtcGetPTXSize", "nvrtcGetPTX"),
}


def _read_text(program: Any, what: str, *, optional: bool = False) -> str:
    """NVRTC's `what` ("log" or "ptx") of `program`, read through its handle, without the NUL."""
    nvrtc = nvrtc_bindings()
    size_fn, get_fn = (getattr(nvrtc, name) for name in _TEXT_OUTPUTS[what])
    handle = program.handle
    ok = nvrtc.nvrtcResult.NVRTC_SUCCESS
    status, size = size_fn(handle)
    if status == ok and size > 1:  # else an error, nothing, or just the terminating NUL
        buffer = bytearray(size)
        (status,) = get_fn(handle, buffer)
        if status == ok:
            return bytes(buffer).rstrip(b"\0").decode(errors="replace")
    if status != ok and not optional:
        raise CompileError(f"reading NVRTC's {what} failed: {status.name}", where="nvrtc")
    return ""
