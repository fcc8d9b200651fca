"""Copy's TMA lowering: a global->shared `T.copy` in an mbarrier pipeline as bulk tensor copies
(`cp.async.bulk.tensor`, sm_90+), issued by one thread, completing on the copy's `mbarrier`.

The pipeline (InjectSoftwarePipeline's ring) sets `mbarrier` through `Copy.bulk_load` when these
requirements hold, announces the bytes on the barrier (expect_tx) and waits; otherwise it keeps the
copy on cp.async and reports the failed requirement under TSIR_EXPLAIN:

- `an mbarrier to complete on`: the copy is in an mbarrier pipeline;
- `TMA unit`: the target has TMA (sm_90+);
- `global to shared`: the source is global memory, the destination shared, one element type of
  8/16/32/64 bits (TMA moves bytes, it does not convert);
- `a tensor map`: the source buffer has 1 to 3 dimensions, a contiguous innermost one, a 16-byte
  aligned base and outer strides that are constant multiples of 16 bytes;
- `a box`: the source region's non-unit extents are its last one or two dimensions and equal the
  destination's, the destination is a whole tile of its buffer (a leading stage index allowed),
  every box extent is at most 256;
- `a layout TMA writes`: the destination tile is a multiple of 128 bytes (stages start aligned)
  and row-major with an inner extent of at most 256 elements and a multiple of 16 bytes, or in a
  32/64/128-byte swizzle (one box per swizzle span, which is exactly how tsir lays such tiles
  out).

Out-of-bounds elements of a box read as zero (TMA clips at the tensor's edges), which is T.copy's
meaning, so ragged tiles need no guard. The tensor map is the intrinsic
`tma_descriptor(address_of(A[0, ...]), box..., swizzle)`; SplitHostDevice makes it a
`__grid_constant__` kernel parameter that the host program encodes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ..buffer import Buffer, BufferRegion
from ..dtype import DataType, int32
from ..expr import BufferLoad, Call, Cast, IntImm, PrimExpr, const_value
from ..layout.numeric import const_shape
from ..layout.swizzle import SwizzleMode
from ..layout.wgmma_layouts import (
    TmaBox,
    choose_wgmma_swizzle,
    make_wgmma_smem_layout,
    swizzle_mode,
    tma_boxes,
)
from ..stmt import Evaluate, IfThenElse, Stmt, seq
from .base import LayoutFact, LowerArgs, OpArgs, requirement
from .copy import Copy
from .elementwise import non_unit_axes

if TYPE_CHECKING:
    from ..arith import Analyzer
    from ..layout import Layout

__all__ = ["TMA_MAX_RANK", "tma_boxes_of"]

TMA_MAX_RANK = 3  # tma_load_1d .. tma_load_3d
_GLOBAL = ("global",)
_SHARED = ("shared", "shared.dyn")
_HANDLE = DataType("handle")
_U32 = DataType("uint32")


@requirement("an mbarrier to complete on")
def _in_ring(op: Copy, args: OpArgs) -> str | None:
    return None if op.mbarrier is not None else "the copy is not in an mbarrier pipeline"


def _tma_unit(op: Copy, args: OpArgs) -> str | None:
    return None if args.target.has_tma else f"{args.target} has no TMA (sm_90+)"


_has_tma = requirement("TMA unit")(_tma_unit)


def _element_problem(op: Copy) -> str | None:
    """Why TMA cannot move `op`'s elements (it moves bytes: one type, no conversion), or None."""
    src, dst = op.src.buffer, op.dst.buffer
    if src.dtype != dst.dtype:
        return f"`{src.name}` is {src.dtype} and `{dst.name}` {dst.dtype}: TMA does not convert"
    if src.dtype.bits not in (8, 16, 32, 64) or src.dtype.lanes != 1:
        return f"TMA moves 8/16/32/64-bit elements, not {src.dtype}"
    return None


