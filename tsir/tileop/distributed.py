"""TileScale's distributed tile operators: remote copies, qualified loads and stores, flag waits and
the cross-rank barrier.

They infer no layout and lower to calls into tsir's device headers (`codegen/include/tsir/`):
`distributed.h` (rank table, remote addresses, copies, barrier), `ldst.h`, `sync.h`; the code
generator includes a header only when one of its functions is called. A remote operand is addressed
as `tsir::remote_ptr(&buf[i], pe)`: the same offset into peer `pe`'s symmetric heap.

Every op is built (and validated) by `tsir.builder.dist_lang`; the fields here are already checked.
Addresses are taken of the buffer and indices as written (no op here reorders a buffer's layout; a
put from a swizzled shared buffer is refused at lowering rather than addressed wrongly).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..buffer import Buffer, BufferRegion
from ..dtype import DataType, int32, int64
from ..errors import UnsupportedError
from ..expr import BufferLoad, Call, IntImm, Max, Min, PrimExpr, cast
from ..node import node
from ..stmt import BufferStore, Evaluate, Stmt, seq
from ..structural import structural_equal
from .base import LowerArgs, OpEnum, Spread, TileOperatorNode, coerce_enums, register_tile_op

if TYPE_CHECKING:
    from ..arith import Analyzer
    from ..printer_expr import ExprPrinter

__all__ = [
    "PutOp",
    "GetOp",
    "StOp",
    "LdOp",
    "WaitOp",
    "BarrierBlocksOp",
    "Semantics",
    "MemoryScope",
    "Relation",
    "SEMANTICS",
    "SCOPES",
    "RELATIONS",
    "GLOBAL_SCOPES",
    "address_of",
    "remote_address",
    "rank_expr",
]

HANDLE = DataType("handle")


class Semantics(OpEnum):
    """The memory order of `T.st` / `T.ld` (PTX `ld`/`st` qualifiers)."""

    WEAK = "weak"
    VOLATILE = "volatile"
    RELAXED = "relaxed"
    ACQUIRE = "acquire"
    RELEASE = "release"
    ACQ_REL = "acq_rel"


class MemoryScope(OpEnum):
    """The threads a memory order is relative to: the block, the GPU, the system."""

    CTA = "cta"
    GPU = "gpu"
    SYS = "sys"


class Relation(OpEnum):
    """What `T.wait_<relation>` waits for between the flag and the value."""

    EQ = "eq"
    NE = "ne"
    GE = "ge"
    LE = "le"
    GT = "gt"
    LT = "lt"


# Memory orders, scopes and wait relations as the device headers spell them.
SEMANTICS = {
    "weak": "WEAK",
    "volatile": "VOLATILE",
    "relaxed": "RELAXED",
    "acquire": "ACQUIRE",
    "release": "RELEASE",
    "acq_rel": "ACQ_REL",
}
SCOPES = {"cta": "CTA", "gpu": "GPU", "sys": "SYS"}
RELATIONS = {"eq": "EQ", "ne": "NE", "ge": "GE", "le": "LE", "gt": "GT", "lt": "LT"}
# Scopes whose memory is addressed with `.global` (the rest, shared memory, generically).
GLOBAL_SCOPES = ("global", "symmetric")


def address_of(load: BufferLoad) -> PrimExpr:
    return Call(HANDLE, "address_of", (load,))


def remote_address(load: BufferLoad, pe: PrimExpr | None) -> PrimExpr:
    """`&buf[i]`, or its counterpart on rank `pe` when `pe` is given."""
    addr = address_of(load)
    return addr if pe is None else Call(HANDLE, "tsir.distributed.remote_ptr", (addr, pe))


def rank_expr() -> PrimExpr:
    return Call(int32, "tsir.distributed.rank", ())


def _template(fn: str, args: list[str], defaults: list[str]) -> str:
    """`fn<a, b>` without the trailing arguments equal to the header's defaults."""
    while len(args) > 1 and defaults and args[-1] == defaults[len(args) - 2]:
        args = args[:-1]
    return f"{fn}<{', '.join('tsir::' + a for a in args)}>"


def _space(buffer: Buffer, remote: bool) -> str:
    return "GLOBAL" if remote or buffer.scope in GLOBAL_SCOPES else "GENERIC"


