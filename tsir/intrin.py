"""Intrinsics: the names a `Call.op` may take, their typing rule and whether they have side effects.

The CUDA spelling of each lives in the code generator (a table per dtype); this table is what the IR,
the builder and the verifier agree on.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from .errors import UnsupportedError

__all__ = [
    "Intrinsic", "INTRINSICS", "intrinsic", "MATH_UNARY", "Access", "DeviceFunction",
    "DEVICE_FUNCTIONS", "device_function", "device_function_name",
]


@dataclass(frozen=True, slots=True)
class Intrinsic:
    name: str
    arity: int | None  # None: variadic
    pure: bool  # no side effects: may be reordered, duplicated, dropped when unused
    float_only: bool = False


MATH_UNARY = ("exp", "exp2", "log", "log2", "sqrt", "rsqrt", "sin", "cos", "tanh", "floor", "ceil", "round")

INTRINSICS: dict[str, Intrinsic] = {}


def _add(name: str, arity: int | None, pure: bool = True, float_only: bool = False) -> None:
    INTRINSICS[name] = Intrinsic(name, arity, pure, float_only)


for _n in MATH_UNARY:
    _add(_n, 1, float_only=True)
_add("abs", 1)
_add("pow", 2, float_only=True)
_add("fma", 3, float_only=True)
for _n in ("bitwise_and", "bitwise_or", "bitwise_xor", "shift_left", "shift_right"):
    _add(_n, 2)
_add("bitwise_not", 1)
_add("sync_threads", 0, pure=False)
_add("sync_warp", 0, pure=False)
_add("thread_fence", 0, pure=False)
# The address of one buffer element (`&A[i]`), for device-header functions taking pointers.
_add("address_of", 1)
# atomicAdd(&dst, value): arg 0 is an address_of.
_add("atomic_add", 2, pure=False)


def intrinsic(name: str) -> Intrinsic:
    try:
        return INTRINSICS[name]
    except KeyError:
        raise KeyError(f"unknown intrinsic {name!r}") from None


# ---------------------------------------------------------------------------------------------------
# Memory effects: what a call does to the memory behind its pointer arguments.
#
# Passes that order memory accesses (ThreadSync, the pipeliner) read these declarations, never the
# shape of a call. Every device-header function the compiler emits (`tsir.<header>.<fn>`, with
# template arguments in `<...>`) has an entry; a call without one is refused by those passes.


class Access(enum.Enum):
    """How a call touches the memory an argument points to."""

    READ = "read"
    WRITE = "write"
    READ_WRITE = "read_write"
    # A read-modify-write that is atomic with respect to other atomics of the same location.
    ATOMIC = "atomic"
    # A write that lands later (cp.async): visible to the issuing thread after its wait.
    ASYNC_WRITE = "async_write"


@dataclass(frozen=True, slots=True)
class DeviceFunction:
    """A device-header function: per argument, the access to the memory it points to (None: the
    argument is a value, or a pointer the function does not dereference itself)."""

    name: str
    effects: tuple[Access | None, ...] = ()
    # Extra arguments beyond `effects` are values (optional trailing parameters).
    variadic_values: bool = False
    # The function waits for (or synchronizes) the threads of its block or warp: it must be
    # reached by every thread of that group.
    collective: str | None = None
    # Retires this thread's outstanding cp.async groups (cp_async_wait).
    retires_async: bool = False
    # The builder function that makes this call without arguments (`T.get_rank`): the printer's
    # form for it. `statement`: that function emits the call as a statement (`T.fence_cta()`).
    builder: str | None = None
    statement: bool = False


DEVICE_FUNCTIONS: dict[str, DeviceFunction] = {}


def _dev(name: str, *effects: Access | None, **kw: Any) -> None:
    DEVICE_FUNCTIONS[name] = DeviceFunction(name, tuple(effects), **kw)


R, W, RW, AT, AW = Access.READ, Access.WRITE, Access.READ_WRITE, Access.ATOMIC, Access.ASYNC_WRITE
# gemm_ss<M, N, K, ...>(&A_shared, &B_shared, &C_registers): one warp's tiles of C += A @ B.
_dev("tsir.gemm_sm80.gemm_ss", R, R, RW, collective="warp")
_dev("tsir.async_copy.cp_async_16", AW, R, None)
_dev("tsir.async_copy.cp_async_commit")
_dev("tsir.async_copy.cp_async_wait", retires_async=True)
_dev("tsir.reduce.shfl_xor", None, None, collective="warp")
_dev("tsir.distributed.rank", builder="T.get_rank")
_dev("tsir.distributed.num_ranks", builder="T.get_num_ranks")
_dev("tsir.distributed.remote_ptr", None, None)
# copy_group(dst, src, bytes, index in group, group size): this thread's share of a group copy.
_dev("tsir.distributed.copy_group", W, R, None, None, None)
_dev("tsir.distributed.barrier_blocks", AT, variadic_values=True, collective="block")
_dev("tsir.ldst.st", W, None)
_dev("tsir.ldst.ld", R)
_dev("tsir.ldst.atom_add", AT, None)
_dev("tsir.sync.wait", R, None, variadic_values=True)
# named_barrier(id, count): a barrier for the `count` threads of a warp-aligned range.
_dev("tsir.sync.named_barrier", None, None, collective="range")
for _scope in ("cta", "gpu", "sys"):
    _dev(f"tsir.sync.fence_{_scope}", builder=f"T.fence_{_scope}", statement=True)
# Plain intrinsics with pointer arguments.
_dev("atomic_add", AT, None)


def device_function_name(op: str) -> str:
    """`tsir.gemm_sm80.gemm_ss<64, 64, ...>` -> `tsir.gemm_sm80.gemm_ss` (template arguments off)."""
    cut = op.find("<")
    return op if cut < 0 else op[:cut]


def device_function(op: str) -> DeviceFunction | None:
    """The declaration of a call's memory effects; None for pure intrinsics without pointers."""
    found = DEVICE_FUNCTIONS.get(device_function_name(op))
    if found is not None:
        return found
    if op.startswith("tsir."):
        raise UnsupportedError(
            f"device function `{op}` declares no memory effects (tsir.intrin.DEVICE_FUNCTIONS): "
            "barriers cannot be planned around it"
        )
    return None
