"""Gemm: C += A @ B on tensor cores (mma.sync m16n8k16, fp16/bf16 in, fp32 accumulate).

A and B live in shared memory, C in a fragment (per-thread registers) whose layout is fixed by the
hardware (LayoutInference assigns it at the STRICT level). The lowering calls `tsir::gemm_ss` from
`gemm_sm80.h`, which reads the operands with ldmatrix from the 128-byte-swizzled tiles.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..buffer import Buffer, BufferRegion
from ..dtype import DataType, int32
from ..errors import BuildError, UnsupportedError
from ..expr import BufferLoad, Call, IntImm, const_value
from ..node import node
from ..stmt import Evaluate, Stmt
from .base import LowerArgs, TileOperatorNode, register_tile_op

if TYPE_CHECKING:
    from ..arith import Analyzer

__all__ = ["Gemm", "warp_partition", "GEMM_INPUT_DTYPES"]

GEMM_INPUT_DTYPES = ("float16", "bfloat16")


def warp_partition(m: int, n: int, warps: int, policy: str = "square") -> tuple[int, int]:
    """Warps along M and N: every warp tile a multiple of 16x16, as square as possible ("square"),
    or all warps along M so each warp owns whole rows ("full_row": row reductions stay in a warp)."""
    if policy == "full_row":
        if m % (warps * 16) or n % 16:
            raise UnsupportedError(
                f"T.gemm policy='full_row': M={m} must be a multiple of 16 x {warps} warps and N={n} of 16"
            )
        return warps, 1
    best: tuple[int, int] | None = None
    for wm in range(1, warps + 1):
        if warps % wm:
            continue
        wn = warps // wm
        if m % (wm * 16) or n % (wn * 16):
            continue
        tm, tn = m // wm, n // wn
        key = (abs(tm - tn), -min(tm, tn))
        if best is None or key < (abs(m // best[0] - n // best[1]), -min(m // best[0], n // best[1])):
            best = (wm, wn)
    if best is None:
        raise UnsupportedError(
            f"T.gemm: a {m}x{n} tile cannot be split over {warps} warps in 16x16 multiples; "
            f"use a tile whose M and N are multiples of 16 x (a factor of {warps})"
        )
    return best


@register_tile_op("tl.Gemm")
@node
class Gemm(TileOperatorNode):
    A: BufferRegion
    B: BufferRegion
    C: BufferRegion
    transpose_A: bool = False
    transpose_B: bool = False
    clear_accum: bool = False
    policy: str = "square"

    def reads(self) -> tuple[BufferRegion, ...]:
        return (self.A, self.B) if self.clear_accum else (self.A, self.B, self.C)

    def writes(self) -> tuple[BufferRegion, ...]:
        return (self.C,)

    @property
    def mnk(self) -> tuple[int, int, int]:
        # Operand regions may carry leading unit dimensions (a pipeline stage index).
        a = [const_value(e) for e in self.A.extents[-2:]]
        b = [const_value(e) for e in self.B.extents[-2:]]
        m, k = (a[1], a[0]) if self.transpose_A else (a[0], a[1])
        n = b[0] if self.transpose_B else b[1]
        return m, n, k  # type: ignore[return-value]

    def lower(self, args: LowerArgs, analyzer: Analyzer) -> Stmt:
        if not args.target.has_mma_sync:
            raise UnsupportedError(f"T.gemm: {args.target} has no mma.sync tensor cores (needs sm_80+)")
        m, n, k = self.mnk
        wm, wn = warp_partition(m, n, args.num_threads // 32, self.policy)
        c_local = args.buffer_remap.get(self.C.buffer) if args.buffer_remap else None
        if c_local is None:
            raise UnsupportedError(f"T.gemm: the accumulator `{self.C.buffer.name}` has no register layout")
        swz_a, ld_a = _shared_layout(args, self.A.buffer)
        swz_b, ld_b = _shared_layout(args, self.B.buffer)
        tmpl = (
            f"gemm_ss<{m}, {n}, {k}, {wm}, {wn}, {_b(self.transpose_A)}, {_b(self.transpose_B)}, "
            f"{swz_a}, {ld_a}, {swz_b}, {ld_b}>"
        )
        call = Evaluate(
            Call(int32, f"tsir.gemm_sm80.{tmpl}", (_addr(self.A), _addr(self.B), _addr_buf(c_local)))
        )
        if not self.clear_accum:
            return call
        from ..expr import Var
        from ..stmt import BufferStore, For, ForKind, seq

        l = Var("l", int32)
        zero = For(l, IntImm(0, int32), IntImm(const_value(c_local.shape[0]), int32), ForKind.UNROLLED,  # type: ignore[arg-type]
                   BufferStore(c_local, IntImm(0, int32).astype(c_local.dtype), (l,)))
        return seq(zero, call)


def _b(x: bool) -> str:
    return "true" if x else "false"


def _shared_layout(args: LowerArgs, buf: Buffer) -> tuple[int, int]:
    """(swizzle bytes, physical row length) of an operand tile, as gemm_ss's template takes them."""
    from ..layout.swizzle import SwizzleMode, detect_swizzle

    cols = const_value(buf.shape[-1])
    layout = args.layout_map.get(buf)
    if layout is None:
        return 0, cols  # type: ignore[return-value]
    mode = detect_swizzle(layout, buf.dtype)
    if mode is not None and mode is not SwizzleMode.NONE:
        return mode.value, cols  # type: ignore[return-value]
    if mode is SwizzleMode.NONE:
        return 0, cols  # type: ignore[return-value]
    # A padded layout: its pitch is where row 1 starts.
    pitch = const_value(args_simplify(layout.linear_forward((0,) * (len(buf.shape) - 2) + (1, 0))))
    if pitch is None:
        raise UnsupportedError(f"T.gemm: the layout of `{buf.name}` is neither swizzled nor padded: {layout}")
    return 0, pitch


