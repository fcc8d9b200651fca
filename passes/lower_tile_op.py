"""LowerTileOp: tile operators and `T.Parallel` nests become thread-level loops.

Requires: tile ops on global/shared/local buffers (fragments need LayoutInference first).
Guarantees: no TileOpStmt and no PARALLEL loop remains inside kernels; element-wise work is spread
over the block's threads with vector lanes innermost (VECTORIZED loops that VectorizeLoop lowers).
"""

from __future__ import annotations

from typing import Any

from tsir.arith import Analyzer
from tsir.errors import TSIRError, UnsupportedError
from tsir.expr import IntImm, PrimExpr, Var
from tsir.function import PrimFunc
from tsir.stmt import For, ForKind, KernelLaunch, Stmt, TileOpStmt
from tsir.tileop import LowerArgs
from tsir.tileop.copy import index_dtype, lower_elementwise
from tsir.visitor import Mutator, collect, substitute
from tsir.buffer import BufferRegion, Range

from .infra import PassContext, register_pass

__all__ = ["LowerTileOp", "linear_thread_index"]


def linear_thread_index(k: KernelLaunch) -> PrimExpr:
    """threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z)."""
    tid: PrimExpr = k.thread_vars[-1]
    for v, n in zip(reversed(k.thread_vars[:-1]), reversed(k.threads[:-1])):
        tid = tid * n + v
    return tid


class _Lower(Mutator):
    def __init__(self, ctx: PassContext, kernel: KernelLaunch):
        super().__init__()
        self.kernel = kernel
        self.args = LowerArgs(ctx.target, linear_thread_index(kernel), kernel.num_threads)
        self.analyzer = Analyzer()

    def visit_TileOpStmt(self, s: TileOpStmt) -> Stmt:
        op = s.op
        if any(r.buffer.scope == "local.fragment" for r in (*op.reads(), *op.writes())):
            raise UnsupportedError(
                f"{type(op).__name__}: fragment buffers need layout inference, which this pipeline "
                f"does not run yet",
                where="LowerTileOp",
            )
        try:
            out = op.lower(self.args, self.analyzer)
        except TSIRError:
            raise
        return self.visit(out)

    def visit_For(self, s: For) -> Stmt:
        if s.kind is not ForKind.PARALLEL:
            return self.generic_visit(s)
        loop_vars: list[Var] = []
        extents: list[PrimExpr] = []
        body: Stmt = s
        while isinstance(body, For) and body.kind is ForKind.PARALLEL:
            if not isinstance(body.min, IntImm) or body.min.value != 0:
                body = body.replace(
                    body=substitute(body.body, {body.loop_var: body.loop_var + body.min}),
                    min=IntImm(0, body.extent.dtype),
                )
            loop_vars.append(body.loop_var)
            extents.append(body.extent)
            body = body.body
        body = self.visit(body)
        if collect(body, For) and any(f.kind is ForKind.PARALLEL for f in collect(body, For)):
            raise UnsupportedError("a T.Parallel nested under other statements of a T.Parallel", where="LowerTileOp")
        buffers = {x.buffer for x in collect(body, (_load_cls(), _store_cls()))}
        elem = max((b.dtype.bytes for b in buffers if b.scope not in ("local", "local.var")), default=4)
        # The first written buffer decides whether work is split over threads.
        stores = collect(body, _store_cls())
        dst = stores[0].buffer if stores else None
        region = BufferRegion(dst, tuple(Range(IntImm(0), d) for d in dst.shape)) if dst else None
        stmt_body = body

        def make(coords: list[PrimExpr]) -> Stmt:
            return substitute(stmt_body, dict(zip(loop_vars, coords)))

        if region is None:
            raise UnsupportedError("a T.Parallel loop that stores nothing", where="LowerTileOp")
        _ = index_dtype
        return lower_elementwise(region, extents, make, self.args, elem, loop_vars[0].name)


def _load_cls() -> Any:
    from tsir.expr import BufferLoad

    return BufferLoad


def _store_cls() -> Any:
    from tsir.stmt import BufferStore

    return BufferStore


class _Kernels(Mutator):
    def __init__(self, ctx: PassContext):
        super().__init__()
        self.ctx = ctx

    def visit_KernelLaunch(self, k: KernelLaunch) -> Stmt:
        return k.replace(body=_Lower(self.ctx, k).visit(k.body))


@register_pass("LowerTileOp")
def LowerTileOp(func: PrimFunc, ctx: PassContext) -> PrimFunc:
    """Lower tile operators and T.Parallel nests to thread-level loops."""
    return _Kernels(ctx).visit(func)