def _full(buffer: Buffer) -> BufferRegion:
    return BufferRegion.full(buffer)


def _check_layout(args: LowerArgs, op: str, *buffers: Buffer) -> None:
    for b in buffers:
        if b in args.layout_map:
            raise UnsupportedError(
                f"{op}: `{b.name}` has an inferred layout ({args.layout_map[b]}); remote copies "
                f"address buffers in their logical row-major order, so copy it to a plain buffer "
                f"first",
                where="LowerTileOp",
            )


def _clamped(size: PrimExpr, ends: tuple[BufferLoad, ...], analyzer: Analyzer) -> PrimExpr:
    """`size`, cut so the copy stays inside both buffers (as T.copy skips stores outside its
    destination) and is not negative, where the analyzer cannot prove it already is: a dynamic
    shape whose last tile is partial copies only what exists."""
    out = size
    rooms: list[PrimExpr] = []
    for load in ends:
        room = _elements_after(load)
        if analyzer.can_prove(size <= room) or any(structural_equal(room, r) for r in rooms):
            continue
        rooms.append(room)
        out = Min(out, room)
    # A negative size (a computed remainder past the end, say) copies nothing.
    if not analyzer.can_prove(out >= IntImm(0, int64)):
        out = Max(out, IntImm(0, int64))
    return out


def _elements_after(load: BufferLoad) -> PrimExpr:
    """How many elements the row-major buffer holds from `load`'s element on (int64)."""
    total: PrimExpr = IntImm(1, int64)
    offset: PrimExpr = IntImm(0, int64)
    for idx, dim, stride in zip(load.indices, load.buffer.shape, load.buffer.row_major_strides()):
        total = total * _i64(dim)
        offset = offset + _i64(idx) * _i64(stride)
    return total - offset


def _i64(e: PrimExpr) -> PrimExpr:
    return e if e.dtype == int64 else cast(int64, e)


def _peer(p: ExprPrinter, name: str, pe: PrimExpr | None) -> str:
    return "" if pe is None else f", {name}={p(pe)}"


def _order(op: Any) -> str:
    """The `sem=` / `scope=` / `na=` keywords of T.st and T.ld that differ from the defaults."""
    text = f', sem="{op.sem}"' if op.sem != Semantics.WEAK else ""
    if op.sem not in (Semantics.WEAK, Semantics.VOLATILE):
        text = f', scope="{op.scope}"' + text
    return text + (", na=True" if op.na else "")


class _RemoteCopy(TileOperatorNode):
    """A cooperative copy of `size` elements from `src[...]` onwards to `dst[...]` onwards."""

    __slots__ = ()
    src: BufferLoad
    dst: BufferLoad
    size: PrimExpr
    pe: PrimExpr | None
    scope: Spread  # warp or block

    def __post_init__(self) -> None:
        coerce_enums(self, scope=Spread)

    def spread(self) -> Spread:
        return self.scope

    def reads(self) -> tuple[BufferRegion, ...]:
        return (_full(self.src.buffer),)

    def writes(self) -> tuple[BufferRegion, ...]:
        return (_full(self.dst.buffer),)

    def addresses(self) -> tuple[PrimExpr, PrimExpr]:
        raise NotImplementedError

    def lower(self, args: LowerArgs, analyzer: Analyzer) -> Stmt:
        _check_layout(args, type(self).__name__, self.src.buffer, self.dst.buffer)
        dst, src = self.addresses()
        size = self.size if self.size.dtype == int64 else cast(int64, self.size)
        nbytes = _clamped(size, (self.src, self.dst), analyzer) * IntImm(
            self.src.buffer.dtype.bytes, int64
        )
        if self.scope is Spread.BLOCK:
            idx, count, sync = args.thread_var, IntImm(args.num_threads, int32), "sync_threads"
        else:
            idx, count, sync = args.thread_var % 32, IntImm(32, int32), "sync_warp"
        barrier = Evaluate(Call(int32, sync, ()))
        call = Call(int32, "tsir.distributed.copy_group", (dst, src, nbytes, idx, count))
        # Before: the source is complete (other threads may have written it); after: the copy has
        # been issued by every thread of the group.
        return seq(barrier, Evaluate(call), barrier)


