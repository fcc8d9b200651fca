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
    "Intrinsic",
    "INTRINSICS",
    "intrinsic",
    "MATH_UNARY",
    "FAST_MATH",
    "Access",
    "DeviceFunction",
    "DEVICE_FUNCTIONS",
    "device_function",
    "device_function_name",
]


@dataclass(frozen=True, slots=True)
class Intrinsic:
    name: str
    arity: int | None  # None: variadic
    pure: bool  # no side effects: may be reordered, duplicated, dropped when unused
    float_only: bool = False


FAST_MATH = ("__exp", "__exp10", "__log", "__log2", "__log10", "__tan", "__cos", "__sin")
MATH_UNARY = (
    "exp",
    "exp2",
    "log",
    "log2",
    "sqrt",
    "rsqrt",
    "sin",
    "cos",
    "tanh",
    "floor",
    "ceil",
    "round",
    "tan",
    "exp10",
    "log10",
    "erf",
    # CUDA's fast-math intrinsics (`__expf`, ...: float32 hardware approximations; TileLang's
    # `T.__exp` etc.). float64 has none: it uses the accurate function.
    *FAST_MATH,
)

INTRINSICS: dict[str, Intrinsic] = {}


def _add(name: str, arity: int | None, pure: bool = True, float_only: bool = False) -> None:
    INTRINSICS[name] = Intrinsic(name, arity, pure, float_only)


for _n in MATH_UNARY:
    _add(_n, 1, float_only=True)
_add("abs", 1)
_add("pow", 2, float_only=True)
_add("fma", 3, float_only=True)
# Float classification (bool results; integers are never NaN or infinite).
_add("isnan", 1)
_add("isinf", 1)
# The bits of the operand as the call's dtype (same width): T.reinterpret.
_add("reinterpret", 1)
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
# A TMA tensor map (handle): tma_descriptor(address_of(A[0, ..., 0]), box_0, ..., box_{r-1},
# swizzle_bytes) describes the whole global buffer A with a box of box_0 x ... (outermost first)
# and a 0/32/64/128-byte swizzle; the `desc` argument of tsir.tma.* calls. The host encodes it
# (runtime.tensor_map) and passes it as a `const __grid_constant__ tsir::TmaDescriptor`.
_add("tma_descriptor", None)


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
    # Read by an asynchronous unit until a later wait retires the operation: wgmma operands
    # (through matrix descriptors) until wgmma_wait, a TMA store's source until
    # tma_store_wait_read. Writing it before then is a hazard; a generic write before it needs
    # fence_proxy_async_shared by the writer.
    ASYNC_READ = "async_read"
    # Read and written when the operation retires (wgmma's accumulator registers): no access
    # before its wgmma_wait.
    ASYNC_READ_WRITE = "async_read_write"
    # The argument is the shared address of an mbarrier object: the call synchronizes through it
    # (see `DeviceFunction.sync`); its 8 bytes are not data.
    MBARRIER = "mbarrier"


@dataclass(frozen=True, slots=True)
class DeviceFunction:
    """A device-header function: per argument, the access to the memory it points to (None: the
    argument is a value, or a pointer the function does not dereference itself)."""

    name: str
    effects: tuple[Access | None, ...] = ()
    # Extra arguments beyond `effects` are values (optional trailing parameters).
    variadic_values: bool = False
    # The function waits for (or synchronizes) the threads of its block, warpgroup or warp: it
    # must be reached by every thread of that group ("block", "warpgroup", "warp", or "range":
    # the warps that name the same barrier id).
    collective: str | None = None
    # Retires this thread's outstanding cp.async groups (cp_async_wait).
    retires_async: bool = False
    # The builder function that makes this call without arguments (`T.get_rank`): the printer's
    # form for it. `statement`: that function emits the call as a statement (`T.fence_cta()`).
    builder: str | None = None
    statement: bool = False
    # Retires asynchronous operations of another queue: "wgmma" (wgmma_wait<N>: the warpgroup's
    # groups but the N newest), "bulk_read" / "bulk" (tma_store_wait_read<N> / tma_store_wait<N>:
    # the thread's bulk store groups but the N newest stop reading shared memory / complete).
    retires: str | None = None
    # How the function orders memory between threads: "arrive" (releases through its MBARRIER
    # argument), "wait" (acquires through it when it returns, or returns true), "init"
    # (initialises the mbarrier), "init_fence" (makes this thread's inits visible to the async
    # proxy), "proxy_fence" (this thread's generic shared writes become visible to the async
    # proxy), "wgmma_fence" (register writes ordered before later wgmmas).
    sync: str | None = None
    # Reads the hardware thread index itself (threadIdx.x / 32 is its warp): it must run in the
    # block's first threads, so code calling it cannot be moved to other threads.
    thread_index: bool = False
    # The oldest GPU (compute capability, 90 = sm_90) with the instruction; the Verify pass
    # refuses the call, naming `requires`, for an older target.
    min_sm: int = 0
    requires: str = ""
    # How many consecutive elements from its pointer argument(s) the call touches (vector
    # atomics: 2 or 4); LegalizeSafeMemoryAccess guards the last one too.
    elements: int = 1


