"""Launching compiled kernels: `Launcher(program, cubin)(*args, stream=None)`.

Construction prepares everything a call needs: the generated fast path (launch_codegen.py), the struct
that packs all kernel parameters with one call, and the binding of the driver entry points. A call
imports each tensor through DLPack, checks it, packs parameters, and launches each step with
`cuLaunchKernel`; nothing is synchronized (launches are asynchronous, like torch's).

Kernel parameters are passed as `kernelParams` = the int address of a `void*[n]` array whose entries
point at 8-byte slots of one ctypes buffer. cuda.bindings takes an int as an already-built `void**`
with no per-call conversion (its tuple-of-(values, types) form costs microseconds), and the driver
copies the parameters during the call, so the buffer can be rewritten by the next call.

Thread safety: each thread packs into its own buffer (a `threading.local`), so concurrent calls from
several threads are safe; modules are loaded once per device under a lock. The device's primary
context is made current only when it is not already, and the caller's context is restored after.

Stream: `stream=None` means the current stream of the framework that produced the first tensor
argument (torch's current stream on the tensors' device, CuPy's current stream) and otherwise the
legacy default stream 0; `stream=` takes an int handle or an object with `__cuda_stream__()`,
`.cuda_stream` or `.ptr`.
"""

from __future__ import annotations

import struct
import threading
from ctypes import addressof, c_uint64, c_void_p
from typing import Any

from tsir.errors import LaunchError

from . import driver as drv
from .binder import SYMMETRIC_HEAP, bind_arguments, check_count, grid_error
from .dlpack import (
    _STREAM_FNS,
    current_stream_fn,
    from_dlpack,
    import_tensor,
    normalize_stream,
    tensor_info,
)
from .host_program import GRID_LIMITS, HostProgram, KernelArg, LaunchStep, ScalarParam, TensorParam
from .launch_codegen import generate

__all__ = [
    "HostProgram",
    "KernelArg",
    "LaunchStep",
    "Launcher",
    "ScalarParam",
    "TensorParam",
    "synchronize",
]

synchronize = drv.synchronize