@register_tile_op("tl.PutOp")
@node
class PutOp(_RemoteCopy):
    """`T.put_warp/put_block`: push local `src` to `dst` on rank `pe` (this rank when None)."""

    src: BufferLoad
    dst: BufferLoad
    size: PrimExpr
    pe: PrimExpr | None
    scope: Spread

    def addresses(self) -> tuple[PrimExpr, PrimExpr]:
        return remote_address(self.dst, self.pe), address_of(self.src)

    def title(self) -> str:
        return f"T.put_{self.scope}"

    def print_form(self, p: ExprPrinter) -> str:
        peer = _peer(p, "dst_pe", self.pe)
        return f"T.put_{self.scope}({p(self.src)}, {p(self.dst)}, {p(self.size)}{peer})"


@register_tile_op("tl.GetOp")
@node
class GetOp(_RemoteCopy):
    """`T.get_warp/get_block`: pull `src` on rank `pe` (this rank when None) into local `dst`."""

    src: BufferLoad
    dst: BufferLoad
    size: PrimExpr
    pe: PrimExpr | None
    scope: Spread

    def addresses(self) -> tuple[PrimExpr, PrimExpr]:
        return address_of(self.dst), remote_address(self.src, self.pe)

    def title(self) -> str:
        return f"T.get_{self.scope}"

    def print_form(self, p: ExprPrinter) -> str:
        peer = _peer(p, "src_pe", self.pe)
        return f"T.get_{self.scope}({p(self.src)}, {p(self.dst)}, {p(self.size)}{peer})"


@register_tile_op("tl.StOp")
@node
class StOp(TileOperatorNode):
    """`T.st`: one store of `value` (already of dst's dtype) with a memory order, by every
    thread."""

    dst: BufferLoad
    value: PrimExpr
    sem: Semantics
    scope: MemoryScope
    na: bool
    pe: PrimExpr | None

    def __post_init__(self) -> None:
        coerce_enums(self, sem=Semantics, scope=MemoryScope)

    def spread(self) -> Spread:
        return Spread.THREAD

    def title(self) -> str:
        return "T.st"

    def print_form(self, p: ExprPrinter) -> str:
        value = p(self.value, self.dst.buffer.dtype)
        return f"T.st({p(self.dst)}, {value}{_order(self)}{_peer(p, 'dst_pe', self.pe)})"

    def writes(self) -> tuple[BufferRegion, ...]:
        return (_full(self.dst.buffer),)

    def lower(self, args: LowerArgs, analyzer: Analyzer) -> Stmt:
        space = _space(self.dst.buffer, self.pe is not None)
        hint = "NO_ALLOCATE" if self.na else "NO_HINT"
        fn = _template(
            "st",
            [SEMANTICS[self.sem], SCOPES[self.scope], space, hint],
            ["GPU", "GLOBAL", "NO_HINT"],
        )
        return Evaluate(
            Call(int32, f"tsir.ldst.{fn}", (remote_address(self.dst, self.pe), self.value))
        )


@register_tile_op("tl.LdOp")
@node
class LdOp(TileOperatorNode):
    """`T.ld`: one load of `src` with a memory order into the element `value`, by every thread.

    The loaded value is stored into `value` in the IR, so passes see the write (TileScale's op
    passed `value` as a C++ reference that the IR believed was only read)."""

    src: BufferLoad
    value: BufferLoad
    sem: Semantics
    scope: MemoryScope
    na: bool
    nc: bool
    pe: PrimExpr | None

    def __post_init__(self) -> None:
        coerce_enums(self, sem=Semantics, scope=MemoryScope)

    def spread(self) -> Spread:
        return Spread.THREAD

    def title(self) -> str:
        return "T.ld"

    def print_form(self, p: ExprPrinter) -> str:
        nc = ", nc=True" if self.nc else ""
        peer = _peer(p, "src_pe", self.pe)
        return f"T.ld({p(self.src)}, {p(self.value)}{_order(self)}{nc}{peer})"

    def reads(self) -> tuple[BufferRegion, ...]:
        return (_full(self.src.buffer),)

    def writes(self) -> tuple[BufferRegion, ...]:
        return (_full(self.value.buffer),)

    def lower(self, args: LowerArgs, analyzer: Analyzer) -> Stmt:
        space = _space(self.src.buffer, self.pe is not None)
        hint = {
            (False, False): "NO_HINT",
            (True, False): "NO_ALLOCATE",
            (False, True): "NON_COHERENT",
        }.get((self.na, self.nc), "NON_COHERENT_NO_ALLOCATE")
        fn = _template(
            "ld",
            [SEMANTICS[self.sem], SCOPES[self.scope], space, hint],
            ["GPU", "GLOBAL", "NO_HINT"],
        )
        loaded: PrimExpr = Call(
            self.src.buffer.dtype, f"tsir.ldst.{fn}", (remote_address(self.src, self.pe),)
        )
        if loaded.dtype != self.value.buffer.dtype:
            loaded = cast(self.value.buffer.dtype, loaded)
        return BufferStore(self.value.buffer, loaded, self.value.indices)