DEVICE_FUNCTIONS: dict[str, DeviceFunction] = {}


def _dev(name: str, *effects: Access | None, **kw: Any) -> None:
    DEVICE_FUNCTIONS[name] = DeviceFunction(name, tuple(effects), **kw)


R, W, RW, AT, AW = Access.READ, Access.WRITE, Access.READ_WRITE, Access.ATOMIC, Access.ASYNC_WRITE
# gemm_ss<M, N, K, ...>(&A_shared, &B_shared, &C_registers): one warp's tiles of C += A @ B.
_dev("tsir.gemm_sm80.gemm_ss", R, R, RW, collective="warp", thread_index=True)
# gemm_rs<M, N, K, ...>(&A_registers, &B_shared, &C_registers): A read from each thread's registers.
_dev("tsir.gemm_sm80.gemm_rs", R, R, RW, collective="warp", thread_index=True)
_dev("tsir.async_copy.cp_async_16", AW, R, None)
_dev("tsir.async_copy.cp_async_commit")
_dev("tsir.async_copy.cp_async_wait", retires_async=True)
_dev("tsir.reduce.shfl_xor", None, None, collective="warp")
# warp.h: T.shfl_xor/down/up/sync(value, lane, width) and T.warp_reduce_*(value); values only.
for _fn in ("shfl_xor_w", "shfl_down", "shfl_up", "shfl_idx"):
    _dev(f"tsir.warp.{_fn}", None, None, None, collective="warp")
for _kind in ("sum", "max", "min", "bitand", "bitor"):
    _dev(
        f"tsir.warp.warp_reduce_{_kind}",
        None,
        collective="warp",
        builder=f"T.warp_reduce_{_kind}",
    )
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
# debug.h: T.print (values only: message, dtype name, value; or buffer name and index too).
_dev("tsir.debug.print_msg", None)
_dev("tsir.debug.print_value", None, None, None)
_dev("tsir.debug.print_buffer_value", None, None, None, None, None)
# Plain intrinsics with pointer arguments.
_dev("atomic_add", AT, None)
# atomic.h: atomic_add/max/min<ORDER>(&x, v) -> old; vector adds (&x[0], v0, v1[, v2, v3]).
for _op in ("add", "max", "min"):
    _dev(f"tsir.atomic.atomic_{_op}", AT, None)
_dev("tsir.atomic.atomic_add_x2", AT, None, None, elements=2)
_f32_vector = "float2/float4 atomicAdd (sm_90 and later)"
_dev("tsir.atomic.atomic_add_x2_f32", AT, None, None, elements=2, min_sm=90, requires=_f32_vector)
_dev(
    "tsir.atomic.atomic_add_x4_f32",
    AT,
    None,
    None,
    None,
    None,
    elements=4,
    min_sm=90,
    requires=_f32_vector,
)