def args_simplify(e: Any) -> Any:
    from ..arith import Analyzer

    return Analyzer().simplify(e)


def _addr(r: BufferRegion) -> Call:
    return Call(DataType("handle"), "address_of", (BufferLoad(r.buffer, r.mins),))


def _addr_buf(b: Buffer) -> Call:
    return Call(DataType("handle"), "address_of", (BufferLoad(b, tuple(IntImm(0, int32) for _ in b.shape)),))


def check_gemm(a: BufferRegion, b: BufferRegion, c: BufferRegion, ta: bool, tb: bool) -> None:
    """Build-time checks: what the mma.sync path can do, with errors naming the reason."""
    where = "T.gemm"
    for r, role in ((a, "A"), (b, "B")):
        if r.buffer.scope not in ("shared", "shared.dyn"):
            raise BuildError(f"{where}: operand {role} (`{r.buffer.name}`) must be in shared memory, got {r.buffer.scope}")
        if r.buffer.dtype.name not in GEMM_INPUT_DTYPES:
            raise BuildError(
                f"{where}: operand {role} (`{r.buffer.name}`) is {r.buffer.dtype}; the tensor-core path "
                f"takes float16 or bfloat16 operands"
            )
        if len(r.extents) != 2 or any(const_value(e) is None for e in r.extents):
            raise BuildError(f"{where}: operand {role} must be a constant 2-D tile")
    if a.buffer.dtype != b.buffer.dtype:
        raise BuildError(f"{where}: A is {a.buffer.dtype} but B is {b.buffer.dtype}; they must match")
    if c.buffer.scope != "local.fragment":
        raise BuildError(f"{where}: the accumulator C (`{c.buffer.name}`) must be a T.alloc_fragment buffer")
    if c.buffer.dtype.name != "float32":
        raise BuildError(f"{where}: the accumulator C is {c.buffer.dtype}; the mma.sync path accumulates in float32")
    ae = [const_value(e) for e in a.extents]
    be = [const_value(e) for e in b.extents]
    ce = [const_value(e) for e in c.extents]
    m, ka = (ae[1], ae[0]) if ta else (ae[0], ae[1])
    kb, n = (be[1], be[0]) if tb else (be[0], be[1])
    if ka != kb:
        raise BuildError(f"{where}: A has K = {ka} but B has K = {kb} (transpose_A={ta}, transpose_B={tb})")
    if ce != [m, n]:
        raise BuildError(f"{where}: C is {ce[0]}x{ce[1]} but A @ B is {m}x{n}")
    if ka % 16:
        raise BuildError(f"{where}: the K tile ({ka}) must be a multiple of 16 for mma.m16n8k16")
    if a.buffer.shape[-1] != a.extents[-1] and const_value(a.buffer.shape[-1]) != const_value(a.extents[-1]):
        raise BuildError(f"{where}: operand A must be a whole shared buffer")
