"""Gemm: `T.gemm(A, B, C)`, C += A @ B on tensor cores.

A and B live in shared memory (or A in a fragment: gemm_rs.py), C in a fragment (per-thread
registers) whose layout the chosen lowering fixes (LayoutInference asks for it at the STRICT level,
with the operand tiles' swizzles).

Lowerings, each with its STRICT layouts:
- `mma.sync` (sm_80+, fp16/bf16 in, fp32 accumulate): C tiled over warps in m16n8 tiles
  (`warp_partition`), operands in 128-byte-swizzled tiles; calls `tsir::gemm_ss` from
  `gemm_sm80.h`, which reads them with ldmatrix.

A Hopper path registers before it: `@Gemm.register_lowering("wgmma", has_wgmma, warpgroups, ...,
first=True, preferred=True, layouts=wgmma_layouts)`, its requirements the predicates of
docs/hopper_design.md section 1; when one fails, mma.sync is used and the reason reported under
TSIR_EXPLAIN; `requested_lowering` (a `policy=` that names a path) makes a failure an error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..arith import Analyzer
from ..buffer import Buffer, BufferRegion
from ..dtype import DataType, int32
from ..errors import BuildError, UnsupportedError, user_location
from ..expr import BufferLoad, Call, IntImm, Var, const_value
from ..layout import Fragment, Layout, make_mma_a_fragment, make_mma_c_fragment
from ..layout.numeric import const_shape
from ..layout.swizzle import SwizzleMode, detect_swizzle, make_swizzled_layout
from ..node import node
from ..stmt import BufferStore, Evaluate, For, ForKind, Stmt, seq
from .base import (
    InferLevel,
    LayoutFact,
    LayoutInferArgs,
    LowerArgs,
    OpArgs,
    OpEnum,
    TileOperatorNode,
    coerce_enums,
    register_tile_op,
    requirement,
)
from .planned_layouts import MmaTile

if TYPE_CHECKING:
    from ..printer_expr import ExprPrinter

__all__ = [
    "Gemm",
    "GemmPolicy",
    "warp_partition",
    "GEMM_INPUT_DTYPES",
    "operand_a_layout",
    "swizzle_args",
]


class GemmPolicy(OpEnum):
    """How the accumulator is split over warps, or which tensor-core path to take."""

    SQUARE = "square"
    """Warp tiles as square as possible."""
    FULL_ROW = "full_row"
    """All warps along M: each warp owns whole rows (row reductions stay in a warp)."""
    WGMMA = "wgmma"
    """Force the warpgroup path (sm_90a, gemm_wgmma.py): an error when it cannot take the gemm."""
    MMA = "mma"
    """Force the mma.sync path (square warp tiles), also on sm_90a."""


GEMM_INPUT_DTYPES = ("float16", "bfloat16")
# 8-bit operands: the wgmma path only (K-major A and B, fp32 accumulation).
GEMM_FP8_DTYPES = ("float8_e4m3", "float8_e5m2")
_FORCED = {GemmPolicy.WGMMA: "wgmma", GemmPolicy.MMA: "mma.sync"}
# Layouts other lowering modules offer for a fragment A that nothing laid out (gemm_wgmma_rs.py:
# wgmma's A fragment when a wgmma register-A form runs); the first offer wins, else mma.sync's.
FREE_A_LAYOUTS: list[Callable[[Gemm, OpArgs], Fragment | None]] = []


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
        if best is None or key < (
            abs(m // best[0] - n // best[1]),
            -min(m // best[0], n // best[1]),
        ):
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
    policy: GemmPolicy = GemmPolicy.SQUARE

    def __post_init__(self) -> None:
        coerce_enums(self, policy=GemmPolicy)

    def title(self) -> str:
        return "T.gemm"

    def requested_lowering(self) -> str | None:
        return _FORCED.get(self.policy)

    def print_form(self, p: ExprPrinter) -> str:
        try:  # T.gemm rebuilds only what the builder accepts (not a pipeline's staged operands)
            check_gemm(self.A, self.B, self.C, self.transpose_A, self.transpose_B)
        except (BuildError, UnsupportedError):
            return TileOperatorNode.print_form(self, p)
        kw = "".join(
            f", {name}=True"
            for name in ("transpose_A", "transpose_B", "clear_accum")
            if getattr(self, name)
        )
        if self.policy is not GemmPolicy.SQUARE:
            kw += f', policy="{self.policy}"'
        return f"T.gemm({p.region(self.A)}, {p.region(self.B)}, {p.region(self.C)}{kw})"

    def infer_layout(self, args: LayoutInferArgs, level: InferLevel) -> dict[Buffer, LayoutFact]:
        """STRICT: the layouts of the lowering that will run (the accumulator's registers, the
        operand tiles' swizzles unless something fixed them already). FREE: a fragment A that
        nothing laid out (this gemm is its first user) gets the mma A-operand layout."""
        if level is InferLevel.FREE:
            out = TileOperatorNode.infer_layout(self, args, level)
            a = self.A.buffer
            if a.scope == "local.fragment" and a not in args.layout_map:
                offered = (f(self, args) for f in FREE_A_LAYOUTS)
                chosen = next((x for x in offered if x is not None), None)
                out[a] = LayoutFact(chosen or operand_a_layout(self, args.num_threads))
            return out
        if level is not InferLevel.STRICT:
            return TileOperatorNode.infer_layout(self, args, level)
        chosen = self.select_lowering(args)
        return chosen.layouts(self, args) if chosen.layouts is not None else {}

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
        return m, n, k  # pyright: ignore[reportReturnType]  # a constant here: checked by const_value above


# -- mma.sync (sm_80+) -----------------------------------------------------------------------------


@requirement("mma.sync tensor cores")
def _has_mma_sync(op: Gemm, args: OpArgs) -> str | None:
    if args.target.has_mma_sync:
        return None
    return f"{args.target} has no mma.sync tensor cores (needs sm_80+)"


@requirement("A in shared memory")
def _a_in_shared(op: Gemm, args: OpArgs) -> str | None:
    if op.A.buffer.scope == "local.fragment":
        return f"`{op.A.buffer.name}` is a fragment (registers)"
    return None


def _mma_sync_layouts(op: Gemm, args: OpArgs) -> dict[Buffer, LayoutFact]:
    """The accumulator's m16n8 register tiles over the warps, and 128-byte-swizzled operand tiles
    (the K dimension innermost for ldmatrix) unless something fixed them already."""
    m, n, _ = op.mnk
    wm, wn = warp_partition(m, n, args.num_threads // 32, op.policy)
    out = {
        op.C.buffer: LayoutFact(make_mma_c_fragment(m, n, m // wm, n // wn), MmaTile(m, n, wm, wn))
    }
    for r, k_inner in ((op.A, not op.transpose_A), (op.B, op.transpose_B)):
        if r.buffer.scope == "local.fragment":
            continue  # registers: gemm_rs.py
        if r.buffer not in args.layout_map and r.buffer not in out:
            shape = tuple(const_value(d) for d in r.buffer.shape)
            out[r.buffer] = LayoutFact(make_swizzled_layout(shape, r.buffer.dtype, k_inner))
    return out


@requirement("16-bit operands")
def _mma_sync_dtypes(op: Gemm, args: OpArgs) -> str | None:
    dts = {op.A.buffer.dtype.name, op.B.buffer.dtype.name}
    if dts <= set(GEMM_INPUT_DTYPES):
        return None
    return f"mma.sync takes float16 or bfloat16 operands, not {' x '.join(sorted(dts))}"


@Gemm.register_lowering(
    "mma.sync", _has_mma_sync, _mma_sync_dtypes, _a_in_shared, layouts=_mma_sync_layouts
)
def _lower_mma_sync(op: Gemm, args: LowerArgs, analyzer: Analyzer) -> Stmt:
    m, n, k = op.mnk
    wm, wn = warp_partition(m, n, args.num_threads // 32, op.policy)
    c_local = args.buffer_remap.get(op.C.buffer) if args.buffer_remap else None
    if c_local is None:
        raise UnsupportedError(
            f"T.gemm: the accumulator `{op.C.buffer.name}` has no register layout"
        )
    swz_a, ld_a = _shared_layout(args, op.A.buffer)
    swz_b, ld_b = _shared_layout(args, op.B.buffer)
    tmpl = (
        f"gemm_ss<{m}, {n}, {k}, {wm}, {wn}, {_b(op.transpose_A)}, {_b(op.transpose_B)}, "
        f"{swz_a}, {ld_a}, {swz_b}, {ld_b}>"
    )
    call = Evaluate(
        Call(int32, f"tsir.gemm_sm80.{tmpl}", (_addr(op.A), _addr(op.B), _addr_buf(c_local)))
    )
    if not op.clear_accum:
        return call
    l = Var("l", int32)
    zero = For(
        l,
        IntImm(0, int32),
        IntImm(const_value(c_local.shape[0]), int32),  # pyright: ignore[reportArgumentType]  # a constant here: checked by const_value above
        ForKind.UNROLLED,
        BufferStore(c_local, IntImm(0, int32).astype(c_local.dtype), (l,)),
    )
    return seq(zero, call)


def operand_a_layout(op: Gemm, num_threads: int) -> Fragment:
    """The registers mma.m16n8k16 reads A from, for this gemm's warp partition (a fragment A in
    this layout needs no staging: gemm_rs.py)."""
    m, n, k = op.mnk
    wm, wn = warp_partition(m, n, num_threads // 32, op.policy)
    return make_mma_a_fragment(m, n, k, m // wm, n // wn)


def _b(x: bool) -> str:
    return "true" if x else "false"


def _shared_layout(args: LowerArgs, buf: Buffer) -> tuple[int, int]:
    """(swizzle bytes, physical row length) of an operand tile, as gemm_ss's template takes them."""
    return swizzle_args(args.layout_map.get(buf), buf)


