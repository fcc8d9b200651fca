"""Gemm's Hopper lowering: `T.gemm` as `wgmma.mma_async` (sm_90a), registered before mma.sync.

The accumulator is split over `wgs_m x wgs_n` warpgroups (`WgmmaPlan`), each computing a
`wg_m x wg_n` piece as `wg_m / 64` m64nNk instructions per K step, B (and A) read from shared
memory through matrix descriptors (tsir.layout.wgmma_layouts). The lowering emits only the
instructions: one descriptor per operand (`wgmma_desc` of the tile's first element), advanced to
each instruction's origin, and `wgmma_ss<KIND, wg_n, TRANS_A, TRANS_B>(&acc[i], da, db, scale_d)`.
The instructions are fenced, committed and waited for right there (the gemm is complete when
its code ends, like mma.sync's); the InjectWgmmaSync pass, which sees the whole loop, then moves
the wait to where the results are needed (the next k-block's loads overlap this one's math).

Requirements (named; when one fails on an automatic choice mma.sync is used and the reason is
reported under TSIR_EXPLAIN; `policy="wgmma"` makes it an error):
- `wgmma tensor cores`: the target is sm_90a;
- `operand types`: f16 x f16, bf16 x bf16 or float8 (e4m3/e5m2) pairs, fp32 accumulator, A and B
  in shared memory, each a whole 2-D tile of its buffer;
- `warpgroups`: the threads are whole warpgroups that split C into `wg_m x wg_n` pieces,
  `wg_m % 64 == 0`, `wg_n` a wgmma N (8..256, step 8); policy "full_row" needs one m64 tile per
  warpgroup (each row in one warp, as row reductions expect);
- `K tile`: a multiple of the instruction K (16, or 32 for float8);
- `operand swizzle`: each operand tile takes a 32/64/128-byte swizzle (or already has one);
- `accumulator registers`: at most 192 fp32 registers per thread.

Layouts (STRICT): C in `make_wgmma_c_fragment` (an `MmaTile` plan when that is mma.sync's layout
too, one m64 tile per warpgroup: reductions and the mma-rows lowering then apply unchanged); each
operand tile in the widest swizzle it takes, which TMA writes as it stands.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..arith import Analyzer
from ..buffer import Buffer, BufferRegion
from ..dtype import DataType, int32
from ..errors import UnsupportedError
from ..expr import BufferLoad, Call, IntImm, PrimExpr, const_value
from ..layout.analysis import equivalent
from ..layout.gemm_layouts import make_mma_c_fragment
from ..layout.swizzle import SwizzleMode
from ..layout.wgmma_layouts import (
    choose_wgmma_swizzle,
    descriptor,
    instruction_k,
    make_wgmma_c_fragment,
    make_wgmma_smem_layout,
    swizzle_mode,
    valid_wgmma_n,
    wgmma_operand_error,
)
from ..stmt import Evaluate, Stmt, seq
from .base import LayoutFact, LowerArgs, OpArgs, requirement
from .gemm import Gemm, GemmPolicy
from .planned_layouts import MmaTile

__all__ = ["MAX_ACCUMULATOR_REGISTERS", "WGMMA_KINDS", "WgmmaPlan", "wgmma_plan"]

WGMMA_KINDS = {
    ("float16", "float16"): "tsir::kWgmmaF16",
    ("bfloat16", "bfloat16"): "tsir::kWgmmaBF16",
    ("float8_e4m3", "float8_e4m3"): "tsir::kWgmmaE4M3E4M3",
    ("float8_e4m3", "float8_e5m2"): "tsir::kWgmmaE4M3E5M2",
    ("float8_e5m2", "float8_e4m3"): "tsir::kWgmmaE5M2E4M3",
    ("float8_e5m2", "float8_e5m2"): "tsir::kWgmmaE5M2E5M2",
}
# Accumulators beyond this leave too few registers for addresses and the epilogue (a consumer
# warpgroup gets 232-240 registers after setmaxnreg).
MAX_ACCUMULATOR_REGISTERS = 192
WARPGROUP = 128
_U32 = DataType("uint32")
_U64 = DataType("uint64")
_HANDLE = DataType("handle")


@dataclass(frozen=True, slots=True)
class WgmmaPlan:
    """How one gemm maps onto warpgroup MMAs."""

    m: int
    n: int
    k: int
    wgs_m: int
    wgs_n: int
    kstep: int
    a_k_major: bool
    b_k_major: bool

    @property
    def wg_m(self) -> int:
        return self.m // self.wgs_m

    @property
    def wg_n(self) -> int:
        return self.n // self.wgs_n

    @property
    def accumulator_registers(self) -> int:
        return self.wg_m // 64 * self.wg_n // 2


def _tile_shape(r: BufferRegion) -> tuple[int, int] | None:
    """The (rows, cols) of an operand that is a whole 2-D tile of its buffer (leading unit
    dimensions allowed: a pipeline's stage index), else None."""
    shape = [const_value(d) for d in r.buffer.shape]
    ext = [const_value(e) for e in r.extents]
    if None in shape or None in ext or len(shape) < 2 or ext[-2:] != shape[-2:]:
        return None
    if any(e != 1 for e in ext[:-2]) or any(const_value(x) != 0 for x in r.mins[-2:]):
        return None
    return shape[-2], shape[-1]  # pyright: ignore[reportReturnType]  # a constant here: checked by const_value above


def _partition(
    op: Gemm, m: int, n: int, threads: int, args: OpArgs | None = None
) -> tuple[int, int] | str:
    if threads % WARPGROUP:
        return f"{threads} threads are not whole warpgroups of 128"
    groups = threads // WARPGROUP
    # An N-major B piece must start on a swizzle span (its descriptor addresses whole spans).
    shape_b = _tile_shape(op.B)
    mode_b = None
    if shape_b is not None and not op.transpose_B:
        fixed = args.layout_map.get(op.B.buffer) if args is not None else None
        mode_b = (
            swizzle_mode(fixed, op.B.buffer.dtype)
            if fixed is not None
            else choose_wgmma_swizzle(shape_b, op.B.buffer.dtype)
        )
    span_b = (
        mode_b.value // op.B.buffer.dtype.bytes if mode_b not in (None, SwizzleMode.NONE) else 8
    )
    tried = []
    for wgs_n in range(1, groups + 1):
        if groups % wgs_n:
            continue
        wgs_m = groups // wgs_n
        if m % wgs_m or n % wgs_n:
            continue
        wg_m, wg_n = m // wgs_m, n // wgs_n
        tried.append(f"{wg_m}x{wg_n}")
        if wg_m % 64 or not valid_wgmma_n(wg_n):
            continue
        if wgs_n > 1 and not op.transpose_B and wg_n % span_b:
            continue
        if op.policy is GemmPolicy.FULL_ROW and (wgs_n != 1 or wg_m != 64):
            continue
        return wgs_m, wgs_n
    want = (
        "one 64-row tile per warpgroup (policy='full_row')"
        if op.policy is GemmPolicy.FULL_ROW
        else ("pieces of a multiple of 64 rows by 8..256 columns")
    )
    return (
        f"a {m}x{n} accumulator over {groups} warpgroup(s) gives no split into {want} "
        f"(tried {', '.join(tried) or 'none'})"
    )


def wgmma_plan(op: Gemm, args: OpArgs) -> WgmmaPlan | str:
    """The plan, or the first requirement it breaks (as `<requirement>: <why>`)."""
    for r in _REQUIREMENTS:
        why = r.check(op, args)
        if why is not None:
            return f"{r.name}: {why}"
    return _plan(op, args)


def _plan(op: Gemm, args: OpArgs) -> WgmmaPlan | str:
    m, n, k = op.mnk
    part = _partition(op, m, n, args.num_threads, args)
    if isinstance(part, str):
        return part
    return WgmmaPlan(
        m,
        n,
        k,
        part[0],
        part[1],
        instruction_k(op.A.buffer.dtype),
        not op.transpose_A,
        op.transpose_B,
    )


# -- requirements ----------------------------------------------------------------------------------


@requirement("wgmma tensor cores", program=False)
def _has_wgmma(op: Gemm, args: OpArgs) -> str | None:
    return None if args.target.has_wgmma else f"{args.target} has no wgmma (sm_90a only)"


@requirement("A in shared memory", program=False)
def _a_in_shared(op: Gemm, args: OpArgs) -> str | None:
    """A fragment A is the register-A form (gemm_wgmma_rs.py): nothing to report here."""
    if op.A.buffer.scope == "local.fragment":
        return f"`{op.A.buffer.name}` is a fragment (registers)"
    return None


@requirement("operand types")
def _operands(op: Gemm, args: OpArgs) -> str | None:
    a, b, c = op.A.buffer, op.B.buffer, op.C.buffer
    if (a.dtype.name, b.dtype.name) not in WGMMA_KINDS:
        return f"no wgmma for {a.dtype} x {b.dtype}"
    if c.dtype.name != "float32":
        return f"the accumulator `{c.name}` is {c.dtype}; wgmma accumulates in float32 here"
    for r, role in ((op.A, "A"), (op.B, "B")):
        if r.buffer.scope not in ("shared", "shared.dyn"):
            return f"operand {role} (`{r.buffer.name}`) is in {r.buffer.scope}, not shared memory"
        if _tile_shape(r) is None:
            return f"operand {role} (`{r.buffer.name}`) is not a whole 2-D tile of its buffer"
    for r, role, k_major in ((op.A, "A", not op.transpose_A), (op.B, "B", op.transpose_B)):
        err = wgmma_operand_error(r.buffer.dtype, k_major)
        if err is not None:
            return f"operand {role}: {err}"
    return None


@requirement("warpgroups")
def _warpgroups(op: Gemm, args: OpArgs) -> str | None:
    m, n, _ = op.mnk
    part = _partition(op, m, n, args.num_threads, args)
    return part if isinstance(part, str) else None


@requirement("K tile")
def _k_tile(op: Gemm, args: OpArgs) -> str | None:
    k = op.mnk[2]
    step = instruction_k(op.A.buffer.dtype)
    return None if k % step == 0 else f"K = {k} is not a multiple of the instruction's {step}"


@requirement("operand swizzle")
def _swizzles(op: Gemm, args: OpArgs) -> str | None:
    for r, role in ((op.A, "A"), (op.B, "B")):
        shape = _tile_shape(r)
        assert shape is not None
        fixed = args.layout_map.get(r.buffer)
        if fixed is not None:
            mode = swizzle_mode(fixed, r.buffer.dtype)
            if mode is None or mode is SwizzleMode.NONE:
                return f"operand {role} (`{r.buffer.name}`) has a layout that is not a 32/64/128-byte swizzle"
        elif choose_wgmma_swizzle(shape, r.buffer.dtype) is None:
            return f"operand {role}'s {shape[0]}x{shape[1]} tile takes no 32/64/128-byte swizzle"
    return None


@requirement("accumulator registers")
def _registers(op: Gemm, args: OpArgs) -> str | None:
    plan = _plan(op, args)
    assert not isinstance(plan, str)
    regs = plan.accumulator_registers
    if regs <= MAX_ACCUMULATOR_REGISTERS:
        return None
    return (
        f"a {plan.wg_m}x{plan.wg_n} piece per warpgroup needs {regs} fp32 registers per thread, more "
        f"than {MAX_ACCUMULATOR_REGISTERS}; use more threads or a smaller tile"
    )


_REQUIREMENTS = (_has_wgmma, _a_in_shared, _operands, _warpgroups, _k_tile, _swizzles, _registers)


# -- layouts ---------------------------------------------------------------------------------------


def _operand_mode(r: BufferRegion, args: OpArgs) -> SwizzleMode:
    fixed = args.layout_map.get(r.buffer)
    if fixed is not None:
        mode = swizzle_mode(fixed, r.buffer.dtype)
        assert mode is not None
        return mode
    shape = _tile_shape(r)
    assert shape is not None
    mode = choose_wgmma_swizzle(shape, r.buffer.dtype)
    assert mode is not None
    return mode


def _wgmma_layouts(op: Gemm, args: OpArgs) -> dict[Buffer, LayoutFact]:
    plan = _plan(op, args)
    assert not isinstance(plan, str)
    frag = make_wgmma_c_fragment(plan.m, plan.n, plan.wg_m, plan.wg_n)
    tile = None
    if plan.wg_m == 64 and plan.wgs_n == 1 and plan.m % 16 == 0:
        mma = make_mma_c_fragment(plan.m, plan.n, 16, plan.n)
        if equivalent(frag, mma):
            tile = MmaTile(plan.m, plan.n, plan.m // 16, 1)
    out = {op.C.buffer: LayoutFact(frag, tile)}
    for r in (op.A, op.B):
        if r.buffer not in args.layout_map and r.buffer not in out:
            shape = tuple(const_value(d) for d in r.buffer.shape)
            out[r.buffer] = LayoutFact(
                make_wgmma_smem_layout(shape, r.buffer.dtype, _operand_mode(r, args))  # pyright: ignore[reportArgumentType]  # a constant here: checked by const_value above
            )
    return out


# -- lowering --------------------------------------------------------------------------------------


def _address(r: BufferRegion) -> Call:
    """The shared-window address of the operand tile's first element (its layout maps it)."""
    first = Call(_HANDLE, "address_of", (BufferLoad(r.buffer, r.mins),))
    return Call(_U32, "tsir.mbarrier.shared_u32", (first,))


@Gemm.register_lowering("wgmma", *_REQUIREMENTS, first=True, preferred=True, layouts=_wgmma_layouts)
def lower_wgmma_ss(op: Gemm, args: LowerArgs, analyzer: Analyzer) -> Stmt:
    plan = _plan(op, args)
    assert not isinstance(plan, str)
    c_local = args.buffer_remap.get(op.C.buffer)
    if c_local is None:
        raise UnsupportedError(
            f"T.gemm: the accumulator `{op.C.buffer.name}` has no register layout"
        )
    a_dt, b_dt = op.A.buffer.dtype, op.B.buffer.dtype
    a_shape, b_shape = _tile_shape(op.A), _tile_shape(op.B)
    assert a_shape is not None and b_shape is not None
    mode_a, mode_b = _operand_mode(op.A, args), _operand_mode(op.B, args)
    wg_m, wg_n, ks = plan.wg_m, plan.wg_n, plan.kstep

    def start(
        shape: tuple[int, int], dt: DataType, mode: SwizzleMode, km: bool, mn0: int, k0: int
    ) -> int:
        return descriptor(shape, dt, mode, k_major=km, mn0=mn0, k0=k0).start

    da0 = descriptor(a_shape, a_dt, mode_a, k_major=plan.a_k_major, mn0=0, k0=0)
    db0 = descriptor(b_shape, b_dt, mode_b, k_major=plan.b_k_major, mn0=0, k0=0)
    # Offsets of a warpgroup's piece: linear in its index along M (A) or N (B).
    per_a = (
        start(a_shape, a_dt, mode_a, plan.a_k_major, wg_m, 0) - da0.start if plan.wgs_m > 1 else 0
    )
    per_b = (
        start(b_shape, b_dt, mode_b, plan.b_k_major, wg_n, 0) - db0.start if plan.wgs_n > 1 else 0
    )
    for i in range(plan.wgs_m):
        assert start(a_shape, a_dt, mode_a, plan.a_k_major, i * wg_m, 0) - da0.start == i * per_a
    for i in range(plan.wgs_n):
        assert start(b_shape, b_dt, mode_b, plan.b_k_major, i * wg_n, 0) - db0.start == i * per_b
    wg: PrimExpr = args.thread_var // WARPGROUP if plan.wgs_m * plan.wgs_n > 1 else IntImm(0, int32)
    wm: PrimExpr = wg // plan.wgs_n if plan.wgs_n > 1 else wg
    wn: PrimExpr = wg % plan.wgs_n
    # Each instruction names its operands' tiles inline (a descriptor of the tile's first element,
    # advanced): what it reads is then visible to ThreadSync; the C++ compiler shares the common
    # part.
    da = Call(
        _U64,
        "tsir.wgmma.wgmma_desc",
        (_address(op.A), _i(da0.lbo), _i(da0.sbo), _i(da0.layout_type)),
    )
    db = Call(
        _U64,
        "tsir.wgmma.wgmma_desc",
        (_address(op.B), _i(db0.lbo), _i(db0.sbo), _i(db0.layout_type)),
    )
    kind = WGMMA_KINDS[(a_dt.name, b_dt.name)]
    trans_a = 0 if plan.a_k_major else 1
    trans_b = 0 if plan.b_k_major else 1
    fn = f"tsir.wgmma.wgmma_ss<{kind}, {wg_n}, {trans_a}, {trans_b}>"
    calls: list[Stmt] = []
    for kk in range(plan.k // ks):
        for mt in range(wg_m // 64):
            off_a = start(a_shape, a_dt, mode_a, plan.a_k_major, mt * 64, kk * ks) - da0.start
            off_b = start(b_shape, b_dt, mode_b, plan.b_k_major, 0, kk * ks) - db0.start
            desc_a = _advance(da, off_a, wm, per_a)
            desc_b = _advance(db, off_b, wn, per_b)
            acc = Call(
                _HANDLE, "address_of", (BufferLoad(c_local, (IntImm(mt * wg_n // 2, int32),)),)
            )
            scale = IntImm(0 if op.clear_accum and kk == 0 else 1, int32)
            calls.append(Evaluate(Call(int32, fn, (acc, desc_a, desc_b, scale))))
    issue = seq(*calls)
    # Synchronous on its own: InjectWgmmaSync lifts the wait to where the results are needed.
    pin = _fence_operands(c_local)
    return seq(pin, _sync("wgmma_fence"), issue, _sync("wgmma_commit"), _sync("wgmma_wait<0>"), pin)


def _sync(fn: str) -> Stmt:
    return Evaluate(Call(int32, f"tsir.wgmma.{fn}", ()))


def _fence_operands(acc: Buffer) -> Stmt:
    """`wgmma_fence_operands<L>(acc)`: the C++ compiler keeps the accumulator's accesses on their
    side of this point (it cannot see that wgmma writes the registers later)."""
    n = const_value(acc.shape[0])
    first = Call(_HANDLE, "address_of", (BufferLoad(acc, (IntImm(0, int32),)),))
    return Evaluate(Call(int32, f"tsir.wgmma.wgmma_fence_operands<{n}>", (first,)))


def _advance(desc: Call, const: int, piece: PrimExpr, per: int) -> PrimExpr:
    """The descriptor moved to an instruction's origin (`const + piece * per` bytes)."""
    off: PrimExpr = IntImm(const, int32)
    if per:
        off = piece * per + const if const else piece * per
    if isinstance(off, IntImm) and off.value == 0:
        return desc
    return Call(_U64, "tsir.wgmma.wgmma_desc_advance", (desc, off))


def _i(v: int) -> IntImm:
    return IntImm(v, int32)