@requirement("global to shared")
def _directions(op: Copy, args: OpArgs) -> str | None:
    src, dst = op.src.buffer, op.dst.buffer
    if src.scope not in _GLOBAL or dst.scope not in _SHARED:
        return f"`{src.name}` ({src.scope}) to `{dst.name}` ({dst.scope}) is not global to shared"
    return _element_problem(op)


@requirement("a tensor map")
def _tensor_map(op: Copy, args: OpArgs) -> str | None:
    return _map_problem(op.src.buffer, args)


def _map_problem(b: Buffer, args: OpArgs) -> str | None:
    """Why global buffer `b` has no tensor map, or None."""
    if args.tensor_params is not None and b not in args.tensor_params:
        return (
            f"`{b.name}` is not a parameter of the function but a view of one (T.reshape, "
            f"T.Tensor(..., X.data)); a tensor map describes a parameter as the host passes it"
        )
    esize = b.dtype.bytes
    if not 1 <= len(b.shape) <= TMA_MAX_RANK:
        return (
            f"`{b.name}` has {len(b.shape)} dimensions; tsir's TMA path takes 1 to {TMA_MAX_RANK}"
        )
    if b.align < 16:
        return f"`{b.name}` is only {b.align}-byte aligned; TMA needs a 16-byte aligned base"
    strides = list(b.strides) if b.strides else list(b.row_major_strides())
    if const_value(strides[-1]) != 1:
        return f"the innermost dimension of `{b.name}` is not contiguous (stride {strides[-1]})"
    for d, st in enumerate(strides[:-1]):
        c = const_value(st)
        if c is None:
            return (
                f"the stride of `{b.name}`'s dimension {d} ({st} elements) is not a constant, so it "
                f"cannot be proved a multiple of 16 bytes"
            )
        if (c * esize) % 16:
            return (
                f"the stride of `{b.name}`'s dimension {d} ({c} elements = {c * esize} bytes) is "
                f"not a multiple of 16 bytes"
            )
    return None


def _box(op: Copy) -> tuple[int, int] | str:
    """(rows, cols) of a load's box (rows 1 for a 1-D tile), or why the regions are not a box."""
    return _box_of(op.src, op.dst)


def _box_of(glob: BufferRegion, tile: BufferRegion) -> tuple[int, int] | str:
    """(rows, cols) of the box between the global region `glob` and the whole shared tile `tile`
    (either direction), or why they are not one."""
    g_axes, t_axes = non_unit_axes(glob), non_unit_axes(tile)
    if not 1 <= len(t_axes) <= 2:
        return f"the shared tile has {len(t_axes)} non-unit dimensions; a TMA box here has 1 or 2"
    nd = len(glob.buffer.shape)
    if g_axes != list(range(nd - len(g_axes), nd)):
        return f"the global region's non-unit dimensions {g_axes} are not its last ones"
    g_ext = [const_value(glob.region[d].extent) for d in g_axes]
    t_ext = [const_value(tile.region[d].extent) for d in t_axes]
    box = const_shape(t_ext)
    if box is None or g_ext != t_ext:
        return f"the global extents {g_ext} and shared extents {t_ext} differ or vary"
    shape = [const_value(x) for x in tile.buffer.shape]
    if (
        t_axes != list(range(len(shape) - len(t_axes), len(shape)))
        or t_ext != shape[-len(t_axes) :]
        or any(const_value(tile.region[d].min) != 0 for d in t_axes)
    ):
        return f"the shared side is not a whole tile of `{tile.buffer.name}`"
    rows, cols = (1, box[0]) if len(box) == 1 else (box[0], box[1])
    if rows > 256:
        return f"the box has {rows} rows; a TMA box has at most 256"
    return rows, cols


@requirement("a box")
def _a_box(op: Copy, args: OpArgs) -> str | None:
    box = _box(op)
    return box if isinstance(box, str) else None


def tma_boxes_of(op: Copy, layout: Layout | None) -> list[TmaBox] | str:
    """The boxes that fill `op`'s destination tile laid out by `layout` (None: row-major), or why
    TMA cannot write that layout."""
    return _tile_boxes(op.src, op.dst, layout)