def swizzle_args(layout: Layout | None, buf: Buffer) -> tuple[int, int]:
    """(swizzle bytes, physical row length) of a tile of `buf`'s shape in `layout`."""
    cols = const_value(buf.shape[-1])
    if layout is None:
        return 0, cols  # pyright: ignore[reportReturnType]  # a constant here: checked by const_value above
    mode = detect_swizzle(layout, buf.dtype)
    if mode is not None and mode is not SwizzleMode.NONE:
        return mode.value, cols  # pyright: ignore[reportReturnType]  # a constant here: checked by const_value above
    if mode is SwizzleMode.NONE:
        return 0, cols  # pyright: ignore[reportReturnType]  # a constant here: checked by const_value above
    # A padded layout: its pitch is where row 1 starts.
    pitch = const_value(args_simplify(layout.linear_forward((0,) * (len(buf.shape) - 2) + (1, 0))))
    if pitch is None or not _rows_of_pitch(layout, pitch):
        raise UnsupportedError(
            f"T.gemm: the layout of `{buf.name}` is neither swizzled nor padded"
            f"{' the same way in every stage' if len(buf.shape) > 2 else ''}: {layout}"
        )
    return 0, pitch


def _rows_of_pitch(layout: Layout, pitch: int) -> bool:
    """Every 2-D tile of the layout (each stage, for leading dimensions) stores element (i, j)
    at `i * pitch + j` from the tile's first element: what gemm_ss reads for a padded tile."""
    shape = layout.const_input_shape()
    if shape is None or len(shape) < 2:
        return False
    table = layout.table()
    offset = np.zeros(table.size, dtype=np.int64)
    for out, extent in zip(table.outputs, table.output_extents()):
        offset = offset * extent + out
    tiles = offset.reshape(-1, shape[-2], shape[-1])
    want = np.arange(shape[-2])[:, None] * pitch + np.arange(shape[-1])[None, :]
    return bool(np.array_equal(tiles - tiles[:, :1, :1], np.broadcast_to(want, tiles.shape)))


