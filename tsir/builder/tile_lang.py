"""The tile-operator half of `tsir.T`: gemm, reductions, layout annotations."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..buffer import Buffer, BufferRegion
from ..errors import BuildError
from ..expr import BufferLoad, IntImm, const_value, convert
from ..layout import Fragment, Layout
from ..stmt import TileOpStmt
from ..tileop.base import get_tile_op
from ..tileop.cummax import CumMax
from ..tileop.cumsum import CumSum
from ..tileop.finalize_reducer import FinalizeReducer
from ..tileop.gemm import Gemm, GemmPolicy, check_gemm
from ..tileop.im2col import Im2Col
from ..tileop.reduce import Reduce, ReduceKind, check_reduce, reduce_identity
from ..tileop.scan import check_scan_operands
from .frame import check_buffer_use, current_builder
from .memory import alloc_fragment, fill

__all__ = [
    "gemm",
    "reduce",
    "reduce_sum",
    "reduce_max",
    "reduce_min",
    "reduce_absmax",
    "reduce_abssum",
    "reduce_bitand",
    "reduce_bitor",
    "reduce_bitxor",
    "annotate_layout",
    "use_swizzle",
    "cumsum",
    "cummax",
    "alloc_reducer",
    "finalize_reducer",
    "tile_op",
    "im2col",
    "c2d_im2col",
]


def _whole(x: Any, what: str) -> BufferRegion:
    if isinstance(x, Buffer):
        check_buffer_use(x, element_access=False)
        return BufferRegion.full(x)
    if isinstance(x, BufferRegion):
        return x
    if isinstance(x, BufferLoad):
        raise BuildError(
            f"{what} takes a whole buffer or a slice, got one element of `{x.buffer.name}`"
        )
    raise BuildError(f"{what} takes a buffer, got {x!r}")


def _emit(op: Any, what: str) -> None:
    b = current_builder(what)
    if b.kernel is None:
        raise BuildError(f"{what} must be inside a T.Kernel")
    b.frame.emit(TileOpStmt(op))


def gemm(
    A: Any,
    B: Any,
    C: Any,
    transpose_A: bool = False,
    transpose_B: bool = False,
    clear_accum: bool = False,
    policy: str = "square",
) -> None:
    """C += A @ B (A, B in shared memory, fp16/bf16, or float8 with transpose_B=True; C a float32
    fragment), on tensor cores. `policy`: "square" warp tiles, or "full_row" (warps split M only,
    so each row of C lives in one warp and `T.reduce_*` can reduce C's rows); "wgmma" or "mma"
    force the sm_90a warpgroup path or the mma.sync path (an error when it cannot take the gemm;
    by default sm_90a takes wgmma where it can and reports why not under TSIR_EXPLAIN)."""
    if policy not in tuple(GemmPolicy):
        allowed = ", ".join(repr(p.value) for p in GemmPolicy)
        raise BuildError(f"T.gemm: policy must be one of {allowed}, got {policy!r}")
    a, b, c = _whole(A, "T.gemm A"), _whole(B, "T.gemm B"), _whole(C, "T.gemm C")
    check_gemm(a, b, c, bool(transpose_A), bool(transpose_B))
    _emit(
        Gemm(a, b, c, bool(transpose_A), bool(transpose_B), bool(clear_accum), GemmPolicy(policy)),
        "T.gemm",
    )


def reduce(src: Any, dst: Any, dim: int, kind: str, clear: bool = True) -> None:
    s, d = _whole(src, f"T.reduce_{kind}"), _whole(dst, f"T.reduce_{kind}")
    if not isinstance(dim, int):
        raise BuildError(f"T.reduce_{kind}: dim must be an int, got {dim!r}")
    nd = len(s.buffer.shape)
    dim = dim + nd if dim < 0 else dim
    check_reduce(s, d, dim, kind)
    _emit(Reduce(s, d, dim, ReduceKind(kind), bool(clear)), f"T.reduce_{kind}")


def reduce_sum(src: Any, dst: Any, dim: int = -1, clear: bool = True) -> None:
    reduce(src, dst, dim, "sum", clear)


def reduce_max(src: Any, dst: Any, dim: int = -1, clear: bool = True) -> None:
    reduce(src, dst, dim, "max", clear)


def reduce_min(src: Any, dst: Any, dim: int = -1, clear: bool = True) -> None:
    reduce(src, dst, dim, "min", clear)


def reduce_absmax(src: Any, dst: Any, dim: int = -1, clear: bool = True) -> None:
    reduce(src, dst, dim, "absmax", clear)


def reduce_abssum(src: Any, dst: Any, dim: int = -1, clear: bool = True) -> None:
    reduce(src, dst, dim, "abssum", clear)


def reduce_bitand(src: Any, dst: Any, dim: int = -1, clear: bool = True) -> None:
    """The bitwise AND of integers along `dim` (fragments or shared tiles)."""
    reduce(src, dst, dim, "bitand", clear)


def reduce_bitor(src: Any, dst: Any, dim: int = -1, clear: bool = True) -> None:
    """The bitwise OR of integers along `dim` (fragments or shared tiles)."""
    reduce(src, dst, dim, "bitor", clear)


def reduce_bitxor(src: Any, dst: Any, dim: int = -1, clear: bool = True) -> None:
    """The bitwise XOR of integers along `dim` (fragments or shared tiles)."""
    reduce(src, dst, dim, "bitxor", clear)


def annotate_layout(layouts: dict[Any, Any]) -> None:
    """Pin layouts: {buffer: Layout or Fragment}; layout inference keeps them (STRICT)."""
    b = current_builder("T.annotate_layout")
    if b.kernel is None:
        raise BuildError("T.annotate_layout must be inside a T.Kernel")
    pairs = []
    for buf, lay in layouts.items():
        if not isinstance(buf, Buffer) or not isinstance(lay, Layout):
            raise BuildError(f"T.annotate_layout takes {{buffer: Layout}}, got {buf!r}: {lay!r}")
        pairs.append((buf, lay))
    # The annotation scopes the statements that follow it in this block, like an allocation.
    b.frame.items.append(("attr", "annotate_layout", tuple(pairs)))


def use_swizzle(panel_size: int = 8, order: str = "row") -> None:
    """Launch a 2-D grid's blocks panel by panel so blocks that run together share rows of A and
    columns of B in L2: `order="row"`, panels of `panel_size` block columns, each walked row by
    row; `"col"`, panels of `panel_size` block rows, each walked column by column. A permutation
    of the grid: `bx`, `by` keep their ranges."""
    b = current_builder("T.use_swizzle")
    k = b.kernel
    if k is None:
        raise BuildError("T.use_swizzle must be inside a T.Kernel")
    if len(k.block_vars) != 2:
        raise BuildError(
            f"T.use_swizzle needs a 2-D grid, the kernel has {len(k.block_vars)} grid dims"
        )
    if not isinstance(panel_size, int) or panel_size < 1:
        raise BuildError(f"T.use_swizzle: panel_size must be a positive int, got {panel_size!r}")
    if order not in ("row", "col"):
        raise BuildError(f"T.use_swizzle: order must be 'row' or 'col', got {order!r}")
    key = "threadblock_swizzle" if order == "row" else "threadblock_swizzle_col"
    b.frame.items.append(("attr", key, panel_size))


def _scan(what: str, src: Any, dst: Any, dim: int) -> tuple[BufferRegion, BufferRegion, int]:
    s = _whole(src, what)
    d = _whole(dst, what) if dst is not None else s
    if not isinstance(dim, int) or isinstance(dim, bool):
        raise BuildError(f"{what}: dim must be an int, got {dim!r}")
    nd = len(s.buffer.shape)
    dim = dim + nd if dim < 0 else dim
    why = check_scan_operands(what, s, d, dim)
    if why is not None:
        raise BuildError(why)
    return s, d, dim


def cumsum(src: Any, dst: Any = None, dim: int = 0, reverse: bool = False) -> None:
    """Inclusive prefix sum along `dim` of a shared tile or a fragment (into `dst`, default in
    place); `reverse=True` sums from the end."""
    s, d, dim = _scan("T.cumsum", src, dst, dim)
    _emit(CumSum(s, d, dim, bool(reverse)), "T.cumsum")


def cummax(src: Any, dst: Any = None, dim: int = 0, reverse: bool = False) -> None:
    """Inclusive running maximum along `dim` of a shared tile or a fragment (into `dst`, default
    in place); `reverse=True` runs from the end."""
    s, d, dim = _scan("T.cummax", src, dst, dim)
    _emit(CumMax(s, d, dim, bool(reverse)), "T.cummax")


_REDUCER_KINDS: dict[Any, ReduceKind] = {}


def alloc_reducer(shape: Any, dtype: Any, op: str = "sum", replication: str = "all") -> Buffer:
    """A fragment every thread holds whole, starting at the identity of `op`: threads accumulate
    into their own copy (in T.Parallel loops or per thread), and `T.finalize_reducer` combines the
    copies so each thread holds the block's total."""
    if op not in ("sum", "max", "min"):
        raise BuildError(f"T.alloc_reducer: op must be 'sum', 'max' or 'min', got {op!r}")
    if replication != "all":
        raise BuildError(
            f"T.alloc_reducer: only replication='all' is supported, got {replication!r}"
        )
    b = current_builder("T.alloc_reducer")
    k = b.kernel
    if k is None:
        raise BuildError("T.alloc_reducer must be inside a T.Kernel")
    buf = alloc_fragment(shape, dtype)
    threads = 1
    for t in k.threads:
        threads *= t
    annotate_layout({buf: Fragment.fully_replicated(tuple(buf.shape), threads)})
    fill(buf, reduce_identity(op, buf.dtype))
    _REDUCER_KINDS[buf] = ReduceKind(op)
    # Marks the buffer as a reducer in the IR: its per-thread copies are partial results (a
    # T.Parallel over it is split over threads), unlike a replicated fragment whose copies agree.
    b.frame.items.append(("attr", "reducer", buf))
    return buf


def finalize_reducer(reducer: Any) -> None:
    """Combine every thread's copy of a reducer; afterwards each thread holds the total."""
    r = _whole(reducer, "T.finalize_reducer")
    kind = _REDUCER_KINDS.get(r.buffer)
    if kind is None:
        raise BuildError(f"T.finalize_reducer: `{r.buffer.name}` was not made by T.alloc_reducer")
    _emit(FinalizeReducer(r, kind), "T.finalize_reducer")


def im2col(
    img: Any,
    col: Any,
    nhw_step: Any,
    c_step: Any,
    kernel: int,
    stride: int = 1,
    dilation: int = 1,
    pad: int = 0,
) -> None:
    """A P x Q tile of the im2col matrix of the NHWC image `img` into the shared tile `col`: rows
    `nhw_step * P ...` (output pixels) and columns `c_step * Q ...` ((kh, kw, c) of a `kernel` x
    `kernel` window with `stride`, `dilation` and zero `pad`ding), zero past the matrix. See
    tsir/tileop/im2col.py."""
    what = "T.im2col"
    i, c = _whole(img, f"{what} image"), _whole(col, f"{what} tile")
    if i.buffer.scope not in ("global", "symmetric") or i.buffer.ndim != 4:
        raise BuildError(
            f"{what}: the image `{i.buffer.name}` must be a 4-D (N, H, W, C) global buffer, got {i.buffer.ndim}-D {i.buffer.scope}"
        )
    if any(
        r.min is not None and not (isinstance(r.min, IntImm) and r.min.value == 0) for r in i.region
    ) or any(
        e is not d and const_value(e) != const_value(d) for e, d in zip(i.extents, i.buffer.shape)
    ):
        raise BuildError(f"{what}: the image `{i.buffer.name}` must be the whole buffer")
    if (
        c.buffer.scope not in ("shared", "shared.dyn")
        or len(c.extents) != 2
        or any(const_value(e) is None for e in c.extents)
    ):
        raise BuildError(
            f"{what}: the tile `{c.buffer.name}` must be a constant 2-D region of a shared buffer"
        )
    if i.buffer.dtype != c.buffer.dtype:
        raise BuildError(
            f"{what}: the image is {i.buffer.dtype} but the tile `{c.buffer.name}` is {c.buffer.dtype}; they must match"
        )
    for name, v, low in (
        ("kernel", kernel, 1),
        ("stride", stride, 1),
        ("dilation", dilation, 1),
        ("pad", pad, 0),
    ):
        if not isinstance(v, int) or isinstance(v, bool) or v < low:
            raise BuildError(f"{what}: {name} must be an int >= {low}, got {v!r}")
    steps = []
    for name, v in (("nhw_step", nhw_step), ("c_step", c_step)):
        e = convert(v)
        if not e.dtype.is_int:
            raise BuildError(f"{what}: {name} must be an integer expression, got {v!r}")
        steps.append(e)
    _emit(Im2Col(i, c, steps[0], steps[1], kernel, stride, dilation, pad), what)


c2d_im2col = im2col


def tile_op(name: str, **fields: Any) -> None:
    """The tile op registered as `name` (`tsir.tileop.registered_tile_ops()`), built from its
    fields: the printer's form for ops without a builder function of their own. A buffer given
    for a region field means the whole buffer."""
    try:
        cls = get_tile_op(name)
    except KeyError as e:
        raise BuildError(f"T.tile_op: {e.args[0]}") from None
    declared = {f.name: str(f.type) for f in dataclasses.fields(cls)}  # pyright: ignore[reportArgumentType]  # registered ops are @node dataclasses; their base is not
    unknown = sorted(set(fields) - set(declared))
    if unknown:
        raise BuildError(
            f"T.tile_op({name!r}): no field {', '.join(unknown)}; it has {', '.join(declared)}"
        )
    for key, value in fields.items():
        if isinstance(value, Buffer) and "BufferRegion" in declared[key]:
            fields[key] = _whole(value, f"T.tile_op({name!r}) {key}")
    try:
        op = cls(**fields)
    except (TypeError, ValueError) as e:
        raise BuildError(f"T.tile_op({name!r}): {e}") from None
    _emit(op, "T.tile_op")
