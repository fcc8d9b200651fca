"""Gemm with the A operand in registers (`T.gemm(A_frag, B_shared, C)`, sm_80+): the lowerings
of the mma.sync path for a fragment A, registered into `Gemm`.

Flash attention computes `P = softmax(S)` in the registers of the first gemm's accumulator, casts
it to 16 bits (`acc_s_cast`) and multiplies it by V: P never needs to leave the registers when it
is laid out as mma.m16n8k16's A operand (`tsir.layout.make_mma_a_fragment`). That is the case when
the first gemm's warps split only M the way this one's do: the m16n8k16 accumulator of a tile
*is* the A-operand layout of the next m16n8k16 after a cast in place (the derivation from the PTX
fragment tables is in codegen/include/tsir/gemm_sm80.h, above `gemm_rs`).

Lowerings, after the shared-memory `mma.sync` of gemm.py:
- `mma.sync rs` (preferred): A's layout is the A-operand layout of this gemm's warp partition;
  calls `tsir::gemm_rs`, which reads A from the registers and B with ldmatrix;
- `mma.sync rs via shared`: any other layout of A: each thread stores its elements of A into a
  swizzled shared workspace, the block synchronizes, and `tsir::gemm_ss` reads it (reported under
  TSIR_EXPLAIN, since it costs a round trip through shared memory and a barrier).

Layouts: both fix C and B as the shared path does (`_mma_sync_layouts`); A keeps whatever layout
inference gives it (the cast's, propagated from the accumulator), and when nothing gives it one
(A's first user is this gemm), the FREE stage gives it the A-operand layout (`Gemm.infer_layout`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..buffer import Buffer, make_buffer
from ..dtype import DataType, int32
from ..expr import BufferLoad, Call, IntImm, PrimExpr, Var, const_value
from ..layout import Fragment, equivalent, require_fragment
from ..layout.swizzle import make_swizzled_layout
from ..stmt import BufferStore, Evaluate, For, ForKind, Stmt, seq
from .base import FRAGMENT, LayoutFact, LowerArgs, OpArgs, requirement
from .fragment_lowering import iterate_fragment
from .gemm import (
    Gemm,
    _b,
    _has_mma_sync,
    _mma_sync_dtypes,
    _mma_sync_layouts,
    _shared_layout,
    operand_a_layout,
    swizzle_args,
    warp_partition,
)

if TYPE_CHECKING:
    from ..arith import Analyzer

__all__: list[str] = []


@requirement("A in registers")
def _a_is_fragment(op: Gemm, args: OpArgs) -> str | None:
    if op.A.buffer.scope != FRAGMENT:
        return f"`{op.A.buffer.name}` is in {op.A.buffer.scope} memory"
    return None


@requirement("A laid out as the mma A operand")
def _a_in_operand_layout(op: Gemm, args: OpArgs) -> str | None:
    layout = args.layout_map.get(op.A.buffer)
    if layout is None:
        return f"`{op.A.buffer.name}` has no layout yet"
    want = operand_a_layout(op, args.num_threads)
    if isinstance(layout, Fragment) and equivalent(layout, want):
        return None
    return (
        f"`{op.A.buffer.name}` is not laid out as this gemm's A operand (its writer splits the "
        f"warps another way, e.g. an accumulator whose warps also split N)"
    )


def _c_and_b_layouts(op: Gemm, args: OpArgs) -> dict[Buffer, LayoutFact]:
    return _mma_sync_layouts(op, args)


def _call(op: Gemm, args: LowerArgs, name: str, tmpl: str, a_addr: PrimExpr) -> Stmt:
    c_local = args.buffer_remap[op.C.buffer]
    handle = DataType("handle")
    b_addr = Call(handle, "address_of", (BufferLoad(op.B.buffer, op.B.mins),))
    c_addr = Call(handle, "address_of", (BufferLoad(c_local, (IntImm(0, int32),)),))
    call = Evaluate(Call(int32, f"tsir.gemm_sm80.{name}<{tmpl}>", (a_addr, b_addr, c_addr)))
    if not op.clear_accum:
        return call
    l = Var("l", int32)
    size = IntImm(const_value(c_local.shape[0]), int32)  # pyright: ignore[reportArgumentType]  # a constant here: checked by const_value above
    zero = For(
        l,
        IntImm(0, int32),
        size,
        ForKind.UNROLLED,
        BufferStore(c_local, IntImm(0, int32).astype(c_local.dtype), (l,)),
    )
    return seq(zero, call)


@Gemm.register_lowering(
    "mma.sync rs",
    _has_mma_sync,
    _mma_sync_dtypes,
    _a_is_fragment,
    _a_in_operand_layout,
    preferred=True,
    layouts=_c_and_b_layouts,
)
def _lower_rs(op: Gemm, args: LowerArgs, analyzer: Analyzer) -> Stmt:
    m, n, k = op.mnk
    wm, wn = warp_partition(m, n, args.num_threads // 32, op.policy)
    swz_b, ld_b = _shared_layout(args, op.B.buffer)
    tmpl = f"{m}, {n}, {k}, {wm}, {wn}, {_b(op.transpose_B)}, {swz_b}, {ld_b}"
    a_local = args.buffer_remap[op.A.buffer]
    a_addr = Call(DataType("handle"), "address_of", (BufferLoad(a_local, (IntImm(0, int32),)),))
    return _call(op, args, "gemm_rs", tmpl, a_addr)


@Gemm.register_lowering(
    "mma.sync rs via shared",
    _has_mma_sync,
    _mma_sync_dtypes,
    _a_is_fragment,
    layouts=_c_and_b_layouts,
)
def _lower_rs_staged(op: Gemm, args: LowerArgs, analyzer: Analyzer) -> Stmt:
    """A's registers -> a swizzled shared tile (first holder of each element), a barrier, and the
    shared-memory gemm on it."""
    assert args.add_workspace is not None, "LowerArgs.add_workspace is set by LowerTileOp"
    m, n, k = op.mnk
    wm, wn = warp_partition(m, n, args.num_threads // 32, op.policy)
    a_buf = op.A.buffer
    swizzle = make_swizzled_layout((m, k), a_buf.dtype, True)
    size = 1
    for e in swizzle.const_output_shape():
        size *= e
    stage = args.add_workspace(f"{a_buf.name}_staged", (size,), a_buf.dtype, "shared.dyn")
    a_local = args.buffer_remap[a_buf]

    def store(coords: list[PrimExpr], local: PrimExpr) -> Stmt:
        flat = analyzer.simplify(swizzle.linear_forward(tuple(coords)))
        return BufferStore(stage, BufferLoad(a_local, (local,)), (flat,))

    write = iterate_fragment(
        require_fragment(args.layout_map, a_buf),
        args.thread_var,
        args.num_threads,
        store,
        only_replica_zero=True,
        name="a",
    )
    swz_a, ld_a = swizzle_args(swizzle, make_buffer("staged", (m, k), a_buf.dtype, "shared.dyn"))
    swz_b, ld_b = _shared_layout(args, op.B.buffer)
    tmpl = (
        f"{m}, {n}, {k}, {wm}, {wn}, false, {_b(op.transpose_B)}, {swz_a}, {ld_a}, {swz_b}, {ld_b}"
    )
    a_addr = Call(DataType("handle"), "address_of", (BufferLoad(stage, (IntImm(0, int32),)),))
    barrier = Evaluate(Call(int32, "sync_threads", ()))
    return seq(write, barrier, _call(op, args, "gemm_ss", tmpl, a_addr))
