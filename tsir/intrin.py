"""Intrinsics: the names a `Call.op` may take, their typing rule and whether they have side effects.

The CUDA spelling of each lives in the code generator (a table per dtype); this table is what the IR,
the builder and the verifier agree on.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Intrinsic", "INTRINSICS", "intrinsic", "MATH_UNARY"]


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
