"""InjectAsyncCopy: 16-byte global->shared moves of pipelined copies become cp.async.

Requires: vector moves (VectorizeLoop) on physical shared indices (LowerSharedLayout), inside the
`async_copy` regions that pipelined `T.copy`s lower to. Guarantees: `S[v..] = G[v..]` of 16 bytes
becomes `cp_async_16(&S, &G, true)`, and `if c: S = G else S = 0` becomes `cp_async_16(&S, &G, c)`
(cp.async zero-fills when its source size is 0, and reads nothing then). Other stores in the
region stay synchronous, which is still correct: the pipeline's wait + barrier orders them too.
The `async_copy` region markers stay for ThreadSync.
"""

from __future__ import annotations

from tsir.dtype import DataType, int32
from tsir.expr import Broadcast, BufferLoad, Call, IntImm, PrimExpr, Ramp
from tsir.function import PrimFunc
from tsir.stmt import AttrStmt, BufferStore, Evaluate, IfThenElse, Stmt
from tsir.tileop.copy import ASYNC_COPY_ATTR
from tsir.visitor import Mutator

from .infra import PassContext, register_pass

__all__ = ["InjectAsyncCopy"]

_SHARED = ("shared", "shared.dyn")
_GLOBAL = ("global", "symmetric")


def _move16(s: Stmt) -> tuple[BufferLoad, BufferLoad] | None:
    """(dst element, src element) of a 16-byte global->shared vector move, else None."""
    if not (isinstance(s, BufferStore) and isinstance(s.value, BufferLoad)):
        return None
    src = s.value
    last_d, last_s = s.indices[-1], src.indices[-1]
    if not (isinstance(last_d, Ramp) and isinstance(last_s, Ramp)):
        return None
    if s.buffer.scope not in _SHARED or src.buffer.scope not in _GLOBAL:
        return None
    if last_d.lanes * s.buffer.dtype.bytes != 16:
        return None
    return (
        BufferLoad(s.buffer, (*s.indices[:-1], last_d.base)),
        BufferLoad(src.buffer, (*src.indices[:-1], last_s.base)),
    )


def _is_zero_fill(s: Stmt | None) -> bool:
    return isinstance(s, BufferStore) and isinstance(s.value, Broadcast)


def _cp_async(dst: BufferLoad, src: BufferLoad, valid: PrimExpr) -> Stmt:
    handle = DataType("handle")
    return Evaluate(
        Call(
            int32,
            "tsir.async_copy.cp_async_16",
            (
                Call(handle, "address_of", (dst,)),
                Call(handle, "address_of", (src,)),
                valid,
            ),
        )
    )


class _Async(Mutator):
    def __init__(self) -> None:
        super().__init__()
        self.depth = 0

    def visit_AttrStmt(self, s: AttrStmt) -> Stmt:
        if s.key != ASYNC_COPY_ATTR:
            return self.generic_visit(s)
        self.depth += 1
        body = self.visit(s.body)
        self.depth -= 1
        # The marker stays: ThreadSync leaves these accesses to the pipeline, then drops it.
        return s.replace(body=body)

    def visit_BufferStore(self, s: BufferStore) -> Stmt:
        if self.depth:
            m = _move16(s)
            if m is not None:
                return _cp_async(*m, IntImm(1, DataType("bool")))
        return s

    def visit_IfThenElse(self, s: IfThenElse) -> Stmt:
        if self.depth and _is_zero_fill(s.else_case):
            m = _move16(s.then_case)
            if m is not None:
                return _cp_async(*m, s.cond)
        return self.generic_visit(s)


@register_pass("InjectAsyncCopy")
def InjectAsyncCopy(func: PrimFunc, ctx: PassContext) -> PrimFunc:
    """Turn the 16-byte moves of pipelined copies into cp.async (zero-filling when guarded)."""
    return _Async().visit(func)
