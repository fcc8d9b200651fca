"""LegalizeSafeMemoryAccess: bounds guards on global memory, only where they cannot be proved dead.

Requires: thread-level IR (after LowerTileOp), scalar accesses (before VectorizeLoop, which must see
the guards to decide whether a whole vector is in or out of bounds).
Guarantees: a store to global memory outside its buffer is skipped (wrapped in an `if`), and so is
a call that writes global memory through a pointer (an atomic, by its declared effects; one whose
previous value is kept reads 0 there); a load outside reads zero (`cond ? load : 0`).
Conditions the analyzer proves (from loop, thread and block
ranges and enclosing `if`s) are dropped, so tiles that divide the shape get no guard at all.
"""

from __future__ import annotations

from tsir.buffer import Buffer
from tsir.expr import BufferLoad, Call, IntImm, PrimExpr, Select, cast, convert
from tsir.function import PrimFunc
from tsir.intrin import DEVICE_FUNCTIONS, Access, device_function_name
from tsir.stmt import BufferStore, Evaluate, IfThenElse, Stmt

from .infra import PassContext, register_pass
from .scope import ScopedMutator

__all__ = ["LegalizeSafeMemoryAccess", "GUARDED_SCOPES"]

GUARDED_SCOPES = ("global", "symmetric")
_WRITES = (Access.WRITE, Access.READ_WRITE, Access.ATOMIC)


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
        e = self.generic_visit(e)
        if e.buffer.scope not in GUARDED_SCOPES:
            return e
        conds = self.unproved(e.buffer, e.indices)
        if not conds:
            return e
        return Select(_all(conds), e, convert(0, e.dtype))

    def visit_Call(self, e: Call) -> PrimExpr:
        if e.op != "address_of" or not isinstance(e.args[0], BufferLoad):
            return self.generic_visit(e)
        # `&A[i]` computes an address and reads nothing: only its indices may hold loads to guard.
        load = e.args[0]
        indices = tuple(self.visit(i) for i in load.indices)
        if all(a is b for a, b in zip(indices, load.indices)):
            return e
        return e.replace(args=(load.replace(indices=indices),))

    def guarded_call(self, call: Call) -> tuple[Call, list[PrimExpr]] | None:
        """A call that writes global memory through a pointer argument (an atomic: what
        `tsir.intrin.DEVICE_FUNCTIONS` declares), with its other operands guarded, and the
        conditions under which every element it writes is in bounds (None: it writes none)."""
        fn = DEVICE_FUNCTIONS.get(device_function_name(call.op))
        if fn is None:
            return None
        targets = [
            k
            for k, a in enumerate(call.args)
            if k < len(fn.effects)
            and fn.effects[k] in _WRITES
            and isinstance(a, Call)
            and a.op == "address_of"
            and isinstance(a.args[0], BufferLoad)
            and a.args[0].buffer.scope in GUARDED_SCOPES
        ]
        if not targets:
            return None
        conds: list[PrimExpr] = []
        args = list(call.args)
        for k in targets:
            load = args[k].args[0]  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
            indices = tuple(self.visit(i) for i in load.indices)
            conds += self.unproved(load.buffer, indices)
            if fn.elements > 1:  # the last element of a vector atomic too
                end = indices[-1] + (fn.elements - 1)
                c = end < _same(load.buffer.shape[-1], end)
                if not (isinstance(c, IntImm) and c.value) and not self.analyzer.can_prove(c):
                    conds.append(c)
            pointer: Call = args[k]  # pyright: ignore[reportAssignmentType]  # an address_of, checked above
            args[k] = pointer.replace(args=(load.replace(indices=indices),))
        with self.assuming(*conds):
            args = [a if k in targets else self.visit(a) for k, a in enumerate(args)]
        return call.replace(args=tuple(args)), conds

    def visit_Evaluate(self, s: Evaluate) -> Stmt:
        """An atomic into global memory is a store: skipped when out of bounds."""
        call = s.value
        guarded = self.guarded_call(call) if isinstance(call, Call) else None
        if guarded is None:
            return self.generic_visit(s)
        new, conds = guarded
        out = Evaluate(new)
        return IfThenElse(_all(conds), out) if conds else out

    def visit_BufferStore(self, s: BufferStore) -> Stmt:
        if s.buffer.scope not in GUARDED_SCOPES:
            guarded = self.guarded_call(s.value) if isinstance(s.value, Call) else None
            if guarded is not None:
                # `old = atomic(...)` (return_prev): skipped outside the buffer, `old` reads 0.
                new, conds = guarded
                value = Select(_all(conds), new, convert(0, new.dtype)) if conds else new
                return BufferStore(s.buffer, value, tuple(self.visit(i) for i in s.indices))
            return self.generic_visit(s)
        indices = tuple(self.visit(i) for i in s.indices)
        conds = self.unproved(s.buffer, indices)
        with self.assuming(*conds):
            value = self.visit(s.value)
        store = (
            s
            if value is s.value and indices == s.indices
            else BufferStore(s.buffer, value, indices)
        )
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
