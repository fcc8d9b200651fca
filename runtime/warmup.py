"""NVRTC's one-time set-up, run in a background thread while `tsir.compile` lowers.

The first NVRTC compile of a process costs more than the next ones, inside NVRTC itself: on the
H100 machines (NVRTC 13.0, toolkit headers) a one-line kernel that includes cuda_fp16.h compiles
in 0.25 s the first time and in 0.03 s after that. `tsir.compile` calls `start` when it is about to
lower (the lowering was not in the cache) and `wait` just before its own NVRTC run; in between, a
daemon thread compiles such a kernel with the real compile's -arch and include options, so that
set-up overlaps the lowering instead of following it. There it took the Hopper GEMM's first
compile from 0.87 s to 0.69 s (median of 5 fresh processes each way); on a 2-core development
machine, where NVRTC sets up in 0.03 s, the difference stays within the noise (about 0.02 s).

Why this is safe (tests/runtime/test_warmup.py checks the observable parts):
- NVRTC may be called from several threads at once as long as no two calls race on one
  `nvrtcProgram` (NVRTC User Guide, "Thread Safety"); the warm-up creates, compiles and destroys
  its own program, and `wait` runs before the real compile starts anyway.
- It changes no result: its output is thrown away and enters neither the disk cache nor the
  compile count (`cache.record_compile`); NVRTC programs are independent, and a test compiles the
  Hopper GEMM in fresh processes with and without the warm-up to the same cubin.
- It never raises or prints. Any failure (no cuda-bindings, no libnvrtc, a missing header) is left
  to the real compile, which goes through the same steps and reports it as it always did.
- It never outlives its use: `wait` joins it, as do a fork (`os.register_at_fork`) and interpreter
  exit (`atexit`, bounded), so neither a child process nor the exit finds NVRTC mid-compile.

Only the NVRTC calls run without the GIL (cuda-bindings releases it around each). Importing
cuda.bindings and loading the library (`ctypes` holds the GIL through `dlopen`), or importing
cuda.core, would only take turns with the lowering: `start` loads the library in the caller, as the
real compile would next, and the thread runs nothing but the NVRTC calls.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from typing import Any, Final

from tsir import knobs
from tsir.target import Target

from . import nvrtc as _nvrtc
from . import program as _program

__all__ = ["start", "wait"]

_log = logging.getLogger("tsir.nvrtc")

_SOURCE: Final = 'extern "C" __global__ void tsir_warmup(int* out) { out[threadIdx.x] = 0; }\n'
# cuda_fp16.h pulls in the cuda_runtime/crt headers every generated kernel includes
_HEADER: Final = "#include <cuda_fp16.h>\n"
_EXIT_WAIT_S: Final = 30.0

_lock = threading.Lock()
_thread: threading.Thread | None = None
_started = False


def start(target: Target) -> None:
    """Start the warm-up for `target` unless this process already started one (or used NVRTC
    through `tsir.compile`), or the `nvrtc_warmup` knob is off. Returns once the thread runs."""
    global _thread, _started
    with _lock:
        if _started or not knobs.nvrtc_warmup:
            return
        _started = True
    try:
        # here, not in the thread: importing cuda.bindings and loading libnvrtc hold the GIL
        # (ctypes keeps it through dlopen), so in the thread they would only take turns with the
        # lowering; the real compile needs them next anyway
        nvrtc = _program.nvrtc_bindings()
        headers = _nvrtc.header_setup()
    except Exception as exc:  # noqa: BLE001  (the real compile reports it)
        _log.debug("nvrtc warm-up skipped: %s: %s", type(exc).__name__, exc)
        return
    source = (_HEADER if headers.origin != "none" else "") + _SOURCE
    options = (
        *_nvrtc.common_options(target.nvrtc_arch),
        f"-I{_nvrtc.tsir_include_dir()}",
        *headers.options,
    )
    thread = threading.Thread(
        target=_warm, args=(nvrtc, source, options), name="tsir-nvrtc-warmup", daemon=True
    )
    with _lock:
        _thread = thread
    thread.start()


def wait() -> None:
    """Return once no warm-up is running; from then on `start` begins none (NVRTC is set up)."""
    global _started
    with _lock:
        _started = True
    _join()


def _join(timeout: float | None = None) -> None:
    thread = _thread
    if thread is not None and thread is not threading.current_thread():
        thread.join(timeout)


def _join_at_exit() -> None:
    _join(_EXIT_WAIT_S)


def _warm(nvrtc: Any, source: str, options: tuple[str, ...]) -> None:
    began = time.perf_counter()
    try:
        args = [o.encode() for o in options]
        status, prog = nvrtc.nvrtcCreateProgram(source.encode(), b"tsir_warmup.cu", 0, [], [])
        if status != nvrtc.nvrtcResult.NVRTC_SUCCESS:
            return
        try:
            (status,) = nvrtc.nvrtcCompileProgram(prog, len(args), args)
        finally:
            nvrtc.nvrtcDestroyProgram(prog)
    except Exception as exc:  # noqa: BLE001  (the real compile reports whatever this was)
        _log.debug("nvrtc warm-up stopped: %s: %s", type(exc).__name__, exc)
        return
    _log.debug("nvrtc warm-up: %s in %.3f s", status.name, time.perf_counter() - began)


atexit.register(_join_at_exit)
if hasattr(os, "register_at_fork"):  # not on Windows
    os.register_at_fork(before=_join)
