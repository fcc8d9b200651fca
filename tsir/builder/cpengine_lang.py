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

from ..buffer import Buffer, BufferRegion, Range
from ..dtype import int64
from ..errors import BuildError, DTypeError
from ..expr import BufferLoad, Call, IntImm, PrimExpr, Var, cast, const_value, convert
from ..stmt import CpEngineCopy
from ..visitor import walk
from .dist_checks import flat_offset, numel, peer_rank
from .frame import current_builder
from .indexing import check_buffer_use, store_value

__all__ = ["cp_engine_copy", "check_cp_engine_copy", "HOST_CALLS"]

WHAT = "T.cp_engine_copy"
# Device calls whose value the host knows (the rank table's rank and size).
HOST_CALLS = ("tsir.distributed.rank", "tsir.distributed.num_ranks")
_MEMORY = ("global", "symmetric")
_FLAG_DTYPES = ("int32", "uint32", "int64", "uint64")


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


def point(load: BufferLoad) -> BufferRegion:
    """The one-element region at `load` (how CpEngineCopy holds an address)."""
    return BufferRegion(load.buffer, tuple(Range(i, IntImm(1, i.dtype)) for i in load.indices))


def _load(r: BufferRegion) -> BufferLoad:
    return BufferLoad(r.buffer, r.mins)


def check_cp_engine_copy(c: CpEngineCopy, host_vars: set[Var], error: type = BuildError) -> None:
    """Reject what a copy engine cannot do: raises `error` naming the op (shared with the pass)."""
    c = c.replace(
        src=_load(c.src), dst=_load(c.dst), flag=None if c.flag is None else _load(c.flag)
    )  # a view with loads, for the element checks below (never emitted)
    for load, side in ((c.src, "src"), (c.dst, "dst")) + (((c.flag, "signal flag"),) if c.flag is not None else ()):
        if load.buffer.scope not in _MEMORY:
            raise error(
                f"{WHAT}: {side} `{load.buffer.name}` is in {load.buffer.scope} memory; copy "
                f"engines move global or symmetric memory"
            )
    for load, pe, side in ((c.src, c.src_pe, "src"), (c.dst, c.dst_pe, "dst")):
        if pe is not None and load.buffer.scope != "symmetric":
            raise error(
                f"{WHAT}: {side} `{load.buffer.name}` is in {load.buffer.scope} memory, but a "
                f"remote {side} ({side}_pe=) must be symmetric; declare it with "
                f'T.param(..., scope="symmetric") and pass a tensor from tsir.runtime.dist.empty/zeros'
            )
    if c.flag is not None:
        if c.flag.buffer.dtype.name not in _FLAG_DTYPES:
            raise DTypeError(
                f"{WHAT}: flag `{c.flag.buffer.name}` is {c.flag.buffer.dtype}; flags are "
                f"{', '.join(_FLAG_DTYPES)}"
            )
        if c.dst_pe is not None and c.flag.buffer.scope != "symmetric":
            raise error(
                f"{WHAT}: the flag `{c.flag.buffer.name}` is written on dst_pe, so it must be symmetric"
            )
    if c.src.buffer.dtype != c.dst.buffer.dtype:
        raise DTypeError(
            f"{WHAT}: src `{c.src.buffer.name}` is {c.src.buffer.dtype} but dst "
            f"`{c.dst.buffer.name}` is {c.dst.buffer.dtype}; a copy moves bytes and needs one dtype"
        )
    count = const_value(c.size)
    if count is not None:
        if count < 0:
            raise error(f"{WHAT}: size {count} is negative")
        for load, side in ((c.src, "src"), (c.dst, "dst")):
            total, off = numel(load.buffer), flat_offset(load)
            if total is not None and off is not None and off + count > total:
                raise error(
                    f"{WHAT}: copying {count} elements from {side} `{load.buffer.name}` element "
                    f"{off} runs past its end ({total} elements)"
                )
    flag_idx = () if c.flag is None else c.flag.indices
    for x in walk((c.src.indices, c.dst.indices, c.size, c.src_pe, c.dst_pe, flag_idx, c.flag_value)):
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


def _register_printer() -> None:
    from ..printer_stmt import StmtPrinter

    def operand(p: Any, region: BufferRegion) -> str:
        load = _load(region)
        if all(const_value(i) == 0 for i in load.indices):
            return str(p.namer(load.buffer))
        # A one-element slice on the last axis: valid on the host, and rebuilds the same element.
        idx = [p(i) for i in load.indices[:-1]]
        last = p(load.indices[-1])
        return f"{p.namer(load.buffer)}[{', '.join([*idx, f'{last}:{last} + 1'])}]"

    def _CpEngineCopy(self: Any, s: CpEngineCopy, tail: bool) -> None:
        p = self.expr
        text = f"{WHAT}({operand(p, s.src)}, {operand(p, s.dst)}, {p(s.size, s.size.dtype)}"
        text += f", src_pe={p(s.src_pe)}" if s.src_pe is not None else ""
        text += f", dst_pe={p(s.dst_pe)}" if s.dst_pe is not None else ""
        if s.flag is not None and s.flag_value is not None:
            text += f", signal=({operand(p, s.flag)}, {p(s.flag_value, s.flag.buffer.dtype)})"
        self.emit(text + ")", s)

    # The statement printer dispatches on `_<ClassName>` methods.
    StmtPrinter._CpEngineCopy = _CpEngineCopy  # type: ignore[attr-defined]


_register_printer()