@register_tile_op("tl.WaitOp")
@node
class WaitOp(TileOperatorNode):
    """`T.wait_<relation>`: every calling thread spins until `flag <relation> value` (acquire at
    `scope`); with `timeout_cycles` > 0 it traps after printing what it saw."""

    flag: BufferLoad
    relation: Relation
    value: PrimExpr
    pe: PrimExpr | None
    scope: MemoryScope
    timeout_cycles: int

    def __post_init__(self) -> None:
        coerce_enums(self, relation=Relation, scope=MemoryScope)

    def spread(self) -> Spread:
        return Spread.THREAD

    def title(self) -> str:
        return f"T.wait_{self.relation}"

    def print_form(self, p: ExprPrinter) -> str:
        default = "sys" if self.pe is not None or self.flag.buffer.scope == "symmetric" else "gpu"
        text = f"T.wait_{self.relation}({p(self.flag)}, {p(self.value, self.flag.buffer.dtype)}"
        text += _peer(p, "peer", self.pe)
        text += f", timeout_cycles={self.timeout_cycles}" if self.timeout_cycles else ""
        return text + (f', scope="{self.scope}"' if self.scope != default else "") + ")"

    def reads(self) -> tuple[BufferRegion, ...]:
        return (_full(self.flag.buffer),)

    def lower(self, args: LowerArgs, analyzer: Analyzer) -> Stmt:
        space = _space(self.flag.buffer, self.pe is not None)
        fn = _template(
            "wait", [RELATIONS[self.relation], SCOPES[self.scope], space], ["SYS", "GLOBAL"]
        )
        call_args: tuple[PrimExpr, ...] = (remote_address(self.flag, self.pe), self.value)
        if self.timeout_cycles > 0:
            distributed = self.pe is not None or self.flag.buffer.scope == "symmetric"
            call_args += (
                IntImm(self.timeout_cycles, int64),
                rank_expr() if distributed else IntImm(-1, int32),
                self.pe if self.pe is not None else IntImm(-1, int32),
            )
        return Evaluate(Call(int32, f"tsir.sync.{fn}", call_args))


@register_tile_op("tl.BarrierBlocksOp")
@node
class BarrierBlocksOp(TileOperatorNode):
    """`T.barrier_blocks` (fence=True) / `T.sync_blocks` (fence=False): every block of every rank
    waits for all the others, over the int32 symmetric buffer starting at `barrier`."""

    barrier: BufferLoad
    fence: bool
    timeout_cycles: int

    def title(self) -> str:
        return "T.barrier_blocks" if self.fence else "T.sync_blocks"

    def print_form(self, p: ExprPrinter) -> str:
        timeout = f", timeout_cycles={self.timeout_cycles}" if self.timeout_cycles else ""
        return f"{self.title()}({p(self.barrier)}{timeout})"

    def writes(self) -> tuple[BufferRegion, ...]:
        return (_full(self.barrier.buffer),)

    def lower(self, args: LowerArgs, analyzer: Analyzer) -> Stmt:
        fn = f"barrier_blocks<{'true' if self.fence else 'false'}>"
        call_args: tuple[PrimExpr, ...] = (address_of(self.barrier),)
        if self.timeout_cycles > 0:
            call_args += (IntImm(self.timeout_cycles, int64),)
        return Evaluate(Call(int32, f"tsir.distributed.{fn}", call_args))
