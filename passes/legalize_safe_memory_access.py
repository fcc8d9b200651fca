"""LegalizeSafeMemoryAccess: bounds guards on global memory, only where they cannot be proved dead.

Requires: thread-level IR (after LowerTileOp), scalar accesses (before VectorizeLoop, which must see
the guards to decide whether a whole vector is in or out of bounds).
Guarantees: a store to global memory outside its buffer is skipped (wrapped in an `if`); a load
outside reads zero (`cond ? load : 0`). Conditions the analyzer proves (from loop, thread and block
ranges and enclosing `if`s) are dropped, so tiles that divide the shape get no guard at all.
"""

from __future__ import annotations

from tsir.buffer import Buffer
from tsir.expr import BufferLoad, Call, IntImm, PrimExpr, Select, cast, convert
from tsir.function import PrimFunc
from tsir.stmt import BufferStore, Evaluate, IfThenElse, Stmt

from .infra import PassContext, register_pass
from .scope import ScopedMutator

__all__ = ["LegalizeSafeMemoryAccess", "GUARDED_SCOPES"]

GUARDED_SCOPES = ("global", "symmetric")


class _Guard(ScopedMutator):
    def unproved(self, buffer: Buffer, indices: tuple[PrimExpr, ...]) -> list[PrimExpr]:
        conds: list[PrimExpr] = []
        for idx, extent in zip(indices, buffer.shape):
            for c in (idx >= IntImm(0, idx.dtype), idx < _same(extent, idx)):
                if isinstance(c, IntImm):
                    if c.value:
                        continue
                elif self.analyzer.can_prove(c):
                    continue
                conds.append(c)
        return conds

    def visit_BufferLoad(self, e: BufferLoad) -> PrimExpr:
        e = self.generic_visit(e)  # type: ignore[assignment]
        if e.buffer.scope not in GUARDED_SCOPES:
            return e
        conds = self.unproved(e.buffer, e.indices)
        if not conds:
            return e
        return Select(_all(conds), e, convert(0, e.dtype))

    def visit_Call(self, e: Call) -> PrimExpr:
        if e.op != "address_of" or not isinstance(e.args[0], BufferLoad):
            return self.generic_visit(e)  # type: ignore[return-value]
        # `&A[i]` computes an address and reads nothing: only its indices may hold loads to guard.
        load = e.args[0]
        indices = tuple(self.visit(i) for i in load.indices)
        if all(a is b for a, b in zip(indices, load.indices)):
            return e
        return e.replace(args=(load.replace(indices=indices),))

    def visit_Evaluate(self, s: Evaluate) -> Stmt:
        """An atomic add into global memory is a store: skipped when out of bounds."""
        call = s.value
        if not (isinstance(call, Call) and call.op == "atomic_add"):
            return self.generic_visit(s)
        target = call.args[0].args[0]  # type: ignore[attr-defined]  (address_of(BufferLoad))
        if target.buffer.scope not in GUARDED_SCOPES:
            return self.generic_visit(s)
        indices = tuple(self.visit(i) for i in target.indices)
        conds = self.unproved(target.buffer, indices)
        with self.assuming(*conds):
            value = self.visit(call.args[1])
        addr = call.args[0].replace(args=(target.replace(indices=indices),))  # type: ignore[attr-defined]
        out = Evaluate(call.replace(args=(addr, value)))
        return IfThenElse(_all(conds), out) if conds else out

    def visit_BufferStore(self, s: BufferStore) -> Stmt:
        if s.buffer.scope not in GUARDED_SCOPES:
            return self.generic_visit(s)
        indices = tuple(self.visit(i) for i in s.indices)
        conds = self.unproved(s.buffer, indices)
        with self.assuming(*conds):
            value = self.visit(s.value)
        store = s if value is s.value and indices == s.indices else BufferStore(s.buffer, value, indices)
        return IfThenElse(_all(conds), store) if conds else store


def _same(extent: PrimExpr, like: PrimExpr) -> PrimExpr:
    if extent.dtype == like.dtype:
        return extent

    return cast(like.dtype, extent)


def _all(conds: list[PrimExpr]) -> PrimExpr:
    out = conds[0]
    for c in conds[1:]:
        out = out & c
    return out


@register_pass("LegalizeSafeMemoryAccess")
def LegalizeSafeMemoryAccess(func: PrimFunc, ctx: PassContext) -> PrimFunc:
    """Guard global loads and stores that the analyzer cannot prove in bounds."""
    return _Guard().visit(func)

