"""`T.cp_engine_copy`: a bulk copy done by the GPU's copy (DMA) engines instead of its SMs.

    T.cp_engine_copy(src, dst, size=None, *, src_pe=None, dst_pe=None, signal=None)

`src`/`dst` are a buffer (from its first element), a contiguous slice (`A[r * n:(r + 1) * n]`) or,
inside a kernel, one element; `size` counts elements (None: the extent of `src`'s slice, or the
whole buffer). `src_pe`/`dst_pe` name the rank whose copy of a symmetric buffer is read / written
(None: this rank). `signal=(flag, value)` writes `value` to the flag element once the data has
landed, on the rank that receives the data (`dst_pe`, else this rank).

Written in a function's host body (between kernels) or in a kernel body (at its top level): either
way the copy runs on the host's copy stream, after the kernels launched before that point and
concurrently with the kernel launched next, which may `T.wait_eq` on the flag (LowerCPEngineIntrin
moves in-kernel copies to the host; `tsir.runtime.cpengine` executes them). Every expression must be
computable on the host: integer arithmetic on scalar parameters, dynamic dimensions,
`T.get_rank()` and `T.get_num_ranks()`.
"""

from __future__ import annotations

from typing import Any

from ..buffer import Buffer, BufferRegion, store_value
from ..cp_engine import WHAT, check_cp_engine_copy, point
from ..dtype import int64
from ..errors import BuildError, DTypeError
from ..expr import BufferLoad, IntImm, PrimExpr, Var, cast, const_value, convert
from ..stmt import CpEngineCopy
from ..visitor import walk
from .dist_checks import peer_rank
from .frame import check_buffer_use, current_builder

__all__ = ["cp_engine_copy"]


def _operand(x: Any, side: str) -> tuple[BufferLoad, PrimExpr | None]:
    """The operand's first element, and its element count when it is a buffer or a slice."""
    if isinstance(x, Buffer):
        check_buffer_use(x, element_access=False)
        zeros = tuple(IntImm(0, d.dtype if d.dtype.is_int else int64) for d in x.shape)
        count: PrimExpr = IntImm(1, int64)
        for d in x.shape:
            count = count * d if not (isinstance(count, IntImm) and count.value == 1) else d
        return BufferLoad(x, zeros), count
    if isinstance(x, BufferRegion):
        _check_contiguous(x, side)
        count = IntImm(1, int64)
        for r in x.region:
            e = r.extent
            count = count * e if not (isinstance(count, IntImm) and count.value == 1) else e
        return BufferLoad(x.buffer, x.mins), count
    if isinstance(x, BufferLoad) and x.dtype.lanes == 1:
        return x, None
    raise BuildError(
        f"{WHAT}: {side} must be a buffer, a slice of one (`A[i:i + n]`) or one element, got {x!r}"
    )


def _check_contiguous(r: BufferRegion, side: str) -> None:
    shape, ext = r.buffer.shape, [rg.extent for rg in r.region]
    k = 0
    while k < len(ext) and const_value(ext[k]) == 1:
        k += 1
    for d in range(k + 1, len(ext)):
        full = ext[d] is shape[d] or (
            const_value(ext[d]) is not None and const_value(ext[d]) == const_value(shape[d])
        )
        if not full:
            raise BuildError(
                f"{WHAT}: the {side} slice of `{r.buffer.name}` is not contiguous (dimension {d} "
                f"is not whole); a copy engine moves one contiguous range per copy"
            )


def cp_engine_copy(
    src: Any,
    dst: Any,
    size: Any = None,
    *,
    src_pe: Any = None,
    dst_pe: Any = None,
    signal: Any = None,
) -> None:
    """Copy `size` elements from `src` (on rank `src_pe`) to `dst` (on rank `dst_pe`) with the copy
    engines, then write `signal=(flag, value)` on the receiving rank. See the module docstring."""
    b = current_builder(WHAT)
    if b.kernel is not None and b.frame.kind != "kernel":
        raise BuildError(
            f"{WHAT} inside a loop or branch of a kernel cannot be moved to the host; write it at "
            f"the kernel's top level or in the function body"
        )
    s, s_count = _operand(src, "src")
    d, _ = _operand(dst, "dst")
    if size is None:
        if s_count is None:
            raise BuildError(f"{WHAT}: src is one element; pass size= (a number of elements)")
        size = s_count
    if isinstance(size, bool) or not isinstance(size, (int, PrimExpr)):
        raise BuildError(f"{WHAT}: size must be a number of elements, got {size!r}")
    n = convert(size)
    if not n.dtype.is_int or n.dtype.lanes != 1:
        raise DTypeError(f"{WHAT}: size `{n}` must be an integer, got {n.dtype}")
    flag = value = None
    if signal is not None:
        if not isinstance(signal, tuple) or len(signal) != 2:
            raise BuildError(f"{WHAT}: signal must be a (flag, value) pair, got {signal!r}")
        flag, _ = _operand(signal[0], "signal flag")
        value = store_value(flag.buffer, signal[1])
    stmt = CpEngineCopy(
        point(s),
        point(d),
        n if n.dtype == int64 else cast(int64, n),
        peer_rank(src_pe, f"{WHAT} src_pe"),
        peer_rank(dst_pe, f"{WHAT} dst_pe"),
        None if flag is None else point(flag),
        value,
    )
    host_vars: set[Var] = set()
    for p in b.params:
        host_vars.update(v for v in walk(p) if isinstance(v, Var))
    check_cp_engine_copy(stmt, host_vars, BuildError)
    b.frame.emit(stmt)