def _tile_boxes(
    glob: BufferRegion, tile: BufferRegion, layout: Layout | None
) -> list[TmaBox] | str:
    """The boxes between `glob` and the shared `tile` laid out by `layout` (None: row-major),
    or why TMA cannot move that layout."""
    box = _box_of(glob, tile)
    if isinstance(box, str):
        return box
    rows, cols = box
    dt = tile.buffer.dtype
    if (rows * cols * dt.bytes) % 128:
        # A pipeline's stages follow each other: each must start 128-byte aligned for TMA.
        return (
            f"the {rows}x{cols} tile's {rows * cols * dt.bytes} bytes are not a multiple of 128 "
            f"(TMA writes shared memory at 128-byte aligned addresses)"
        )
    mode = SwizzleMode.NONE if layout is None else swizzle_mode(layout, dt)
    if mode is None:
        return (
            f"`{tile.buffer.name}` has a layout that is neither row-major nor a swizzle: {layout}"
        )
    if mode is SwizzleMode.NONE:
        if cols > 256 or (cols * dt.bytes) % 16:
            return (
                f"a row-major {rows}x{cols} tile needs a box of {cols} elements per row, which is "
                f"not at most 256 and a multiple of 16 bytes"
            )
        return [TmaBox(cols, rows, 0, 0)]
    return tma_boxes((rows, cols), dt, mode)


@requirement("a layout TMA writes")
def _layout(op: Copy, args: OpArgs) -> str | None:
    boxes = tma_boxes_of(op, args.layout_map.get(op.dst.buffer))
    return boxes if isinstance(boxes, str) else None


def _swizzle_bytes(tile: Buffer, layout: Layout | None) -> int:
    if layout is None:
        return 0
    mode = swizzle_mode(layout, tile.dtype)
    return 0 if mode is None else mode.value


def _box_at(glob: BufferRegion, bx: TmaBox) -> tuple[tuple[int, ...], list[PrimExpr]]:
    """Box `bx` of a copy whose global side is `glob`: the tensor map's box (outermost first) and
    the box's coordinates in the tensor (innermost first, as the header takes them)."""
    nd = len(glob.buffer.shape)
    mins = list(glob.mins)
    box = (1,) * (nd - 2) + (bx.outer, bx.inner) if nd >= 2 else (bx.inner,)
    coords = [mins[-1] + bx.col0 if bx.col0 else mins[-1]] + [
        mins[d] for d in range(nd - 2, -1, -1)
    ]
    return box, coords


def _shared_at(tile: BufferRegion, bx: TmaBox) -> PrimExpr:
    """The shared address (u32) of box `bx` in `tile`."""
    first = Call(_HANDLE, "address_of", (BufferLoad(tile.buffer, tile.mins),))
    base = Call(_U32, "tsir.mbarrier.shared_u32", (first,))
    return base + IntImm(bx.smem_offset, _U32) if bx.smem_offset else base


def tensor_map(src: BufferRegion, box: tuple[int, ...], swizzle: int) -> Call:
    """`tma_descriptor(address_of(A[0, ...]), box (outermost first)..., swizzle)`."""
    b = src.buffer
    first = Call(_HANDLE, "address_of", (BufferLoad(b, tuple(IntImm(0, int32) for _ in b.shape)),))
    return Call(
        _HANDLE, "tma_descriptor", (first, *(IntImm(x, int32) for x in box), IntImm(swizzle, int32))
    )