class Launcher:
    """A callable kernel: `launcher(*args, stream=None)`. See the module docstring."""

    def __init__(self, program: HostProgram, cubin: bytes, name: str | None = None) -> None:
        if not isinstance(program, HostProgram):
            raise TypeError(f"Launcher expects a HostProgram, got {type(program).__name__}")
        self.program = program
        self.cubin = bytes(cubin)
        self.name = name or (program.steps[0].kernel if program.steps else "kernel")
        self._gen = generate(program)
        self._lock = threading.Lock()
        self._devs: dict[int, tuple[Any, ...]] = {}
        self._modules: dict[int, Any] = {}
        self._tls = threading.local()
        self._dtype_sets: dict[str, set[Any]] = {s: set() for s in self._gen.dtype_sets}
        self._cstreams: dict[int, Any] = {}
        ns = self._namespace()
        # Trusted input: the source is generated above from a validated HostProgram, whose grid
        # expressions were checked to hold only names, integer literals, arithmetic and min/max.
        exec(compile(self._gen.source, f"<tsir launcher {self.name}>", "exec"), ns)  # noqa: S102
        self._tail = ns["_tail"]
        # The generated function becomes `__call__` of a per-launcher subclass, so that a call costs
        # no extra Python frame (special methods are looked up on the type, not the instance).
        self.__class__ = type(
            "Launcher", (Launcher,), {"__call__": ns["_run"], "__module__": __name__}
        )

    @property
    def python_source(self) -> str:
        """The generated fast path, for inspection."""
        return self._gen.source

    @property
    def signature(self) -> str:
        return self.program.signature(self.name)

    def __call__(self, *args: Any, stream: Any = None) -> None:
        """Check the arguments and launch (replaced per instance by the generated fast path)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<tsir Launcher {self.signature}>"

    # ---- construction helpers -------------------------------------------------------------------

    def _namespace(self) -> dict[str, Any]:
        try:
            d = drv.driver()
            launch, ctx_get = d.cuLaunchKernel, d.cuCtxGetCurrent
        except LaunchError as e:  # no driver: calls fail with this error once arguments check out
            err = e

            def unavailable(*_: Any) -> Any:
                raise LaunchError(err.message)

            launch = ctx_get = unavailable
        packer = struct.Struct(self._gen.pack_format)
        ns: dict[str, Any] = {
            "_Defer": _Defer,
            "_fd": from_dlpack(),
            "_slow": self._slow,
            "_tls": self._tls,
            "_new_bufs": self._new_bufs,
            "_pack": packer.pack_into,
            "_sfns": _STREAM_FNS,  # the per-type cache current_stream_fn fills
            "_stream_fn": current_stream_fn,
            "_norm_stream": normalize_stream,
            "_cstreams": self._cstreams,
            "_new_cstream": self._new_cstream,
            "_devs": self._devs,
            "_load": self._load,
            "_ctx_get": ctx_get,
            "_switch": drv.activate,
            "_restore": drv.restore,
            "_launch": launch,
            "_launch_err": self._launch_error,
            "_grid_err": self._grid_error,
            "_heap": SYMMETRIC_HEAP,
        }
        if self.program.copies:  # copy-engine steps (runtime/cpengine.py); absent: no cost
            from .cpengine import CopyEngines, ranks

            engines = self._copy_engines = CopyEngines(self.program, self.name)
            ns.update(
                _cp_fence=engines.fence,
                _cp_copy=engines.copy,
                _cp_join=engines.join,
                _cp_ranks=ranks,
            )
        ns.update(self._dtype_sets)
        return ns

    def _new_bufs(self) -> tuple[Any, ...]:
        """This thread's parameter buffer: (storage, params address of each step, keep-alive)."""
        slots = self._gen.slots
        storage = (c_uint64 * max(sum(slots), 1))()
        base = addressof(storage)
        arrays, addrs, offset = [], [], 0
        for n in slots:
            if n == 0:
                addrs.append(0)  # kernelParams = NULL
                continue
            arr = (c_void_p * n)(*[base + 8 * (offset + i) for i in range(n)])
            arrays.append(arr)
            addrs.append(addressof(arr))
            offset += n
        bufs = (storage, *addrs, arrays)
        self._tls.bufs = bufs
        return bufs

    def _new_cstream(self, handle: int) -> Any:
        if len(self._cstreams) > 256:
            self._cstreams.clear()
        try:
            cs = drv.driver().CUstream(handle)
        except (OverflowError, TypeError, ValueError) as e:
            raise LaunchError(
                f"argument 'stream': {handle!r} is not a valid stream handle ({e})"
            ) from None
        self._cstreams[handle] = cs
        return cs

    def _load(self, device: int) -> tuple[Any, ...]:
        """Load the module onto `device` (once) and look up every step's function."""
        with self._lock:
            state = self._devs.get(device)
            if state is not None:
                return state
            if device < 0:
                raise LaunchError(
                    f"{self.signature} has no tensor arguments to say which GPU to use"
                )
            ctx = drv.primary_context(device)
            module = drv.load_module(self.cubin, device)
            funcs: dict[str, Any] = {}
            for step in self.program.steps:
                if step.kernel not in funcs:
                    funcs[step.kernel] = drv.get_function(module, step.kernel)
            for step in self.program.steps:
                if step.dyn_smem > 48 * 1024:
                    drv.set_max_dynamic_smem(funcs[step.kernel], step.dyn_smem, device, step.kernel)
            state = (ctx, *(funcs[s.kernel] for s in self.program.steps))
            self._modules[device] = module
            self._devs[device] = state
            return state

    # ---- the slow path: authoritative checks, precise errors ------------------------------------

    def _slow(self, args: tuple[Any, ...], pre: tuple[Any, ...] | None, stream: Any) -> None:
        program = self.program
        check_count(program, len(args), self.name)
        infos: list[Any] = []
        keep: list[Any] = []  # the imported tensors stay alive until the launch is enqueued
        j = 0
        first_tensor: Any = None
        for i, (p, a) in enumerate(zip(program.params, args)):
            if isinstance(p, TensorParam):
                t = (
                    pre[j]
                    if pre is not None and pre[j] is not None
                    else import_tensor(a, p.name, i)
                )
                keep.append(t)
                infos.append(tensor_info(t))
                if first_tensor is None:
                    first_tensor = a
                j += 1
            else:
                infos.append(a)
        binding = bind_arguments(program, infos, self.name)
        for i, p in enumerate(program.params):  # the fast path may now trust these dtype objects
            if isinstance(p, TensorParam):
                try:
                    self._dtype_sets[f"_dt{i}"].add(args[i].dtype)
                except Exception:  # noqa: BLE001, S110  (no .dtype or unhashable: keep deferring to us)
                    pass
        device = binding.device[1]
        if device < 0:
            device = _current_device()
        if stream is None:
            st = current_stream_fn(type(first_tensor))(device) if first_tensor is not None else 0
        else:
            st = normalize_stream(stream)
        bufs = getattr(self._tls, "bufs", None) or self._new_bufs()
        values = binding.values
        if self._gen.pack_names:
            struct.pack_into(
                self._gen.pack_format, bufs[0], 0, *(values[n] for n in self._gen.pack_names)
            )
        self._tail(device, st, bufs, *(values[n] for n in self._gen.grid_names))
        del keep

    def _grid_error(self, step: int, grid: tuple[int, int, int]) -> None:
        for dim, g in enumerate(grid):
            if g < 0 or g > GRID_LIMITS[dim]:
                raise grid_error(self.program, step, dim, g)
        raise grid_error(self.program, step, 0, grid[0])  # unreachable: the caller saw a bad extent

    def _launch_error(self, step: int, err: Any, grid: tuple[int, int, int], st: int) -> None:
        s: LaunchStep = self.program.steps[step]
        text = drv.error_text(err)
        name = text.split(" ", 1)[0]
        hint = ""
        if name in ("CUDA_ERROR_INVALID_HANDLE", "CUDA_ERROR_INVALID_CONTEXT"):
            hint = f"; is stream 0x{st:x} from another device or already destroyed?"
        elif name in drv.STICKY_ERRORS:
            hint = "; this error is sticky: an earlier kernel on this device faulted"
        elif name == "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES":
            hint = "; the block uses too many registers or too much shared memory for this GPU"
        raise LaunchError(
            f"launching kernel {s.kernel!r} (grid {grid}, block {s.block}, {s.dyn_smem} bytes dynamic "
            f"shared memory, stream 0x{st:x}) failed: {text}{hint}"
        )

    # ---- utilities ------------------------------------------------------------------------------

    def synchronize(self) -> None:
        """Wait for this kernel's devices; a kernel that faulted raises LaunchError with the error name."""
        for device in sorted(self._devs):
            drv.synchronize(device)

    def close(self) -> None:
        """Unload the modules (after synchronizing). The launcher loads them again if called."""
        with self._lock:
            for device, module in sorted(self._modules.items()):
                drv.synchronize(device)
                drv.unload_module(module, device)
            self._modules.clear()
            self._devs.clear()


class _Defer(Exception):
    """Raised inside the generated fast path to hand the call to the slow path."""


def _current_device() -> int:
    """The device of the calling thread's current context, or 0 (only for programs with no tensors)."""
    d = drv.driver()
    r = d.cuCtxGetDevice()
    return int(r[1]) if r[0] == 0 else 0


if __name__ == "__main__":
    # `python -m tsir.runtime.launch -n 2 script.py`: one process per GPU (tsir.runtime.dist.launcher).
    from tsir.runtime.dist.launcher import main

    raise SystemExit(main())
