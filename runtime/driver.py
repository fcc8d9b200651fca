"""tsir's one CUDA driver layer, over `cuda.bindings.driver`: init, devices, primary contexts,
modules, checked calls. Everything else asks here, `tsir.Target.parse("cuda")` included (through
one lazily imported function in tsir/target.py, since the IR does not import the runtime).

Every driver call goes through `check`, which turns a failing CUresult into a `LaunchError` carrying
the error's name (`CUDA_ERROR_INVALID_VALUE`) and the driver's description. We use each device's
*primary* context because that is the one torch, CuPy and the CUDA runtime use: memory they allocate
is valid in it, and their streams belong to it.

Context switches are scoped: `activate(ctx)` makes `ctx` current only when it is not already and
returns what was current, and `restore(prev)` puts that back. The CUDA runtime reads the current
context to answer "which device is current", so leaving our context current would silently move a
torch user's later `device="cuda"` allocations to another GPU.

The launch hot path calls `cuda.bindings.driver` directly (see launch_codegen.py); these helpers are
for setup, errors and synchronization.
"""

from __future__ import annotations

import threading
from typing import Any

from ..errors import LaunchError

__all__ = [
    "MODULE_INITIALIZERS",
    "STICKY_ERRORS",
    "activate",
    "check",
    "compute_capability",
    "current_device",
    "device_attribute",
    "device_count",
    "driver",
    "error_text",
    "get_function",
    "load_module",
    "mem_alloc_async",
    "mem_free_async",
    "primary_context",
    "restore",
    "set_max_dynamic_smem",
    "synchronize",
    "unload_module",
]

_lock = threading.Lock()
_driver: Any = None
_primary: dict[int, Any] = {}

# Errors after which the context is unusable until the process exits: every later call reports them.
STICKY_ERRORS = frozenset(
    {
        "CUDA_ERROR_ILLEGAL_ADDRESS",
        "CUDA_ERROR_LAUNCH_FAILED",
        "CUDA_ERROR_MISALIGNED_ADDRESS",
        "CUDA_ERROR_ILLEGAL_INSTRUCTION",
        "CUDA_ERROR_INVALID_ADDRESS_SPACE",
        "CUDA_ERROR_INVALID_PC",
        "CUDA_ERROR_HARDWARE_STACK_ERROR",
        "CUDA_ERROR_ASSERT",
        "CUDA_ERROR_LAUNCH_TIMEOUT",
    }
)


def driver() -> Any:
    """`cuda.bindings.driver`, with `cuInit(0)` done once. LaunchError when unavailable."""
    global _driver
    if _driver is not None:
        return _driver
    with _lock:
        if _driver is not None:
            return _driver
        try:
            from cuda.bindings import driver as drv  # pyright: ignore[reportAttributeAccessIssue]  # a compiled module: no stubs for the checker
        except ImportError as e:
            raise LaunchError(
                f"cannot import cuda.bindings.driver ({e}); install it with `pip install cuda-python`"
            ) from None
        try:
            result = drv.cuInit(0)
        except Exception as e:  # noqa: BLE001  (cuda.pathfinder: libcuda.so not found)
            raise LaunchError(f"no CUDA driver on this machine: {e}") from None
        if result[0] != 0:
            raise LaunchError(
                f"cuInit failed with {error_text(result[0], drv)}; is there a usable GPU?"
            )
        _driver = drv
    return _driver


def error_text(err: Any, drv: Any = None) -> str:
    """`CUDA_ERROR_NAME (description)` for a CUresult, falling back to the enum name or number."""
    drv = drv if drv is not None else _driver
    name = getattr(err, "name", None) or f"CUresult {int(err)}"
    desc = ""
    if drv is not None:
        try:
            r = drv.cuGetErrorName(err)
            if r[0] == 0 and r[1]:
                name = r[1].decode()
            r = drv.cuGetErrorString(err)
            if r[0] == 0 and r[1]:
                desc = r[1].decode()
        except Exception:  # noqa: BLE001, S110  (an unknown code: keep the name we have)
            pass
    return f"{name} ({desc})" if desc else name


def error_name(err: Any) -> str:
    return error_text(err).split(" ", 1)[0]


