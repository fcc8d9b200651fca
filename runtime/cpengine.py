"""Copy-engine transfers of a host program: description (`copy_step`) and execution (`CopyEngines`).

A `CpEngineCopy` left in the host body by LowerCPEngineIntrin becomes a `CopyStep` (expressions in
elements as Python source, like grid extents). At call time the launcher's generated code runs, for
each group of copies placed before launch k (see passes/lower_cpengine_intrin.py for the semantics):

    fence(dev, cs)   cuEventRecord(ev_in, compute stream); cuStreamWaitEvent(copy stream, ev_in)
    copy(dev, j, …)  cuMemcpyAsync on the copy stream (peer addresses through the symmetric heap's
                     mappings), then cuStreamWriteValue32/64 of the flag on the receiving rank
    join(dev, cs)    after the last step: cuEventRecord(ev_out, copy stream);
                     cuStreamWaitEvent(compute stream, ev_out)

One copy stream (non-blocking, highest priority) and two events per device and launcher, created on
first use with the device's primary context current. Reusing an event is safe: cuStreamWaitEvent
captures the work recorded at the time of the call.
"""

from __future__ import annotations

from typing import Any

from ..errors import LaunchError
from . import driver as drv
from .host_program import CopyStep, HostProgram, TensorParam

__all__ = ["copy_step", "CopyEngines", "ranks"]


def _host_expr(e: Any) -> str:
    """Python source for a host expression; the rank table's values read `__rank`/`__num_ranks`."""
    from tsir.codegen.host import python_expr

    from tsir.dtype import int32
    from tsir.expr import Call, Var
    from tsir.visitor import Mutator

    names = {"tsir.distributed.rank": "__rank", "tsir.distributed.num_ranks": "__num_ranks"}

    class _Ranks(Mutator):
        def visit_Call(self, c: Call) -> Any:
            if c.op in names:
                return Var(names[c.op], int32)
            return self.generic_visit(c)

    return python_expr(_Ranks().visit(e))


def _flat_offset(region: Any) -> str:
    from tsir.expr import IntImm

    total: Any = None
    for i, s in zip(region.mins, region.buffer.row_major_strides()):
        term = i if isinstance(s, IntImm) and s.value == 1 else i * s
        if isinstance(i, IntImm) and i.value == 0:
            continue
        total = term if total is None else total + term
    return "0" if total is None else _host_expr(total)


def copy_step(c: Any, before: int) -> CopyStep:
    """The runtime description of a host-body `CpEngineCopy` placed before launch `before`."""
    flag = c.flag
    return CopyStep(
        before=before,
        src=c.src.buffer.name,
        src_offset=_flat_offset(c.src),
        dst=c.dst.buffer.name,
        dst_offset=_flat_offset(c.dst),
        count=_host_expr(c.size),
        src_pe=None if c.src_pe is None else _host_expr(c.src_pe),
        dst_pe=None if c.dst_pe is None else _host_expr(c.dst_pe),
        flag=None if flag is None else flag.buffer.name,
        flag_offset="0" if flag is None else _flat_offset(flag),
        flag_value="0" if c.flag_value is None else _host_expr(c.flag_value),
        flag_bytes=4 if flag is None else flag.buffer.dtype.bits // 8,
    )


def ranks() -> tuple[int, int]:
    """(rank, number of ranks) of the group tsir.runtime.dist formed; (0, 1) without one."""
    from .dist import table

    t = table.current_table()
    return (0, 1) if t is None else (t.rank, t.num_ranks)


def _itemsize(p: TensorParam) -> int:
    from .launch_codegen import ITEMSIZE

    return ITEMSIZE[p.dtype]