# -- the Hopper headers (mbarrier.h, tma.h, wgmma.h) ----------------------------------------------
# Shared memory is passed as 32-bit shared-window addresses (`shared_u32(&buf[i])`, plus offsets);
# an effect below is on the memory such an address (or a matrix descriptor) designates.
AR, ARW, MB = Access.ASYNC_READ, Access.ASYNC_READ_WRITE, Access.MBARRIER
_dev("tsir.mbarrier.shared_u32", None)
_dev("tsir.mbarrier.mbarrier_init", MB, None, sync="init")
_dev("tsir.mbarrier.mbarrier_init_fence", sync="init_fence")
_dev("tsir.mbarrier.mbarrier_inval", MB)
_dev("tsir.mbarrier.mbarrier_arrive", MB, sync="arrive")
_dev("tsir.mbarrier.mbarrier_arrive_expect_tx", MB, None, sync="arrive")
_dev("tsir.mbarrier.mbarrier_expect_tx", MB, None)
_dev("tsir.mbarrier.mbarrier_try_wait", MB, None, sync="wait")
_dev("tsir.mbarrier.mbarrier_wait", MB, None, sync="wait")
_dev("tsir.mbarrier.fence_proxy_async_shared", sync="proxy_fence")
_dev("tsir.mbarrier.elect_one", collective="warp")
_dev("tsir.mbarrier.setmaxnreg_dec", collective="warpgroup")
_dev("tsir.mbarrier.setmaxnreg_inc", collective="warpgroup")
_dev("tsir.mbarrier.named_barrier_sync", None, None, collective="range")
# named_barrier_arrive(id, count): counts towards the barrier's completion without waiting.
_dev("tsir.mbarrier.named_barrier_arrive", None, None, collective="range")
# tma_load_Nd(dst, desc, bar, c0, ...): the box lands in dst later and completes on bar.
_dev("tsir.tma.tma_load_1d", AW, None, MB, None)
_dev("tsir.tma.tma_load_2d", AW, None, MB, None, None)
_dev("tsir.tma.tma_load_3d", AW, None, MB, None, None, None)
_dev("tsir.tma.tma_load_2d_hint", AW, None, MB, None, None, None)
_dev("tsir.tma.tma_prefetch_descriptor", None)
_dev("tsir.tma.tma_desc_addr", None)
_dev("tsir.tma.l2_policy_evict_last")
_dev("tsir.tma.l2_policy_evict_first")
# tma_store_Nd(desc, src, c0, ...): src is read until tma_store_wait_read retires the group.
_dev("tsir.tma.tma_store_1d", None, AR, None)
_dev("tsir.tma.tma_store_2d", None, AR, None, None)
_dev("tsir.tma.tma_store_3d", None, AR, None, None, None)
_dev("tsir.tma.tma_store_commit")
_dev("tsir.tma.tma_store_wait_read", retires="bulk_read")
_dev("tsir.tma.tma_store_wait", retires="bulk")
# wgmma_desc(addr, lbo, sbo, swizzle) only encodes; wgmma_ss/rs read through the descriptors.
_dev("tsir.wgmma.wgmma_desc", None, None, None, None)
_dev("tsir.wgmma.wgmma_desc_advance", None, None)
_dev("tsir.wgmma.wgmma_fence", collective="warpgroup", sync="wgmma_fence")
_dev("tsir.wgmma.wgmma_commit", collective="warpgroup")
_dev("tsir.wgmma.wgmma_wait", collective="warpgroup", retires="wgmma")
_dev("tsir.wgmma.wgmma_fence_operand", None)
_dev("tsir.wgmma.wgmma_fence_operands", None)
_dev("tsir.wgmma.wgmma_fence_operands_u32", None)
# wgmma_ss<KIND, N, TA, TB>(&d[0], desc_a, desc_b, scale_d); wgmma_rs<KIND, N, TB>(&d[0], &a[0],
# desc_b, scale_d): A's registers are read (and may not be written) until retired.
_dev("tsir.wgmma.wgmma_ss", ARW, AR, AR, None, collective="warpgroup")
_dev("tsir.wgmma.wgmma_rs", ARW, AR, AR, None, collective="warpgroup")
_dev("tsir.wgmma.pack_half2", None, None)
_dev("tsir.wgmma.pack_bfloat162", None, None)
# stmatrix_x4(addr, r0, r1, r2, r3): each lane's addr is a row the warp writes (16 bytes).
_dev("tsir.wgmma.stmatrix_x4", W, None, None, None, None, collective="warp")
_dev("tsir.wgmma.stmatrix_x4_trans", W, None, None, None, None, collective="warp")


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
