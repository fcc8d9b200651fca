"""Gemm's Hopper lowerings for an A operand in registers (`T.gemm(P_frag, V_shared, O)` on sm_90a):
`wgmma.mma_async` in its register-A form, registered before the shared-memory wgmma.

Flash attention computes P = softmax(S) in the registers of the first gemm's accumulator, casts it
to 16 bits and multiplies it by V. For 16-bit types, wgmma's A fragment of a 64 x K tile is its
accumulator fragment of a 64 x N=K tile (tsir.layout.wgmma_layouts): a cast in place makes P the
next product's A, with no trip through shared memory.

Lowerings (each after the requirements of gemm_wgmma.py that apply to B and C):
- `wgmma rs` (preferred): A's layout is `make_wgmma_a_fragment` of this gemm's warpgroup partition;
  `wgmma_rs<KIND, wg_n, TRANS_B>(&acc[i], &a[j], desc_b, scale_d)` per m64 tile and K step, A's
  four 32-bit registers per instruction read in place;
- `wgmma rs via shared`: any other layout of A: each thread stores its elements of A into a
  swizzled shared workspace, fences them for the async proxy, the threads synchronize, and the
  shared-memory wgmma reads it (reported under TSIR_EXPLAIN: a round trip and a barrier).

Both fix the accumulator and B as the shared-memory wgmma does (`_wgmma_layouts`), so the choice
between them, made again at lowering time once A is laid out, never changes a fixed layout. A
fragment A that nothing lays out (its first user is this gemm) gets the register-A layout
(`free_a_layout`, asked by `Gemm.infer_layout` at the FREE stage).

An A operand in registers is a form of the gemm, not a decision: the shared-memory lowerings'
"A in shared memory" and these lowerings' "A in registers" refuse silently (`program=False`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from ..buffer import Buffer, BufferRegion
from ..dtype import DataType, int32
from ..errors import UnsupportedError
from ..expr import BufferLoad, Call, IntImm, PrimExpr
from ..layout import Fragment, equivalent, require_fragment
from ..layout.wgmma_layouts import (
    choose_wgmma_swizzle,
    descriptor,
    make_wgmma_a_fragment,
    make_wgmma_smem_layout,
    swizzle_mode,
)
from ..stmt import BufferStore, Evaluate, Stmt, seq
from .base import FRAGMENT, LayoutFact, LowerArgs, OpArgs, requirement
from .fragment_lowering import iterate_fragment
from .gemm import FREE_A_LAYOUTS, Gemm
from .gemm_wgmma import (
    WARPGROUP,
    WGMMA_KINDS,
    _advance,
    _fence_operands,
    _has_wgmma,
    _i,
    _k_tile,
    _operand_mode,
    _plan,
    _registers,
    _sync,
    _tile_shape,
    _warpgroups,
    _wgmma_layouts,
    lower_wgmma_ss,
)

if TYPE_CHECKING:
    from ..arith import Analyzer

__all__ = ["free_a_layout", "wgmma_a_layout"]

_U32 = DataType("uint32")
_U64 = DataType("uint64")
_HANDLE = DataType("handle")


def wgmma_a_layout(op: Gemm, args: OpArgs) -> Fragment | None:
    """The register layout wgmma's rs form reads A in, for this gemm's warpgroup partition (None
    when the gemm has no wgmma plan)."""
    plan = _plan(op, args)
    if isinstance(plan, str):
        return None
    return make_wgmma_a_fragment(plan.m, plan.k, plan.wg_m, op.A.buffer.dtype.bits, plan.wgs_n)


def free_a_layout(op: Gemm, args: OpArgs) -> Fragment | None:
    """For a fragment A that nothing laid out: the register-A layout when the gemm takes a wgmma
    register-A lowering, else None (the caller's mma.sync default)."""
    try:
        chosen = op.select_lowering(args)
    except UnsupportedError:
        return None
    return wgmma_a_layout(op, args) if chosen.name.startswith("wgmma rs") else None


FREE_A_LAYOUTS.append(free_a_layout)


# -- requirements ----------------------------------------------------------------------------------


@requirement("A in registers", program=False)
def _a_is_fragment(op: Gemm, args: OpArgs) -> str | None:
    if op.A.buffer.scope != FRAGMENT:
        return f"`{op.A.buffer.name}` is in {op.A.buffer.scope} memory"
    return None


@requirement("operand types")
def _rs_operands(op: Gemm, args: OpArgs) -> str | None:
    a, b, c = op.A.buffer, op.B.buffer, op.C.buffer
    pair = (a.dtype.name, b.dtype.name)
    if a.dtype.name not in ("float16", "bfloat16") or pair not in WGMMA_KINDS:
        return (
            f"no register-A wgmma for {a.dtype} x {b.dtype} here (16-bit A and B of one type; an "
            f"8-bit A fragment is not the accumulator's layout)"
        )
    if c.dtype.name != "float32":
        return f"the accumulator `{c.name}` is {c.dtype}; wgmma accumulates in float32 here"
    if b.scope not in ("shared", "shared.dyn"):
        return f"operand B (`{b.name}`) is in {b.scope}, not shared memory"
    if _tile_shape(op.B) is None:
        return f"operand B (`{b.name}`) is not a whole 2-D tile of its buffer"
    return None


@requirement("B swizzle")
def _b_swizzle(op: Gemm, args: OpArgs) -> str | None:
    b = op.B.buffer
    fixed = args.layout_map.get(b)
    if fixed is not None:
        mode = swizzle_mode(fixed, b.dtype)
        if mode is None or mode.value == 0:
            return f"operand B (`{b.name}`) has a layout that is not a 32/64/128-byte swizzle"
        return None
    shape = _tile_shape(op.B)
    assert shape is not None
    if choose_wgmma_swizzle(shape, b.dtype) is None:
        return f"operand B's {shape[0]}x{shape[1]} tile takes no 32/64/128-byte swizzle"
    return None


@requirement("A laid out as the wgmma A operand")
def _a_in_operand_layout(op: Gemm, args: OpArgs) -> str | None:
    layout = args.layout_map.get(op.A.buffer)
    if layout is None:
        return f"`{op.A.buffer.name}` has no layout yet"
    want = wgmma_a_layout(op, args)
    if want is not None and isinstance(layout, Fragment) and equivalent(layout, want):
        return None
    return (
        f"`{op.A.buffer.name}` is not laid out as wgmma's A operand (each warpgroup holding its "
        f"64-row tiles as wgmma's accumulator does, e.g. P cast from a full_row accumulator)"
    )


_COMMON = (_has_wgmma, _a_is_fragment, _rs_operands, _warpgroups, _k_tile, _b_swizzle, _registers)


def _rs_layouts(op: Gemm, args: OpArgs) -> dict[Buffer, LayoutFact]:
    """The accumulator's and B's layouts of the shared-memory wgmma; A keeps its own."""
    return {b: f for b, f in _wgmma_layouts(op, args).items() if b is not op.A.buffer}


# -- lowerings -------------------------------------------------------------------------------------


@Gemm.register_lowering("wgmma rs via shared", *_COMMON, first=True, layouts=_rs_layouts)
def _lower_rs_staged(op: Gemm, args: LowerArgs, analyzer: Analyzer) -> Stmt:
    """A's registers -> a swizzled shared tile (first holder of each element), a proxy fence and a
    barrier, and the shared-memory wgmma on it."""
    assert args.add_workspace is not None, "LowerArgs.add_workspace is set by LowerTileOp"
    m, _, k = op.mnk
    a_buf = op.A.buffer
    mode = choose_wgmma_swizzle((m, k), a_buf.dtype)
    if mode is None:
        raise UnsupportedError(
            f"T.gemm: `{a_buf.name}` ({m}x{k}) cannot be staged in a swizzled shared tile"
        )
    swizzle = make_wgmma_smem_layout((m, k), a_buf.dtype, mode)
    # Swizzle units repeat on absolute addresses: the tile starts on a 1024-byte boundary.
    stage = args.add_workspace(f"{a_buf.name}_staged", (m, k), a_buf.dtype, "shared.dyn", 1024)
    a_local = args.buffer_remap[a_buf]

    def store(coords: list[PrimExpr], local: PrimExpr) -> Stmt:
        # The element's swizzled offset, addressed row-major in the (m, k) workspace.
        flat = analyzer.simplify(swizzle.linear_forward(tuple(coords)))
        return BufferStore(stage, BufferLoad(a_local, (local,)), (flat // k, flat % k))

    write = iterate_fragment(
        require_fragment(args.layout_map, a_buf),
        args.thread_var,
        args.num_threads,
        store,  # type: ignore[arg-type]
        only_replica_zero=True,
        name="a",
    )
    fence = Evaluate(Call(int32, "tsir.mbarrier.fence_proxy_async_shared", ()))
    barrier = Evaluate(Call(int32, "sync_threads", ()))
    staged = op.replace(A=BufferRegion.full(stage))
    layouts = {**args.layout_map, stage: swizzle}
    ss = lower_wgmma_ss(staged, replace(args, layout_map=layouts), analyzer)
    return seq(write, fence, barrier, ss)


@Gemm.register_lowering(
    "wgmma rs", *_COMMON, _a_in_operand_layout, first=True, preferred=True, layouts=_rs_layouts
)
def _lower_rs(op: Gemm, args: LowerArgs, analyzer: Analyzer) -> Stmt:
    plan = _plan(op, args)
    assert not isinstance(plan, str)
    c_local = args.buffer_remap.get(op.C.buffer)
    a_local = args.buffer_remap.get(op.A.buffer)
    if c_local is None or a_local is None:
        raise UnsupportedError(
            f"T.gemm: the accumulator `{op.C.buffer.name}` or the A fragment "
            f"`{op.A.buffer.name}` has no register layout"
        )
    b_dt = op.B.buffer.dtype
    b_shape = _tile_shape(op.B)
    assert b_shape is not None
    mode_b = _operand_mode(op.B, args)
    wg_n, ks = plan.wg_n, plan.kstep
    db0 = descriptor(b_shape, b_dt, mode_b, k_major=plan.b_k_major, mn0=0, k0=0)

    def start(mn0: int, k0: int) -> int:
        return descriptor(b_shape, b_dt, mode_b, k_major=plan.b_k_major, mn0=mn0, k0=k0).start

    per_b = start(wg_n, 0) - db0.start if plan.wgs_n > 1 else 0
    for i in range(plan.wgs_n):
        assert start(i * wg_n, 0) - db0.start == i * per_b
    wn: PrimExpr = args.thread_var // WARPGROUP % plan.wgs_n if plan.wgs_n > 1 else IntImm(0, int32)
    first_b = Call(_HANDLE, "address_of", (BufferLoad(op.B.buffer, op.B.mins),))
    db = Call(
        _U64,
        "tsir.wgmma.wgmma_desc",
        (
            Call(_U32, "tsir.mbarrier.shared_u32", (first_b,)),
            _i(db0.lbo),
            _i(db0.sbo),
            _i(db0.layout_type),
        ),
    )
    kind = WGMMA_KINDS[(op.A.buffer.dtype.name, b_dt.name)]
    fn = f"tsir.wgmma.wgmma_rs<{kind}, {wg_n}, {0 if plan.b_k_major else 1}>"
    steps = plan.k // ks
    calls: list[Stmt] = []
    for kk in range(steps):
        for mt in range(plan.wg_m // 64):
            desc_b = _advance(db, start(0, kk * ks) - db0.start, wn, per_b)
            acc = Call(_HANDLE, "address_of", (BufferLoad(c_local, (_i(mt * wg_n // 2),)),))
            regs = Call(_HANDLE, "address_of", (BufferLoad(a_local, (_i((mt * steps + kk) * 8),)),))
            scale = _i(0 if op.clear_accum and kk == 0 else 1)
            calls.append(Evaluate(Call(int32, fn, (acc, regs, desc_b, scale))))
    pin = _fence_operands(c_local)
    return seq(
        pin, _sync("wgmma_fence"), *calls, _sync("wgmma_commit"), _sync("wgmma_wait<0>"), pin
    )
