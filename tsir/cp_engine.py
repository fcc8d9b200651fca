"""The copy-engine statement's rules (`CpEngineCopy` in tsir.stmt): what a copy engine can do.

`check_cp_engine_copy` is run when the builder makes a copy (`T.cp_engine_copy`, raising a
BuildError at the user's line) and again by LowerCPEngineIntrin, which moves copies written in
kernels to the host program and must see every expression computable there.
"""

from __future__ import annotations

from typing import Any

from .buffer import Buffer, BufferRegion, Range
from .errors import BuildError, DTypeError
from .expr import BufferLoad, Call, IntImm, Var, const_value
from .stmt import CpEngineCopy
from .visitor import walk

__all__ = [
    "WHAT",
    "HOST_CALLS",
    "check_cp_engine_copy",
    "point",
    "const_numel",
    "const_flat_offset",
]

WHAT = "T.cp_engine_copy"
# Device calls whose value the host knows (the rank table's rank and size).
HOST_CALLS = ("tsir.distributed.rank", "tsir.distributed.num_ranks")
_MEMORY = ("global", "symmetric")
_FLAG_DTYPES = ("int32", "uint32", "int64", "uint64")


def const_numel(b: Buffer) -> int | None:
    """The number of elements of `b`, when its shape is constant."""
    n = 1
    for d in b.shape:
        c = const_value(d)
        if c is None:
            return None
        n *= c
    return n


def const_flat_offset(load: BufferLoad) -> int | None:
    """The row-major element offset of `load` in its buffer, when constant."""
    off = 0
    for i, s in zip(load.indices, load.buffer.row_major_strides()):
        ci, cs = const_value(i), const_value(s)
        if ci is None or cs is None:
            return None
        off += ci * cs
    return off


def point(load: BufferLoad) -> BufferRegion:
    """The one-element region at `load` (how CpEngineCopy holds an address)."""
    return BufferRegion(load.buffer, tuple(Range(i, IntImm(1, i.dtype)) for i in load.indices))


def _load(r: BufferRegion) -> BufferLoad:
    return BufferLoad(r.buffer, r.mins)


def check_cp_engine_copy(c: CpEngineCopy, host_vars: set[Var], error: Any = BuildError) -> None:
    """Reject what a copy engine cannot do: raises `error` naming the op (shared with the pass)."""
    # the copy's addresses as loads, for the element checks below
    src, dst = _load(c.src), _load(c.dst)
    flag = None if c.flag is None else _load(c.flag)
    for load, side in ((src, "src"), (dst, "dst")) + (
        ((flag, "signal flag"),) if flag is not None else ()
    ):
        if load.buffer.scope not in _MEMORY:
            raise error(
                f"{WHAT}: {side} `{load.buffer.name}` is in {load.buffer.scope} memory; copy "
                f"engines move global or symmetric memory"
            )
    for load, pe, side in ((src, c.src_pe, "src"), (dst, c.dst_pe, "dst")):
        if pe is not None and load.buffer.scope != "symmetric":
            raise error(
                f"{WHAT}: {side} `{load.buffer.name}` is in {load.buffer.scope} memory, but a "
                f"remote {side} ({side}_pe=) must be symmetric; declare it with "
                f'T.param(..., scope="symmetric") and pass a tensor from tsir.runtime.dist.empty/zeros'
            )
    if flag is not None:
        if flag.buffer.dtype.name not in _FLAG_DTYPES:
            raise DTypeError(
                f"{WHAT}: flag `{flag.buffer.name}` is {flag.buffer.dtype}; flags are "
                f"{', '.join(_FLAG_DTYPES)}"
            )
        if c.dst_pe is not None and flag.buffer.scope != "symmetric":
            raise error(
                f"{WHAT}: the flag `{flag.buffer.name}` is written on dst_pe, so it must be symmetric"
            )
    if src.buffer.dtype != dst.buffer.dtype:
        raise DTypeError(
            f"{WHAT}: src `{src.buffer.name}` is {src.buffer.dtype} but dst "
            f"`{dst.buffer.name}` is {dst.buffer.dtype}; a copy moves bytes and needs one dtype"
        )
    count = const_value(c.size)
    if count is not None:
        if count < 0:
            raise error(f"{WHAT}: size {count} is negative")
        for load, side in ((src, "src"), (dst, "dst")):
            total, off = const_numel(load.buffer), const_flat_offset(load)
            if total is not None and off is not None and off + count > total:
                raise error(
                    f"{WHAT}: copying {count} elements from {side} `{load.buffer.name}` element "
                    f"{off} runs past its end ({total} elements)"
                )
    flag_idx = () if flag is None else flag.indices
    for x in walk((src.indices, dst.indices, c.size, c.src_pe, c.dst_pe, flag_idx, c.flag_value)):
        if isinstance(x, Var) and x not in host_vars:
            raise error(
                f"{WHAT}: `{x.name}` is not known on the host; the copy's offsets, size, ranks and "
                f"signal value may use only scalar parameters, dynamic dimensions and "
                f"T.get_rank()/T.get_num_ranks() (the copy runs on the host's copy stream)"
            )
        if isinstance(x, Call) and x.op not in HOST_CALLS:
            raise error(f"{WHAT}: `{x}` cannot be evaluated on the host")
        if isinstance(x, BufferLoad):
            raise error(f"{WHAT}: `{x}` reads GPU memory; the host cannot evaluate it")