def check(result: tuple[Any, ...], what: str) -> Any:
    """Unwrap a cuda.bindings result tuple `(CUresult, *values)`; LaunchError naming `what` on failure.

    Returns None, the single value, or the tuple of values.
    """
    err = result[0]
    if err != 0:
        text = error_text(err)
        hint = ""
        if text.split(" ", 1)[0] in STICKY_ERRORS:
            hint = (
                "; this error is sticky: an earlier kernel on this device faulted and the CUDA context "
                "stays unusable until the process exits (rerun with CUDA_LAUNCH_BLOCKING=1 or "
                "compute-sanitizer to find which)"
            )
        raise LaunchError(f"{what} failed: {text}{hint}")
    if len(result) == 1:
        return None
    if len(result) == 2:
        return result[1]
    return result[1:]


def device_count() -> int:
    return int(check(driver().cuDeviceGetCount(), "cuDeviceGetCount"))


def current_device() -> int:
    """The device of the calling thread's current context, or 0 when no context is current."""
    d = driver()
    ctx = check(d.cuCtxGetCurrent(), "cuCtxGetCurrent")
    if ctx is None or not int(ctx):
        return 0
    result = d.cuCtxGetDevice()
    return int(result[1]) if result[0] == 0 else 0


def _device(device: int) -> Any:
    drv = driver()
    count = device_count()
    if not 0 <= device < count:
        raise LaunchError(f"CUDA device {device} does not exist (this machine has {count})")
    return check(drv.cuDeviceGet(device), f"cuDeviceGet({device})")


def primary_context(device: int) -> Any:
    """The device's primary context (retained once, kept for the life of the process)."""
    ctx = _primary.get(device)
    if ctx is not None:
        return ctx
    with _lock:
        ctx = _primary.get(device)
        if ctx is None:
            dev = _device(device)
            ctx = check(
                driver().cuDevicePrimaryCtxRetain(dev), f"cuDevicePrimaryCtxRetain(cuda:{device})"
            )
            _primary[device] = ctx
    return ctx


def activate(ctx: Any) -> Any:
    """Make `ctx` current if it is not; return the previous context to `restore`, or None."""
    drv = driver()
    cur = check(drv.cuCtxGetCurrent(), "cuCtxGetCurrent")
    cur_int = 0 if cur is None else int(cur)
    if cur_int == int(ctx):
        return None
    check(drv.cuCtxSetCurrent(ctx), "cuCtxSetCurrent")
    if cur_int == 0 and _primary.get(0) is ctx:
        # A thread with no context binds device 0's primary context on its first CUDA runtime call
        # anyway, so leaving it current changes nothing for the runtime and saves a switch per launch.
        return None
    return cur if cur is not None else drv.CUcontext(0)


def restore(prev: Any) -> None:
    if prev is not None:
        check(driver().cuCtxSetCurrent(prev), "cuCtxSetCurrent (restoring the caller's context)")


def device_attribute(device: int, name: str) -> int:
    drv = driver()
    attr = getattr(drv.CUdevice_attribute, f"CU_DEVICE_ATTRIBUTE_{name}")
    return int(
        check(drv.cuDeviceGetAttribute(attr, _device(device)), f"cuDeviceGetAttribute({name})")
    )


def compute_capability(device: int) -> tuple[int, int]:
    return (
        device_attribute(device, "COMPUTE_CAPABILITY_MAJOR"),
        device_attribute(device, "COMPUTE_CAPABILITY_MINOR"),
    )


# Module initializers: a module that defines one of these global symbols has it filled by the named
# function right after loading (before any launch), as `fn(module, device)` with the module's
# context current; `forget_<name>` is told when the module is unloaded. The function's module is
# imported only when a cubin defines the symbol.
MODULE_INITIALIZERS: dict[str, str] = {
    # the rank table of tsir's distributed operations (codegen/include/tsir/distributed.h)
    "tsir_rank_table": "tsir.runtime.dist.table",
    # NVSHMEM's per-module device state (T.nvshmem.* calls): nvshmemx_cumodule_init
    "nvshmemi_device_state_d": "tsir.runtime.nvshmem",
}