def args_simplify(e: Any) -> Any:
    return Analyzer().simplify(e)


def _addr(r: BufferRegion) -> Call:
    return Call(DataType("handle"), "address_of", (BufferLoad(r.buffer, r.mins),))


def _addr_buf(b: Buffer) -> Call:
    return Call(
        DataType("handle"), "address_of", (BufferLoad(b, tuple(IntImm(0, int32) for _ in b.shape)),)
    )


def check_gemm(a: BufferRegion, b: BufferRegion, c: BufferRegion, ta: bool, tb: bool) -> None:
    """Build-time checks: what the mma.sync path can do, with errors naming the reason."""
    where = "T.gemm"
    for r, role in ((a, "A"), (b, "B")):
        if len(r.region) > 2 and r.buffer.scope not in ("shared", "shared.dyn"):
            raise UnsupportedError(
                f"{where}: operand {role} (`{r.buffer.name}`) is a tile of a {len(r.region)}-D "
                f"{r.buffer.scope} buffer; only shared-memory operands may select a stage of a "
                f"higher-rank buffer",
                loc=user_location(),
            )
        if role == "A" and r.buffer.scope == "local.fragment":
            if ta:
                raise BuildError(
                    f"{where}: operand A (`{r.buffer.name}`) is a fragment, which is read in the "
                    f"mma's own register order; transpose_A=True needs A in shared memory"
                )
            if any(const_value(x.min) != 0 for x in r.region) or [
                const_value(e) for e in r.extents
            ] != [const_value(d) for d in r.buffer.shape]:
                raise BuildError(
                    f"{where}: a fragment operand A (`{r.buffer.name}`) must be the whole fragment"
                )
        elif r.buffer.scope not in ("shared", "shared.dyn"):
            frag = " or a fragment" if role == "A" else ""
            raise BuildError(
                f"{where}: operand {role} (`{r.buffer.name}`) must be in shared memory{frag}, got {r.buffer.scope}"
            )
        if r.buffer.dtype.name not in GEMM_INPUT_DTYPES + GEMM_FP8_DTYPES:
            raise BuildError(
                f"{where}: operand {role} (`{r.buffer.name}`) is {r.buffer.dtype}; the tensor-core path "
                f"takes float16 or bfloat16 operands (or float8 e4m3/e5m2, on sm_90a's wgmma path)"
            )
        if len(r.extents) > 2 and r.buffer.scope in ("shared", "shared.dyn"):
            check_stage_operand(r, role)
        elif len(r.extents) != 2 or any(const_value(e) is None for e in r.extents):
            raise BuildError(f"{where}: operand {role} must be a constant 2-D tile")
    fp8 = a.buffer.dtype.name in GEMM_FP8_DTYPES
    if fp8 != (b.buffer.dtype.name in GEMM_FP8_DTYPES) or (
        not fp8 and a.buffer.dtype != b.buffer.dtype
    ):
        raise BuildError(
            f"{where}: A is {a.buffer.dtype} but B is {b.buffer.dtype}; they must match"
        )
    if fp8 and (ta or not tb):
        raise BuildError(
            f"{where}: float8 operands must be K-major (wgmma has no 8-bit transpose): store A as "
            f"M x K and B as N x K, and pass transpose_B=True (got transpose_A={ta}, transpose_B={tb})"
        )
    if c.buffer.scope != "local.fragment":
        raise BuildError(
            f"{where}: the accumulator C (`{c.buffer.name}`) must be a T.alloc_fragment buffer"
        )
    if len(c.region) != 2:
        raise UnsupportedError(
            f"{where}: the accumulator C (`{c.buffer.name}`) must be a whole 2-D fragment, got a "
            f"{len(c.region)}-D region",
            loc=user_location(),
        )
    if c.buffer.dtype.name != "float32":
        raise BuildError(
            f"{where}: the accumulator C is {c.buffer.dtype}; the mma.sync path accumulates in float32"
        )
    ae, be = const_shape(a.extents[-2:]), const_shape(b.extents[-2:])
    assert ae is not None and be is not None  # the loop above refused other operands
    ce = [const_value(e) for e in c.extents]
    m, ka = (ae[1], ae[0]) if ta else (ae[0], ae[1])
    kb, n = (be[1], be[0]) if tb else (be[0], be[1])
    if ka != kb:
        raise BuildError(
            f"{where}: A has K = {ka} but B has K = {kb} (transpose_A={ta}, transpose_B={tb})"
        )
    if ce != [m, n]:
        raise BuildError(f"{where}: C is {ce[0]}x{ce[1]} but A @ B is {m}x{n}")
    kstep = 32 if fp8 else 16
    if ka % kstep:
        raise BuildError(
            f"{where}: the K tile ({ka}) must be a multiple of {kstep} "
            f"({'wgmma k32 for float8' if fp8 else 'mma.m16n8k16'})"
        )
    if a.buffer.shape[-1] != a.extents[-1] and const_value(a.buffer.shape[-1]) != const_value(
        a.extents[-1]
    ):
        raise BuildError(f"{where}: operand A must be a whole shared buffer")