@Copy.register_lowering(
    "tma", _in_ring, _has_tma, _directions, _tensor_map, _a_box, _layout, first=True
)
def _lower_tma(op: Copy, args: LowerArgs, analyzer: Analyzer) -> Stmt:
    layout = args.layout_map.get(op.dst.buffer)
    boxes = tma_boxes_of(op, layout)
    assert not isinstance(boxes, str)
    swizzle = _swizzle_bytes(op.dst.buffer, layout)
    nd = len(op.src.buffer.shape)
    assert op.mbarrier is not None
    bar = Call(_U32, "tsir.mbarrier.shared_u32", (Call(_HANDLE, "address_of", (op.mbarrier,)),))
    calls: list[Stmt] = []
    for bx in boxes:
        box, coords = _box_at(op.src, bx)
        args_ = (_shared_at(op.dst, bx), tensor_map(op.src, box, swizzle), bar, *coords)
        calls.append(Evaluate(Call(int32, f"tsir.tma.tma_load_{nd}d", args_)))
    # One thread issues the whole copy (the threads' first: the one that announced its bytes).
    return IfThenElse(args.thread_var == 0, seq(*calls))


# -- stores: shared -> global ----------------------------------------------------------------------


_store_has_tma = requirement("TMA unit", program=False)(_tma_unit)


@requirement("shared to global", program=False)
def _store_directions(op: Copy, args: OpArgs) -> str | None:
    src, dst = op.src.buffer, op.dst.buffer
    if src.scope not in _SHARED or dst.scope not in _GLOBAL:
        return f"`{src.name}` ({src.scope}) to `{dst.name}` ({dst.scope}) is not shared to global"
    return None


@requirement("one element type")
def _store_types(op: Copy, args: OpArgs) -> str | None:
    return _element_problem(op)


@requirement("a tensor map")
def _store_tensor_map(op: Copy, args: OpArgs) -> str | None:
    return _map_problem(op.dst.buffer, args)


@requirement("a box and a layout TMA reads")
def _store_boxes(op: Copy, args: OpArgs) -> str | None:
    boxes = _tile_boxes(op.dst, op.src, args.layout_map.get(op.src.buffer))
    return boxes if isinstance(boxes, str) else None


def _store_layouts(op: Copy, args: OpArgs) -> dict[Buffer, LayoutFact]:
    """The shared tile's layout when nothing else chose one: the widest swizzle it takes (one
    box per swizzle span; the threads that write it from registers then spread over the banks,
    where a row-major tile of 128-byte multiples puts a warp's rows on the same banks)."""
    tile = op.src.buffer
    if tile in args.layout_map or len(tile.shape) != 2:
        return {}
    shape = const_shape([const_value(x) for x in tile.shape])
    if shape is None:
        return {}
    mode = choose_wgmma_swizzle((shape[0], shape[1]), tile.dtype)
    if mode is None:
        return {}
    return {tile: LayoutFact(make_wgmma_smem_layout((shape[0], shape[1]), tile.dtype, mode))}


@Copy.register_lowering(
    "tma store",
    _store_has_tma,
    _store_directions,
    _store_types,
    _store_tensor_map,
    _store_boxes,
    first=True,
    preferred=True,
    layouts=_store_layouts,
)
def _lower_tma_store(op: Copy, args: LowerArgs, analyzer: Analyzer) -> Stmt:
    """The tile stored box by box (TMA clips at the tensor's edges: T.copy skips stores outside
    the destination), then a wait until the stores are complete, so the tile may be rewritten and
    the global data read afterwards (ThreadSync moves that wait to where it is needed).

    Who stores: with one warpgroup, its first thread. With several (256, 384, ... threads), each
    warpgroup's first thread stores one slab of the tile: its share of the rows when every share
    is a multiple of 8 rows (one swizzle atom), else its share of the column spans. Which threads
    wrote which part is ThreadSync's business: where each warpgroup wrote exactly the slab it
    stores (wgmma's accumulators, warpgroup w owning rows 64w..), ThreadSync orders the writes
    before the store with the warpgroup's own named barrier, so no warpgroup waits for another's
    epilogue; otherwise with one across all the threads, as for a single store.

    The other threads' writes of the tile reach the async proxy through ThreadSync: a write before
    an async-proxy read gets a barrier with a fence.proxy.async before it in every writer. The
    storing thread fences its own writes here (a tile it alone wrote needs no barrier)."""
    layout = args.layout_map.get(op.src.buffer)
    boxes = _tile_boxes(op.dst, op.src, layout)
    assert not isinstance(boxes, str)
    swizzle = _swizzle_bytes(op.src.buffer, layout)
    nd = len(op.dst.buffer.shape)
    tile_rows = _box_of(op.dst, op.src)
    assert not isinstance(tile_rows, str)
    slabs, storer = _store_slabs(boxes, op.src.buffer.dtype, args)
    # The storing thread's own earlier writes of the tile, made visible to the async proxy.
    calls: list[Stmt] = [Evaluate(Call(int32, "tsir.mbarrier.fence_proxy_async_shared", ()))]
    for sl in slabs:
        box, coords = _box_at(op.dst, sl.box)
        if sl.cols is not None:
            coords[0] = coords[0] + sl.cols  # coordinates are innermost first
        if sl.rows is not None:
            coords[1] = coords[1] + sl.rows
        shared = _shared_at(op.src, sl.box)
        if sl.smem is not None:
            shared = shared + Cast(_U32, sl.smem)
        args_ = (tensor_map(op.dst, box, swizzle), shared, *coords)
        calls.append(Evaluate(Call(int32, f"tsir.tma.tma_store_{nd}d", args_)))
    calls.append(Evaluate(Call(int32, "tsir.tma.tma_store_commit", ())))
    calls.append(Evaluate(Call(int32, "tsir.tma.tma_store_wait<0>", ())))
    return IfThenElse(storer, seq(*calls))


