"""Im2Col: `T.im2col(img, col, nhw_step, c_step, kernel, stride, dilation, pad)` (TileLang's
`T.c2d_im2col`), one tile of the im2col matrix of a 2-D convolution into shared memory.

The image is NHWC (`img[n, h, w, c]`, global); the convolution has a `kernel` x `kernel` window,
`stride`, `dilation` and zero `pad`ding on every side, so its output is OH x OW with
`OH = (H + 2 pad - dilation (kernel - 1) - 1) // stride + 1` (OW likewise). The im2col matrix has
one row per output pixel, `m = (n OH + oh) OW + ow`, and one column per (kh, kw, c),
`k = (kh kernel + kw) C + c` (the order of a KH x KW x C x F filter read as (KH KW C) x F):

    X[m, k] = img[n, oh stride + kh dilation - pad, ow stride + kw dilation - pad, c]

(zero in the padding). A P x Q tile `col` receives rows `nhw_step * P ...` and columns
`c_step * Q ...` of X; rows or columns past the matrix read zero, like a `T.copy` from it.

Lowering: `elementwise`, spread over the block's threads like a copy, each element a guarded load
(TileLang lowers it to a TMA im2col load on Hopper; tsir's element-wise form runs everywhere).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..buffer import BufferRegion
from ..dtype import int32
from ..expr import BufferLoad, IntImm, PrimExpr, Select, cast, const, const_value
from ..node import node
from ..stmt import BufferStore, Stmt
from .base import LowerArgs, OpArgs, TileOperatorNode, register_tile_op, requirement
from .elementwise import lower_elementwise

if TYPE_CHECKING:
    from ..arith import Analyzer
    from ..printer_expr import ExprPrinter

__all__ = ["Im2Col", "conv_output_size", "im2col_element"]


def conv_output_size(
    size: PrimExpr | int, kernel: int, stride: int, dilation: int, pad: int
) -> PrimExpr:
    """Output pixels along a dimension of `size` input pixels."""
    return (size + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1  # pyright: ignore[reportReturnType]  # narrowed by a check above that the checker cannot follow


def im2col_element(op: Im2Col, m: PrimExpr, k: PrimExpr, lane: PrimExpr | None = None) -> PrimExpr:
    """X[m, k + lane] of the im2col matrix (see the module docstring) as an expression. With a
    `lane` (< V, k a multiple of V, C a multiple of V), the window position is that of k: the
    lanes read consecutive channels, one vector."""
    _, H, W, C = op.img.buffer.shape
    oh_n = conv_output_size(H, op.kernel, op.stride, op.dilation, op.pad)
    ow_n = conv_output_size(W, op.kernel, op.stride, op.dilation, op.pad)
    n = m // (oh_n * ow_n)
    oh = m % (oh_n * ow_n) // ow_n
    ow = m % ow_n
    kh = k // (op.kernel * C)
    kw = k // C % op.kernel
    c = k % C if lane is None else k % C + lane
    h = oh * op.stride + kh * op.dilation - op.pad
    w = ow * op.stride + kw * op.dilation - op.pad
    inside = (h >= 0) & (h < H) & (w >= 0) & (w < W) & (k < op.kernel * op.kernel * C)
    load = BufferLoad(op.img.buffer, (n, h, w, c))
    return Select(inside, load, const(0, op.img.buffer.dtype))


@register_tile_op("tl.Im2Col")
@node
class Im2Col(TileOperatorNode):
    """`col` (P x Q) = rows `nhw_step * P` and columns `c_step * Q` of the im2col matrix of `img`."""

    img: BufferRegion
    col: BufferRegion
    nhw_step: PrimExpr
    c_step: PrimExpr
    kernel: int
    stride: int = 1
    dilation: int = 1
    pad: int = 0

    def reads(self) -> tuple[BufferRegion, ...]:
        return (self.img,)

    def writes(self) -> tuple[BufferRegion, ...]:
        return (self.col,)

    def title(self) -> str:
        return "T.im2col"

    def print_form(self, p: ExprPrinter) -> str:
        return (
            f"T.im2col({p.region(self.img)}, {p.region(self.col)}, {p(self.nhw_step)}, "
            f"{p(self.c_step)}, {self.kernel}, {self.stride}, {self.dilation}, {self.pad})"
        )

    @property
    def tile(self) -> tuple[int, int]:
        p, q = (const_value(e) for e in self.col.extents)
        return p, q  # pyright: ignore[reportReturnType]  # a constant here: checked by const_value above


@requirement("the tile is in shared or global memory")
def _in_memory(op: Im2Col, args: OpArgs) -> str | None:
    scope = op.col.buffer.scope
    return (
        None
        if scope in ("shared", "shared.dyn", "global")
        else f"`{op.col.buffer.name}` is {scope}"
    )


@Im2Col.register_lowering("elementwise", _in_memory)
def _lower_elementwise(op: Im2Col, args: LowerArgs, analyzer: Analyzer) -> Stmt:
    rows, cols = op.tile
    idt = op.nhw_step.dtype if op.nhw_step.dtype.bits >= 32 else int32

    channels = const_value(op.img.buffer.shape[3])
    vec = 16 // op.col.buffer.dtype.bytes
    # Columns in runs of `vec` share their window position when C and the tile width are
    # multiples of it: written so, each run's channels are one vector load.
    by_runs = channels is not None and channels % vec == 0 and cols % vec == 0

    def make_store(coords: list[PrimExpr]) -> Stmt:
        p, q = coords
        m = cast(idt, op.nhw_step) * rows + p
        if by_runs:
            k = cast(idt, op.c_step) * cols + q // vec * vec
            value = im2col_element(op, m, k, q % vec)
        else:
            value = im2col_element(op, m, cast(idt, op.c_step) * cols + q)
        dst = (op.col.region[0].min + p, op.col.region[1].min + q)
        return BufferStore(op.col.buffer, value, dst)

    extents: list[PrimExpr] = [IntImm(rows, int32), IntImm(cols, int32)]
    return lower_elementwise(op.col, extents, make_store, args, op.col.buffer.dtype.bytes, "i")