class CopyEngines:
    """The per-launcher state and driver calls of a program's copy steps."""

    def __init__(self, program: HostProgram, name: str) -> None:
        self.program = program
        self.name = name
        tensors = {p.name: p for p in program.params if isinstance(p, TensorParam)}
        self.sizes = [
            (_itemsize(tensors[c.src]), _itemsize(tensors[c.dst])) for c in program.copies
        ]
        self._devs: dict[int, tuple[Any, Any, Any]] = {}

    def _state(self, dev: int) -> tuple[Any, Any, Any]:
        st = self._devs.get(dev)
        if st is None:
            d = drv.driver()
            _, greatest = drv.check(d.cuCtxGetStreamPriorityRange(), "cuCtxGetStreamPriorityRange")
            flags = int(d.CUstream_flags.CU_STREAM_NON_BLOCKING)
            stream = drv.check(
                d.cuStreamCreateWithPriority(flags, greatest), "creating the copy stream"
            )
            ev = int(d.CUevent_flags.CU_EVENT_DISABLE_TIMING)
            ev_in = drv.check(d.cuEventCreate(ev), "cuEventCreate")
            ev_out = drv.check(d.cuEventCreate(ev), "cuEventCreate")
            st = self._devs[dev] = (stream, ev_in, ev_out)
        return st

    def fence(self, dev: int, cs: Any) -> None:
        """The copy stream waits for everything enqueued so far on the compute stream `cs`."""
        stream, ev_in, _ = self._state(dev)
        d = drv.driver()
        drv.check(d.cuEventRecord(ev_in, cs), "cuEventRecord (compute stream)")
        drv.check(d.cuStreamWaitEvent(stream, ev_in, 0), "cuStreamWaitEvent (copy stream)")

    def join(self, dev: int, cs: Any) -> None:
        """The compute stream `cs` waits for every copy (and flag write) enqueued so far."""
        stream, _, ev_out = self._state(dev)
        d = drv.driver()
        drv.check(d.cuEventRecord(ev_out, stream), "cuEventRecord (copy stream)")
        drv.check(d.cuStreamWaitEvent(cs, ev_out, 0), "cuStreamWaitEvent (compute stream)")

    def copy(
        self,
        dev: int,
        j: int,
        src: tuple[int, int, int],
        src_pe: int | None,
        dst: tuple[int, int, int],
        dst_pe: int | None,
        count: int,
        flag: tuple[int, int, int] | None,
        value: int,
    ) -> None:
        """Copy step j: `src`/`dst`/`flag` are (data pointer, element offset, element count)."""
        c: CopyStep = self.program.copies[j]
        s_size, d_size = self.sizes[j]
        if count < 0:
            raise self._error(c, f"the size evaluates to {count} elements")
        for (_ptr, off, n), side in ((src, c.src), (dst, c.dst)):
            if off < 0 or off + count > n:
                raise self._error(
                    c, f"elements [{off}, {off + count}) of `{side}` are outside its {n} elements"
                )
        stream = self._state(dev)[0]
        d = drv.driver()
        if count:
            s_addr = _on_rank(src[0] + src[1] * s_size, src_pe, c, "src_pe")
            d_addr = _on_rank(dst[0] + dst[1] * d_size, dst_pe, c, "dst_pe")
            r = d.cuMemcpyAsync(d_addr, s_addr, count * s_size, stream)
            if r[0]:
                raise self._error(c, f"cuMemcpyAsync failed: {drv.error_text(r[0])}")
        if flag is not None:
            ptr, off, n = flag
            if not 0 <= off < n:
                raise self._error(c, f"flag element {off} is outside `{c.flag}` ({n} elements)")
            addr = _on_rank(ptr + off * c.flag_bytes, dst_pe, c, "dst_pe")
            self._write_flag(c, stream, addr, value, dst_pe is not None)

    def _write_flag(self, c: CopyStep, stream: Any, addr: int, value: int, remote: bool) -> None:
        d = drv.driver()
        bits = 8 * c.flag_bytes
        v = value & ((1 << bits) - 1)  # two's complement: an int32 flag may be written -1
        write = d.cuStreamWriteValue32 if bits == 32 else d.cuStreamWriteValue64
        r = write(stream, addr, v, 0)  # default flags: a memory fence precedes the write
        if r[0] and remote and bits == 32:
            # Peer memory the driver refuses stream memory operations on: a 4-byte memset is one
            # store, ordered after the copy by the stream.
            r = d.cuMemsetD32Async(addr, v, 1, stream)
        if r[0]:
            hint = " (use a 32-bit flag, or pull with src_pe= and a local flag)" if remote else ""
            raise self._error(c, f"writing the flag failed: {drv.error_text(r[0])}{hint}")

    def _error(self, c: CopyStep, what: str) -> LaunchError:
        return LaunchError(f"{self.name}: T.cp_engine_copy({c.src} -> {c.dst}): {what}")


def _on_rank(ptr: int, pe: int | None, c: CopyStep, what: str) -> int:
    """`ptr` (in this rank's symmetric heap) as rank `pe`'s counterpart in this process."""
    if pe is None:
        return ptr
    from .dist import table

    t = table.current_table()
    if t is None:
        raise LaunchError(
            f"T.cp_engine_copy({c.src} -> {c.dst}) addresses rank {pe} ({what}), but no group "
            f"exists; call tsir.runtime.dist.init() first"
        )
    if not 0 <= pe < t.num_ranks:
        raise LaunchError(
            f"T.cp_engine_copy({c.src} -> {c.dst}): {what} = {pe} is outside the group's "
            f"{t.num_ranks} ranks"
        )
    off = ptr - t.bases[t.rank]
    if not 0 <= off < t.heap_bytes:
        raise LaunchError(
            f"T.cp_engine_copy({c.src} -> {c.dst}): the {what} side is not in the symmetric heap"
        )
    return t.bases[pe] + off