_WARPGROUP = 128
_SWIZZLE_ATOM_ROWS = 8  # a swizzle pattern repeats every 8 rows (1024 bytes at 128B)
_WGMMA_M = 64


@dataclass(frozen=True, slots=True)
class _Slab:
    """One box a storing thread issues, shifted by its warpgroup's share: `rows`/`cols` added to
    the box's tensor coordinates, `smem` bytes to its shared address (None: no shift)."""

    box: TmaBox
    rows: PrimExpr | None = None
    cols: PrimExpr | None = None
    smem: PrimExpr | None = None


def _store_slabs(
    boxes: list[TmaBox], dtype: DataType, args: LowerArgs
) -> tuple[list[_Slab], PrimExpr]:
    """The boxes each storing thread issues and the condition that selects the storing threads
    (see `_lower_tma_store`)."""
    tid = args.thread_var
    groups = args.num_threads // _WARPGROUP if args.num_threads % _WARPGROUP == 0 else 1
    if groups < 2:
        return [_Slab(bx) for bx in boxes], tid == 0
    wg = tid // _WARPGROUP
    rows = boxes[0].outer
    share = rows // groups
    by_rows = rows % (groups * _SWIZZLE_ATOM_ROWS) == 0
    by_spans = len(boxes) > 1 and len(boxes) % groups == 0
    # wgmma gives each warpgroup 64 rows of the accumulator when the tile has them, else a share
    # of the columns: the split follows, so that each warpgroup stores what it wrote.
    if by_rows and (share >= _WGMMA_M or not by_spans):
        # Within a box, row r starts r * (the box's inner bytes) after the box: the rows of a
        # swizzle span, or of a row-major tile (one box as wide as the tile).
        row_bytes = boxes[0].inner * dtype.bytes
        slabs = [
            _Slab(replace(bx, outer=share), rows=wg * share, smem=wg * (share * row_bytes))
            for bx in boxes
        ]
        return slabs, tid % _WARPGROUP == 0
    if by_spans:
        # Warpgroup w stores column spans w*per .. w*per + per - 1 (the boxes are evenly spaced).
        per = len(boxes) // groups
        col_step = (boxes[1].col0 - boxes[0].col0) * per
        smem_step = (boxes[1].smem_offset - boxes[0].smem_offset) * per
        slabs = [_Slab(bx, cols=wg * col_step, smem=wg * smem_step) for bx in boxes[:per]]
        return slabs, tid % _WARPGROUP == 0
    return [_Slab(bx) for bx in boxes], tid == 0