def check_stage_operand(r: BufferRegion, role: str) -> None:
    """An operand of rank > 2 is one whole 2-D tile of a staged shared buffer: leading indices
    (constant or dynamic) pick the stage, the last two dimensions are taken whole
    (`A_s[ko % stages, :, :]`). Anything else is an UnsupportedError at the user's line."""
    name = r.buffer.name
    shape = [const_value(d) for d in r.buffer.shape]
    if None in shape:
        raise UnsupportedError(
            f"T.gemm: operand {role} (`{name}`) is a tile of a shared buffer of non-constant "
            f"shape {list(r.buffer.shape)}",
            loc=user_location(),
        )
    for dim, x in enumerate(r.region[:-2]):
        if const_value(x.extent) != 1:
            raise UnsupportedError(
                f"T.gemm: operand {role} (`{name}`) takes {x.extent} elements of dimension {dim}; "
                f"the leading dimensions of a staged operand select one stage (index it, as in "
                f"`{name}[s, :, :]`)",
                loc=user_location(),
            )
    for dim, x in enumerate(r.region[-2:], len(r.region) - 2):
        if const_value(x.min) != 0 or const_value(x.extent) != shape[dim]:
            raise UnsupportedError(
                f"T.gemm: operand {role} (`{name}`) takes [{x.min}, {x.min} + {x.extent}) of "
                f"dimension {dim} (size {shape[dim]}); a staged operand must take its last two "
                f"dimensions whole (`{name}[s, :, :]`)",
                loc=user_location(),
            )
