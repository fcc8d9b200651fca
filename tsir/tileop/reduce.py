"""Reduce: `T.reduce_<kind>(src, dst, dim, clear=True)`, sum / max / min / absmax / abssum (and,
for integers, bitand / bitor / bitxor) of a fragment or a shared tile along one axis, into a
fragment or a shared tile. `clear=False` combines the result with `dst`'s values.

Layouts (COMMON): the result's layout follows from the source's: a row-group tile reduces to the
per-row (or per-column) layout of `reduced_fragment`, any other fragment (a gemm accumulator of any
warp policy, an annotated or replicated one) to the layout its own structure gives
(`reduce_plan.plan_line_reduction`). Lowerings, in order:
- `rows`: a row reduction of a row-group tile folds each thread's registers, then the G threads
  sharing a row with warp shuffles (and shared memory when G spans several warps);
- `columns`: a column reduction of a row-group tile folds the rows a thread holds, then the thread
  groups through a shared-memory workspace;
- `layout`: any fragment source, read off its layout (reduce_lowering.py), into a fragment of any
  layout or a shared tile;
- `staged`: a fragment whose lines are not held by butterfly groups of threads (3 rows dealt over
  4 thread groups, an annotated layout), through a shared copy (reported under TSIR_EXPLAIN);
- `shared`: a shared-tile source, G lanes per line, into a shared tile or a fragment.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..buffer import Buffer, BufferRegion, make_buffer
from ..dtype import DataType, int32
from ..errors import BuildError, UnsupportedError
from ..expr import (
    BufferLoad,
    Call,
    FloatImm,
    IntImm,
    Max,
    Min,
    PrimExpr,
    Select,
    Var,
    cast,
    const,
    const_value,
)
from ..layout.analysis import equivalent
from ..node import node
from ..printer_expr import is_full_region
from ..stmt import Allocate, BufferStore, Evaluate, For, ForKind, IfThenElse, Stmt, seq
from .base import (
    FRAGMENT,
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
from .planned_layouts import RowGroup, reduced_fragment
from .reduce_lowering import lower_fragment_reduce, lower_shared_reduce, lower_staged_reduce
from .reduce_plan import plan_line_reduction

if TYPE_CHECKING:
    from ..arith import Analyzer
    from ..printer_expr import ExprPrinter

__all__ = ["Reduce", "ReduceKind", "REDUCE_KINDS", "BIT_KINDS", "reduce_identity", "reduce_combine"]


class ReduceKind(OpEnum):
    SUM = "sum"
    MAX = "max"
    MIN = "min"
    ABSMAX = "absmax"
    ABSSUM = "abssum"
    BITAND = "bitand"
    BITOR = "bitor"
    BITXOR = "bitxor"


REDUCE_KINDS = tuple(k.value for k in ReduceKind)
BIT_KINDS = ("bitand", "bitor", "bitxor")
SHARED = ("shared", "shared.dyn")


def reduce_identity(kind: str, dt: DataType) -> PrimExpr:
    """The value a reduction of `kind` over `dt` starts from."""
    return _identity(kind, dt)


def reduce_combine(kind: str, a: PrimExpr, b: PrimExpr) -> PrimExpr:
    """One step of a reduction of `kind`."""
    return _combine(kind, a, b)


def _identity(kind: str, dt: DataType) -> PrimExpr:
    if kind in ("sum", "absmax", "abssum", "bitor", "bitxor"):
        return const(0, dt)
    if kind == "bitand":  # every bit set
        return IntImm(-1 if dt.is_signed_int else int(dt.max_value()), dt)
    if dt.is_float:
        return FloatImm(float("-inf") if kind == "max" else float("inf"), dt)
    return IntImm(int(dt.min_value() if kind == "max" else dt.max_value()), dt)


def _combine(kind: str, a: PrimExpr, b: PrimExpr) -> PrimExpr:
    if kind in ("sum", "abssum"):
        return a + b
    if kind in BIT_KINDS:
        return Call(a.dtype, f"bitwise_{kind[3:]}", (a, b))
    if kind in ("max", "absmax"):
        return Max(a, b)
    return Min(a, b)


def _prepare(kind: str, x: PrimExpr, dt: DataType) -> PrimExpr:
    if x.dtype != dt:
        x = cast(dt, x)
    if kind in ("absmax", "abssum") and not dt.is_unsigned:
        x = Call(dt, "abs", (x,))
    return x


@register_tile_op("tl.Reduce")
@node
class Reduce(TileOperatorNode):
    src: BufferRegion
    dst: BufferRegion
    dim: int
    kind: ReduceKind
    clear: bool = True

    def __post_init__(self) -> None:
        coerce_enums(self, kind=ReduceKind)

    def reads(self) -> tuple[BufferRegion, ...]:
        return (self.src,) if self.clear else (self.src, self.dst)

    def writes(self) -> tuple[BufferRegion, ...]:
        return (self.dst,)

    def title(self) -> str:
        return f"T.reduce_{self.kind}"

    @property
    def axis(self) -> int:
        """The reduced axis of a 2-D source (a 1-D source reduces along its only axis, as rows)."""
        return 1 if len(self.src.buffer.shape) == 1 else self.dim

    def print_form(self, p: ExprPrinter) -> str:
        try:  # T.reduce_* rebuilds only what the builder accepts
            check_reduce(self.src, self.dst, self.dim, self.kind)
        except BuildError:
            return TileOperatorNode.print_form(self, p)
        clear = "" if self.clear else ", clear=False"
        regions = f"{p.region(self.src)}, {p.region(self.dst)}"
        return f"T.reduce_{self.kind}({regions}, dim={self.dim}{clear})"

    def infer_layout(self, args: LayoutInferArgs, level: InferLevel) -> dict[Buffer, LayoutFact]:
        """COMMON: the result's layout from the source's (a row-group tile's per-row or per-column
        layout; for any other fragment, the layout its structure gives; none when the source
        must be staged through shared memory: the result then takes a free layout)."""
        if level is not InferLevel.COMMON:
            return TileOperatorNode.infer_layout(self, args, level)
        src, dst = self.src.buffer, self.dst.buffer
        if src.scope != FRAGMENT or dst.scope != FRAGMENT:
            return {}
        if src not in args.layout_map or dst in args.layout_map:
            return {}
        plan = args.plans.get(src)
        if isinstance(plan, RowGroup):
            dim = self.dim if plan.rows > 1 or len(src.shape) == 2 else 1
            return {dst: LayoutFact(reduced_fragment(plan, dim))}
        layout = args.layout_map[src]
        try:
            derived = plan_line_reduction(
                layout,
                self.axis_of_layout,
                args.num_threads,
            )
        except UnsupportedError:
            return {}  # no butterfly plan: the result takes a free layout, the source is staged
        return {dst: LayoutFact(derived.layout)}

    @property
    def axis_of_layout(self) -> int:
        """The reduced axis as `plan_line_reduction` takes it (0 for a 1-D source)."""
        return 0 if len(self.src.buffer.shape) == 1 else self.dim

    def _finish(self, dst: Any, slot: PrimExpr, acc: PrimExpr) -> Stmt:
        value = acc if self.clear else _combine(self.kind, BufferLoad(dst, (slot,)), acc)
        return BufferStore(dst, value, (slot,))

    def _rows(self, p: RowGroup, src: Buffer, dst: Buffer, args: LowerArgs) -> Stmt:
        dt = dst.dtype
        acc_buf = _scalar(f"{self.dst.buffer.name}_acc", dt)
        acc = BufferLoad(acc_buf, (IntImm(0, int32),))
        per_row = p.col_slots * p.vector
        slot = _var("r")
        c = _var("c")
        tid = args.thread_var
        value: PrimExpr = _prepare(self.kind, BufferLoad(src, (slot * per_row + c,)), dt)
        fold = BufferStore(acc_buf, _combine(self.kind, acc, value), (IntImm(0, int32),))
        if p.rows % p.groups:
            # The last row slot of some groups is past the tile: those registers hold nothing
            # (never written), so they are not read; the group's result for that slot is unused.
            fold = IfThenElse(slot * p.groups + tid // p.group < p.rows, fold)
        body: list[Stmt] = [
            BufferStore(acc_buf, _identity(self.kind, dt), (IntImm(0, int32),)),
            For(c, IntImm(0, int32), IntImm(per_row, int32), ForKind.UNROLLED, fold),
        ]
        off = min(p.group, 32) // 2
        while off >= 1:
            shfl = Call(dt, "tsir.reduce.shfl_xor", (acc, IntImm(off, int32)))
            body.append(BufferStore(acc_buf, _combine(self.kind, acc, shfl), (IntImm(0, int32),)))
            off //= 2
        if p.group > 32:
            if args.add_workspace is None:
                raise UnsupportedError(
                    "a reduction across warps needs a shared workspace", where="LowerTileOp"
                )
            warps = args.num_threads // 32
            ws = args.add_workspace(f"{self.dst.buffer.name}_red", (warps,), dt, "shared.dyn")
            per_group = p.group // 32
            warp = tid // 32
            body.append(IfThenElse(tid % 32 == 0, BufferStore(ws, acc, (warp,))))
            body.append(Evaluate(Call(int32, "sync_threads", ())))
            first = (tid // p.group) * per_group
            total: PrimExpr = BufferLoad(ws, (first,))
            for w in range(1, per_group):
                total = _combine(self.kind, total, BufferLoad(ws, (first + w,)))
            body.append(BufferStore(acc_buf, total, (IntImm(0, int32),)))
            body.append(Evaluate(Call(int32, "sync_threads", ())))
        finish = self._finish(dst, slot, acc)
        if p.rows % p.groups:
            # Only the groups holding a row in this slot keep (or, clear=False, combine into) it.
            finish = IfThenElse(slot * p.groups + tid // p.group < p.rows, finish)
        body.append(finish)
        loop = For(slot, IntImm(0, int32), IntImm(p.row_slots, int32), ForKind.UNROLLED, seq(*body))
        return Allocate(acc_buf, loop)

    def _columns(self, p: RowGroup, src: Buffer, dst: Buffer, args: LowerArgs) -> Stmt:
        dt = dst.dtype
        tid = args.thread_var
        per_row = p.col_slots * p.vector
        c = _var("c")
        r = _var("r")
        g = tid // p.group
        col = ((c // p.vector) * p.group + tid % p.group) * p.vector + c % p.vector
        acc_buf = _scalar(f"{self.dst.buffer.name}_acc", dt)
        acc = BufferLoad(acc_buf, (IntImm(0, int32),))
        if args.add_workspace is None:
            raise UnsupportedError(
                "a column reduction needs a shared workspace", where="LowerTileOp"
            )
        ws = args.add_workspace(f"{self.dst.buffer.name}_red", (p.groups, p.cols), dt, "shared.dyn")
        value: PrimExpr = _prepare(self.kind, BufferLoad(src, (r * per_row + c,)), dt)
        if p.rows % p.groups:
            value = Select(r * p.groups + g < p.rows, value, _identity(self.kind, dt))
        partial = seq(
            BufferStore(acc_buf, _identity(self.kind, dt), (IntImm(0, int32),)),
            For(
                r,
                IntImm(0, int32),
                IntImm(p.row_slots, int32),
                ForKind.UNROLLED,
                BufferStore(acc_buf, _combine(self.kind, acc, value), (IntImm(0, int32),)),
            ),
            BufferStore(ws, acc, (g, col)),
        )
        total: PrimExpr = BufferLoad(ws, (IntImm(0, int32), col))
        for k in range(1, p.groups):
            total = _combine(self.kind, total, BufferLoad(ws, (IntImm(k, int32), col)))
        final = self._finish(dst, c, total)
        loops = seq(
            For(c, IntImm(0, int32), IntImm(per_row, int32), ForKind.UNROLLED, partial),
            Evaluate(Call(int32, "sync_threads", ())),
            For(c, IntImm(0, int32), IntImm(per_row, int32), ForKind.UNROLLED, final),
        )
        return Allocate(acc_buf, loops)


def _var(name: str) -> Var:
    return Var(name, int32)


def _scalar(name: str, dt: DataType) -> Buffer:
    return make_buffer(name, (1,), dt, "local")


# -- lowerings -------------------------------------------------------------------------------------


def _registers(op: Reduce, args: LowerArgs) -> tuple[Buffer, Buffer]:
    return args.buffer_remap[op.src.buffer], args.buffer_remap[op.dst.buffer]


@requirement("a row-group tile into the layout its reduction gives")
def _planned(op: Reduce, args: OpArgs) -> str | None:
    remap = getattr(args, "buffer_remap", {})
    plan = args.plans.get(op.src.buffer)
    if not isinstance(plan, RowGroup) or op.src.buffer not in remap or op.dst.buffer not in remap:
        return (
            f"`{op.src.buffer.name}` -> `{op.dst.buffer.name}` are not both fragments, the source "
            f"a row-group tile"
        )
    if plan.threads != args.num_threads:
        return f"the tile is spread over {plan.threads} of the block's {args.num_threads} threads"
    dim = op.dim if plan.rows > 1 or len(op.src.buffer.shape) == 2 else 1
    if not equivalent(args.layout_map[op.dst.buffer], reduced_fragment(plan, dim)):
        return f"`{op.dst.buffer.name}` has another layout"
    return None


@requirement("reduced along rows")
def _along_rows(op: Reduce, args: OpArgs) -> str | None:
    return None if op.axis == 1 else f"dim={op.dim} reduces columns"


@requirement("reduced along columns")
def _along_columns(op: Reduce, args: OpArgs) -> str | None:
    return None if op.axis == 0 else f"dim={op.dim} reduces rows"


@requirement("a fragment source")
def _fragment_source(op: Reduce, args: OpArgs) -> str | None:
    if op.src.buffer.scope != FRAGMENT:
        return f"`{op.src.buffer.name}` is {op.src.buffer.scope}"
    try:
        layout = args.layout_map[op.src.buffer]
        plan_line_reduction(layout, op.axis_of_layout, args.num_threads)
    except UnsupportedError as e:
        return e.message
    return None


@requirement("a shared-tile source")
def _shared_source(op: Reduce, args: OpArgs) -> str | None:
    return (
        None
        if op.src.buffer.scope in SHARED
        else f"`{op.src.buffer.name}` is {op.src.buffer.scope}"
    )


def _parts(op: Reduce) -> tuple[Any, Any, PrimExpr]:
    dt = op.dst.buffer.dtype

    def combine(a: PrimExpr, b: PrimExpr) -> PrimExpr:
        return _combine(op.kind, a, b)

    def prepare(x: PrimExpr) -> PrimExpr:
        return _prepare(op.kind, x, dt)

    return combine, prepare, _identity(op.kind, dt)


@Reduce.register_lowering("rows", _planned, _along_rows)
def _lower_rows(op: Reduce, args: LowerArgs, analyzer: Analyzer) -> Stmt:
    plan = args.plans[op.src.buffer]
    assert isinstance(plan, RowGroup)
    return op._rows(plan, *_registers(op, args), args)


@Reduce.register_lowering("columns", _planned, _along_columns)
def _lower_columns(op: Reduce, args: LowerArgs, analyzer: Analyzer) -> Stmt:
    plan = args.plans[op.src.buffer]
    assert isinstance(plan, RowGroup)
    return op._columns(plan, *_registers(op, args), args)


@requirement("a fragment source, a shared workspace")
def _any_fragment(op: Reduce, args: OpArgs) -> str | None:
    if op.src.buffer.scope != FRAGMENT:
        return f"`{op.src.buffer.name}` is {op.src.buffer.scope}"
    if getattr(args, "add_workspace", None) is None:
        return "no shared workspace can be allocated here"
    return None


@Reduce.register_lowering("shared", _shared_source)
def _lower_shared(op: Reduce, args: LowerArgs, analyzer: Analyzer) -> Stmt:
    return lower_shared_reduce(op, args, *_parts(op))


@Reduce.register_lowering("layout", _fragment_source, preferred=True)
def _lower_layout(op: Reduce, args: LowerArgs, analyzer: Analyzer) -> Stmt:
    return lower_fragment_reduce(op, args, *_parts(op))


@Reduce.register_lowering("staged", _any_fragment)
def _lower_staged(op: Reduce, args: LowerArgs, analyzer: Analyzer) -> Stmt:
    return lower_staged_reduce(op, args, *_parts(op))


def check_reduce(src: BufferRegion, dst: BufferRegion, dim: int, kind: str) -> None:
    where = f"T.reduce_{kind}"
    if kind not in REDUCE_KINDS:
        raise BuildError(f"unknown reduction {kind!r}; expected one of {', '.join(REDUCE_KINDS)}")
    for r, role in ((src, "source"), (dst, "destination")):
        if r.buffer.scope not in (FRAGMENT, *SHARED):
            raise BuildError(
                f"{where}: the {role} `{r.buffer.name}` must be a fragment (T.alloc_fragment) or a "
                f"shared tile (T.alloc_shared), not {r.buffer.scope}"
            )
        if not is_full_region(r):
            raise BuildError(
                f"{where}: the {role} must be a whole buffer, got a slice of `{r.buffer.name}`"
            )
    if kind in BIT_KINDS and not dst.buffer.dtype.is_int:
        raise BuildError(f"{where} takes integers; `{dst.buffer.name}` is {dst.buffer.dtype}")
    nd = len(src.buffer.shape)
    if nd not in (1, 2):
        raise BuildError(f"{where}: the source must be 1-D or 2-D, got {nd}-D")
    if not 0 <= dim < nd:
        raise BuildError(
            f"{where}: dim={dim} is out of range for the {nd}-D source `{src.buffer.name}`"
        )
    want = [d for k, d in enumerate(src.buffer.shape) if k != dim] or [IntImm(1, int32)]
    got = list(dst.buffer.shape)
    if [const_value(x) for x in want] != [const_value(x) for x in got]:
        raise BuildError(
            f"{where}: reducing `{src.buffer.name}` "
            f"{tuple(const_value(x) for x in src.buffer.shape)} along dim {dim} gives shape "
            f"{tuple(const_value(x) for x in want)}, but `{dst.buffer.name}` "
            f"is {tuple(const_value(x) for x in got)}"
        )
