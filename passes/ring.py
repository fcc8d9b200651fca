"""The mbarrier ring of a software pipeline on sm_90 (TMA producers): its markers, shared by the
passes that build it (InjectSoftwarePipeline), split it (WarpSpecialize) and retire its readers
(InjectWgmmaSync), and the calls that make it up.

    AttrStmt(RING_ATTR, (full, empty, stages, warp_specialize), ...)    the ring's whole extent
    AttrStmt(PRODUCE_ATTR, j, ...)     fills stage j % stages: waits `empty`, announces the bytes
                                       on `full` (expect_tx), issues the bulk copies
    AttrStmt(RELEASE_ATTR, j, ...)     frees stage j % stages: each consumer warp arrives on
                                       `empty` once its reads of the stage are done

A ring built from `T.Pipelined(..., pingpong=True)` carries a fifth value, True
(`ring_pingpong`); WarpSpecialize turns that into two markers for InjectPingPong when the ring
has two consumer warpgroups:

    AttrStmt(PINGPONG_ATTR, (lo, hi, free), ...)   the consumers' code: threads [lo, hi), and the
                                                 first named barrier id nothing else uses
    AttrStmt(PINGPONG_LOOP_ATTR, 2, loop)          the consumer loop whose wgmma issues take turns

`full[s]` completes a phase when the producer's expect_tx arrival is in and the bytes have landed
(count 1); `empty[s]` when every consumer warp has released the stage (count: the warps). Round
r = j // stages of stage s waits `full[s]` for parity r % 2 and `empty[s]` for parity (r + 1) % 2
(a fresh barrier counts its "previous" phase as complete, so the first round passes).
"""

from __future__ import annotations

from tsir.buffer import Buffer
from tsir.dtype import DataType, int32
from tsir.expr import BufferLoad, Call, IntImm, PrimExpr
from tsir.stmt import AttrStmt, Evaluate, Stmt

__all__ = [
    "PINGPONG_ATTR",
    "PINGPONG_LOOP_ATTR",
    "PRODUCE_ATTR",
    "RELEASE_ATTR",
    "RING_ATTR",
    "barrier_address",
    "mbarrier_call",
    "parity",
    "ring_of",
    "ring_pingpong",
]

RING_ATTR = "mbarrier_ring"
PRODUCE_ATTR = "ring_produce"
RELEASE_ATTR = "ring_release"
PINGPONG_ATTR = "pingpong_consumers"
PINGPONG_LOOP_ATTR = "pingpong_loop"

_U32 = DataType("uint32")
_HANDLE = DataType("handle")


def barrier_address(bar: Buffer, index: PrimExpr) -> Call:
    """`tsir::shared_u32(&bar[index])`: the shared-window address the mbarrier calls take."""
    addr = Call(_HANDLE, "address_of", (BufferLoad(bar, (index,)),))
    return Call(_U32, "tsir.mbarrier.shared_u32", (addr,))


def mbarrier_call(fn: str, *args: PrimExpr | int) -> Stmt:
    """`tsir::<fn>(args...)` of mbarrier.h as a statement."""
    conv = tuple(IntImm(a, int32) if isinstance(a, int) else a for a in args)
    return Evaluate(Call(int32, f"tsir.mbarrier.{fn}", conv))


def parity(j: PrimExpr, stages: int, producer: bool) -> PrimExpr:
    """The phase parity iteration j waits for: round (j // stages) % 2, flipped for the producer
    (which waits for the consumers' release of the round before)."""
    r = j // stages
    return (r + 1) % 2 if producer else r % 2


def ring_of(s: Stmt) -> tuple[Buffer, Buffer, int] | None:
    """(full, empty, stages) of a RING_ATTR statement, else None."""
    if isinstance(s, AttrStmt) and s.key == RING_ATTR:
        full, empty, stages = s.value[:3]
        return full, empty, int(stages)
    return None


def ring_pingpong(s: Stmt) -> bool:
    """Does the RING_ATTR statement `s` ask for ping-pong of its consumer warpgroups?"""
    return isinstance(s, AttrStmt) and s.key == RING_ATTR and len(s.value) > 4 and bool(s.value[4])
