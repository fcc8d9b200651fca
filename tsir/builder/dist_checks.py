"""Operand checks shared by the distributed builder functions (tsir.builder.dist_lang): every
one raises BuildError (a TSIRError) with the user's line."""

from __future__ import annotations

from typing import Any

from ..buffer import Buffer, BufferRegion
from ..dtype import int32
from ..errors import BuildError, DTypeError
from ..expr import BufferLoad, IntImm, PrimExpr, cast, const_value, convert
from ..tileop.distributed import MemoryScope, Semantics
from .frame import check_buffer_use, current_builder

MAX_RANKS = 64  # TSIR_MAX_RANKS in codegen/include/tsir/distributed.h
SCOPES = ("cta", "gpu", "sys")


class _World:
    """The world size the distributed builder functions check ranks against (None: unknown, any
    rank below MAX_RANKS); read and written as `tsir.builder.dist_lang.world_size_hint`."""

    hint: int | None = None


WORLD = _World()


def in_kernel(what: str) -> Any:
    b = current_builder(what)
    if b.kernel is None:
        raise BuildError(f"{what} runs on the GPU and must be inside a `with T.Kernel(...)` block")
    return b


def element(x: Any, what: str) -> BufferLoad:
    """A buffer (its first element), a region (its first element) or one element, as a load."""
    if isinstance(x, Buffer):
        check_buffer_use(x, element_access=True)
        return BufferLoad(
            x, tuple(IntImm(0, d.dtype if d.dtype.is_int else int32) for d in x.shape)
        )
    if isinstance(x, BufferRegion):
        check_buffer_use(x.buffer, element_access=True)
        return BufferLoad(x.buffer, x.mins)
    if isinstance(x, BufferLoad):
        if x.dtype.lanes != 1:
            raise BuildError(
                f"{what}: `{x.buffer.name}` is indexed with a vector; give one element"
            )
        return x
    raise BuildError(f"{what} must be a buffer or one element of a buffer (`A[i]`), got {x!r}")


def peer_rank(value: Any, what: str) -> PrimExpr | None:
    """A peer rank as an int32 expression, None for this rank; constants are range-checked."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, PrimExpr)):
        raise BuildError(f"{what} must be an integer rank (or None for this rank), got {value!r}")
    e = convert(value)
    if not e.dtype.is_int or e.dtype.lanes != 1:
        raise DTypeError(f"{what} must be an integer rank, got `{e}` of dtype {e.dtype}")
    c = const_value(e)
    if c is not None:
        hint = WORLD.hint
        limit = hint if hint is not None else MAX_RANKS
        if c < 0:
            raise BuildError(
                f"{what}={c} is not a rank; ranks are 0..{limit - 1} (leave {what} as None to "
                f"address this rank's own memory)"
            )
        if c >= limit:
            whose = "the group" if hint is not None else "tsir's rank table"
            raise BuildError(
                f"{what}={c} is out of range: {whose} has {limit} ranks (0..{limit - 1})"
            )
        return IntImm(c, int32)
    return e if e.dtype == int32 else cast(int32, e)


def require_symmetric(load: BufferLoad, what: str, why: str) -> None:
    if load.buffer.scope != "symmetric":
        raise BuildError(
            f"{what}: `{load.buffer.name}` is in {load.buffer.scope} memory, but {why} must be "
            f'symmetric; declare it with T.param(..., scope="symmetric") (or T.alloc_symmetric) '
            f"and pass a tensor from tsir.runtime.dist.empty/zeros"
        )


def order(
    what: str, sem: Any, scope: Any, allowed: tuple[str, ...], flipped: str
) -> tuple[Semantics, MemoryScope]:
    if sem not in allowed:
        hint = (
            f' (a {what[2:]} cannot be `{sem}`; did you mean sem="{flipped}"?)'
            if sem in ("acquire", "release", "acq_rel")
            else ""
        )
        raise BuildError(f"{what}: sem must be one of {', '.join(allowed)}, got {sem!r}{hint}")
    if scope is None:
        return Semantics(sem), MemoryScope.GPU
    if scope not in SCOPES:
        raise BuildError(f"{what}: scope must be one of {', '.join(SCOPES)}, got {scope!r}")
    if sem in ("weak", "volatile"):
        raise BuildError(
            f"{what}: sem={sem!r} takes no scope (PTX gives weak and volatile accesses none; a "
            f"volatile access acts as relaxed at system scope); drop scope={scope!r}, or use "
            f'sem="relaxed" with a scope'
        )
    return Semantics(sem), MemoryScope(scope)


def hints(what: str, load: BufferLoad, sem: str, remote: bool, na: bool, nc: bool) -> None:
    global_space = remote or load.buffer.scope in ("global", "symmetric")
    if (na or nc) and not global_space:
        raise BuildError(
            f"{what}: cache hints (na/nc) apply to global memory, but `{load.buffer.name}` is in "
            f"{load.buffer.scope} memory"
        )
    if na and sem == "volatile":
        raise BuildError(
            f'{what}: na=True (L1::no_allocate) cannot be combined with sem="volatile"'
        )
    if nc and sem != "weak":
        raise BuildError(
            f'{what}: nc=True (the non-coherent read-only path) needs sem="weak", got sem={sem!r}'
        )