def _initializers(image: bytes) -> list[Any]:
    import importlib

    out = []
    for symbol, module_name in MODULE_INITIALIZERS.items():
        if symbol.encode() in image:  # cheap pre-filter; the initializer looks the symbol up
            out.append(importlib.import_module(module_name))
    return out


def load_module(image: bytes, device: int) -> Any:
    """Load a cubin (or fatbin / PTX) into `device`'s primary context and run its module
    initializers (MODULE_INITIALIZERS); the caller's context is kept."""
    drv = driver()
    prev = activate(primary_context(device))
    try:
        result = drv.cuModuleLoadData(image)
        if result[0] == 0:
            done = []
            try:
                for init in _initializers(image if isinstance(image, bytes) else bytes(image)):
                    init.initialize_module(result[1], device)
                    done.append(init)
            except BaseException:
                for init in done:
                    init.forget_module(result[1], device)
                drv.cuModuleUnload(result[1])
                raise
    finally:
        restore(prev)
    if result[0] != 0:
        name = error_name(result[0])
        hint = ""
        if name in (
            "CUDA_ERROR_NO_BINARY_FOR_GPU",
            "CUDA_ERROR_INVALID_IMAGE",
            "CUDA_ERROR_INVALID_PTX",
        ):
            major, minor = compute_capability(device)
            hint = (
                f"; cuda:{device} is sm_{major}{minor}: compile for that architecture "
                f"(target='cuda' picks the current device)"
            )
        raise LaunchError(
            f"loading the module onto cuda:{device} failed: {error_text(result[0])}{hint}"
        )
    return result[1]


def get_function(module: Any, name: str) -> Any:
    return check(
        driver().cuModuleGetFunction(module, name.encode()), f"cuModuleGetFunction({name!r})"
    )


def set_max_dynamic_smem(func: Any, nbytes: int, device: int, kernel: str) -> None:
    """Opt in to more than 48 KiB of dynamic shared memory (required above 48 KiB)."""
    limit = device_attribute(device, "MAX_SHARED_MEMORY_PER_BLOCK_OPTIN")
    if nbytes > limit:
        raise LaunchError(
            f"kernel {kernel!r} needs {nbytes} bytes of dynamic shared memory but cuda:{device} allows "
            f"at most {limit} per block; use smaller tiles or fewer pipeline stages"
        )
    drv = driver()
    attr = drv.CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
    check(
        drv.cuFuncSetAttribute(func, attr, nbytes), f"setting {kernel!r} max dynamic shared memory"
    )


def unload_module(module: Any, device: int) -> None:
    import sys

    for module_name in MODULE_INITIALIZERS.values():
        init = sys.modules.get(module_name)
        if init is not None:
            init.forget_module(module, device)
    prev = activate(primary_context(device))
    try:
        check(driver().cuModuleUnload(module), "cuModuleUnload")
    finally:
        restore(prev)


def synchronize(device: int | None = None) -> None:
    """Wait for all work in a device's primary context (every device tsir used when None).

    Launches are asynchronous: a kernel that faults is reported by a later call. This surfaces such
    an error as a LaunchError with its name.
    """
    devices = sorted(_primary) if device is None else [device]
    for dev in devices:
        prev = activate(primary_context(dev))
        try:
            check(driver().cuCtxSynchronize(), f"cuda:{dev}: work launched earlier")
        finally:
            restore(prev)


def mem_alloc_async(nbytes: int, stream: Any) -> int:
    """`cuMemAllocAsync` of `nbytes` (at least 1) on `stream`: the device address, stream-ordered
    (T.alloc_global scratch, allocated per launch from the device's default memory pool)."""
    d = driver()
    ptr = check(d.cuMemAllocAsync(max(int(nbytes), 1), stream), "allocating T.alloc_global scratch")
    return int(ptr)


def mem_free_async(ptr: int, stream: Any) -> None:
    """`cuMemFreeAsync`: released once the work queued on `stream` before it is done."""
    d = driver()
    check(d.cuMemFreeAsync(d.CUdeviceptr(ptr), stream), "freeing T.alloc_global scratch")
