"""Inclusive scans along one dimension of a tile (`T.cumsum`, `T.cummax`): what the two ops
share. `register_scan_lowerings` gives an op its lowerings, in order:

- `lines` (shared tiles): G lanes scan a line together with shuffles (scan_parallel.py);
- `registers` (fragments in one layout dealt in rounds, e.g. tsir's row-group tiles): the scan
  stays in registers, warp shuffles and per-warp totals in shared memory (scan_parallel.py);
- `staged` (other fragments): through a shared workspace, scanned there as `lines`;
- `rows`: the fallback below, one thread per line (blocks that are not whole warps).

Layouts (COMMON): a fragment destination takes the fragment source's layout and back.

The `rows` fallback: in shared memory each thread scans whole rows (the lines along the scanned
dimension, dealt
round-robin over the threads), keeping the running value in a register. A fragment operand goes
through a shared workspace: its holders write it there, the block synchronizes, the rows are
scanned, the block synchronizes again and the holders read their elements back. The running value
has the destination's dtype (the source is cast to it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..buffer import Buffer, BufferRegion, make_buffer
from ..dtype import int32
from ..errors import UnsupportedError
from ..expr import BufferLoad, Call, IntImm, PrimExpr, Var, cast, const_value
from ..layout.analysis import equivalent
from ..stmt import Allocate, BufferStore, Evaluate, For, ForKind, IfThenElse, Stmt, seq
from ..visitor import substitute
from .base import (
    FRAGMENT,
    InferLevel,
    LayoutFact,
    LayoutInferArgs,
    LowerArgs,
    OpArgs,
    TileOperatorNode,
    requirement,
)
from .copy import lower_fragment_transfer
from .scan_parallel import lower_register_scan, lower_staged_scan, plan_register_scan

__all__ = [
    "SHARED_SCOPES",
    "check_scan_operands",
    "lower_scan",
    "register_scan_lowerings",
    "scan_layouts",
]

SHARED_SCOPES = ("shared", "shared.dyn")

Combine = Callable[[PrimExpr, PrimExpr], PrimExpr]


def check_scan_operands(what: str, src: BufferRegion, dst: BufferRegion, dim: int) -> str | None:
    """Why a scan of `src` into `dst` along `dim` cannot be built, or None."""
    nd = len(src.buffer.shape)
    if not 0 <= dim < nd:
        return f"{what}: dim={dim} is out of range for the {nd}-D `{src.buffer.name}`"
    for r in (src, dst):
        if r.buffer.scope not in (*SHARED_SCOPES, FRAGMENT):
            return (
                f"{what} takes shared-memory tiles or fragments; `{r.buffer.name}` is "
                f"{r.buffer.scope}: copy it to a shared tile first"
            )
    if any(const_value(e) is None for e in src.extents):
        return f"{what}: `{src.buffer.name}` needs a constant shape"
    if [const_value(e) for e in src.extents] != [const_value(e) for e in dst.extents]:
        return f"{what}: `{src.buffer.name}` and `{dst.buffer.name}` have different shapes"
    return None


def lower_scan(
    src: BufferRegion,
    dst: BufferRegion,
    dim: int,
    reverse: bool,
    combine: Combine,
    identity: PrimExpr,
    args: LowerArgs,
    what: str,
) -> Stmt:
    """The scan of `src` into `dst` (the same region for an in-place scan), through a shared
    workspace for fragment operands."""
    if src.buffer.scope not in (FRAGMENT, *SHARED_SCOPES) or dst.buffer.scope not in (
        FRAGMENT,
        *SHARED_SCOPES,
    ):
        raise UnsupportedError(
            f"{what} works on shared tiles and fragments; copy the tile to shared memory first",
            where="LowerTileOp",
        )
    if FRAGMENT not in (src.buffer.scope, dst.buffer.scope):
        return _shared_scan(src, dst, dim, reverse, combine, identity, args)
    if args.add_workspace is None:
        raise UnsupportedError(
            f"{what} of a fragment needs a shared workspace", where="LowerTileOp"
        )
    shape = tuple(int(const_value(e)) for e in src.extents)  # pyright: ignore[reportArgumentType]  # a constant here: checked by const_value above
    ws = args.add_workspace(f"{dst.buffer.name}_scan", shape, dst.buffer.dtype, "shared.dyn")
    whole = BufferRegion.full(ws)
    parts: list[Stmt] = []
    scan_in, scan_out = src, dst
    if src.buffer.scope == FRAGMENT:
        parts += [lower_fragment_transfer(src, whole, args, _store, what), _sync()]
        scan_in = whole
    if dst.buffer.scope == FRAGMENT:
        scan_out = whole
    parts.append(_shared_scan(scan_in, scan_out, dim, reverse, combine, identity, args))
    if dst.buffer.scope == FRAGMENT:
        parts += [_sync(), lower_fragment_transfer(whole, dst, args, _store, what)]
    return seq(*parts)


def _store(dst: BufferLoad, value: PrimExpr) -> Stmt:
    if value.dtype != dst.buffer.dtype:
        value = cast(dst.buffer.dtype, value)
    return BufferStore(dst.buffer, value, dst.indices)


def _sync() -> Stmt:
    return Evaluate(Call(int32, "sync_threads", ()))


def _shared_scan(
    src: BufferRegion,
    dst: BufferRegion,
    dim: int,
    reverse: bool,
    combine: Combine,
    identity: PrimExpr,
    args: LowerArgs,
) -> Stmt:
    """Each thread scans whole rows of shared tiles (rows round-robin over threads)."""
    src_buf, dst_buf = src.buffer, dst.buffer
    shape = [const_value(e) for e in src.extents]
    n = shape[dim]
    rows = 1
    for k, e in enumerate(shape):
        if k != dim:
            rows *= e  # pyright: ignore[reportOperatorIssue]  # a constant here: checked by const_value above
    row = Var("row", int32)
    t = Var("t", int32)
    other = [k for k in range(len(shape)) if k != dim]

    def coords(r: PrimExpr, pos: PrimExpr) -> list[PrimExpr]:
        out: list[PrimExpr] = [IntImm(0, int32)] * len(shape)
        rem = r
        for k in reversed(other):
            out[k] = rem % shape[k]
            rem = rem // shape[k]
        out[dim] = (n - 1 - pos) if reverse else pos  # pyright: ignore[reportOptionalOperand]  # a constant here: checked by const_value above
        return out

    acc_buf = make_buffer("scan_acc", (1,), dst_buf.dtype, "local")
    a = BufferLoad(acc_buf, (IntImm(0, int32),))
    c = coords(row, t)
    value: PrimExpr = BufferLoad(src_buf, tuple(m + x for m, x in zip(src.mins, c)))
    if value.dtype != dst_buf.dtype:
        value = cast(dst_buf.dtype, value)
    step = seq(
        BufferStore(acc_buf, combine(a, value), (IntImm(0, int32),)),
        BufferStore(dst_buf, a, tuple(m + x for m, x in zip(dst.mins, c))),
    )
    scan = seq(
        BufferStore(acc_buf, identity, (IntImm(0, int32),)),
        For(t, IntImm(0, int32), IntImm(n, int32), ForKind.SERIAL, step),  # pyright: ignore[reportArgumentType]  # a constant here: checked by const_value above
    )
    trips = -(-rows // args.num_threads)
    it = Var("it", int32)
    r_expr = it * args.num_threads + args.thread_var
    body: Stmt = IfThenElse(r_expr < rows, scan) if rows % args.num_threads else scan
    body = For(it, IntImm(0, int32), IntImm(trips, int32), ForKind.SERIAL, body)
    return Allocate(acc_buf, substitute(body, {row: r_expr}))


# -- what CumSum and CumMax share ------------------------------------------------------------------


def scan_layouts(op: Any, args: LayoutInferArgs, level: InferLevel) -> dict[Buffer, LayoutFact]:
    """COMMON: a fragment destination takes the fragment source's layout (and back), so the scan
    runs in registers; otherwise the default rules."""
    if level is not InferLevel.COMMON:
        return TileOperatorNode.infer_layout(op, args, level)
    src, dst = op.src.buffer, op.dst.buffer
    if src.scope != FRAGMENT or dst.scope != FRAGMENT or src is dst:
        return {}
    for have, want in ((src, dst), (dst, src)):
        if have in args.layout_map and want not in args.layout_map:
            return {want: LayoutFact(args.layout_map[have], args.plans.get(have))}
    return {}


def register_scan_lowerings(
    cls: Any, what: str, combine: Combine, start: Callable[[Any], PrimExpr]
) -> None:
    """Give the scan op `cls` its lowerings (the module docstring lists them); `combine(acc, x)`
    is one step, `start(dtype)` the running value's start."""

    @requirement("shared tiles or fragments")
    def operands(op: Any, args: OpArgs) -> str | None:
        return check_scan_operands(what, op.src, op.dst, op.dim)

    @requirement("whole warps")
    def warps(op: Any, args: OpArgs) -> str | None:
        return (
            None
            if args.num_threads % 32 == 0
            else f"the block's {args.num_threads} threads are not whole warps"
        )

    @requirement("fragments in one layout dealt in rounds")
    def rounds(op: Any, args: OpArgs) -> str | None:
        src, dst = op.src.buffer, op.dst.buffer
        if src.scope != FRAGMENT or dst.scope != FRAGMENT:
            return "a side is in shared memory"
        if not equivalent(args.layout_map[src], args.layout_map[dst]):
            return f"`{src.name}` and `{dst.name}` have different layouts"
        try:
            layout = args.layout_map[src]
            plan_register_scan(
                layout,
                op.dim,
                op.reverse,
                args.num_threads,
            )
        except UnsupportedError as e:
            return e.message
        return None

    def registers(op: Any, args: LowerArgs, analyzer: Any) -> Stmt:
        return lower_register_scan(
            op.src, op.dst, op.dim, op.reverse, combine, start(op.dst.buffer.dtype), args
        )

    def lines(op: Any, args: LowerArgs, analyzer: Any) -> Stmt:
        return lower_staged_scan(
            op.src, op.dst, op.dim, op.reverse, combine, start(op.dst.buffer.dtype), args, what
        )

    def rows(op: Any, args: LowerArgs, analyzer: Any) -> Stmt:
        return lower_scan(
            op.src, op.dst, op.dim, op.reverse, combine, start(op.dst.buffer.dtype), args, what
        )

    @requirement("shared tiles")
    def shared(op: Any, args: OpArgs) -> str | None:
        frag = [b.name for b in (op.src.buffer, op.dst.buffer) if b.scope == FRAGMENT]
        return f"`{frag[0]}` is a fragment" if frag else None

    # Shared operands go straight to `lines`; fragments prefer `registers`, and a fragment that
    # falls back to `staged` (through shared memory) or `rows` is reported under TSIR_EXPLAIN.
    cls.register_lowering("lines", operands, shared, warps)(lines)
    cls.register_lowering("registers", operands, warps, rounds, preferred=True)(registers)
    cls.register_lowering("staged", operands, warps, preferred=True)(lines)
    cls.register_lowering("rows", operands)(rows)
