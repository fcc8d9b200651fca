"""VectorizeLoop: 16-byte memory accesses for VECTORIZED loops, where the analyzer proves them legal.

Requires: thread-level IR with bounds guards already placed (LegalizeSafeMemoryAccess).
Guarantees: no VECTORIZED loop remains. A loop `for v in vectorized(V): [if c:] dst[.., b + v] = f(...)`
becomes: vector loads of each operand that is contiguous in `v` and provably aligned into per-thread
register arrays, the arithmetic as an unrolled scalar loop over those registers, and one vector store
when the destination is contiguous and aligned. Accesses that are not stay scalar inside the unrolled
loop, so the result is always correct; a guard that depends on the lane keeps everything scalar. A pure
copy (same dtype, no arithmetic) becomes a direct vector copy.
"""

from __future__ import annotations

from typing import Any, TypeGuard

from tsir.buffer import Buffer, make_buffer
from tsir.expr import (
    GE,
    GT,
    LE,
    LT,
    NE,
    And,
    Broadcast,
    BufferLoad,
    CmpOp,
    FloatImm,
    FloorMod,
    IntImm,
    PrimExpr,
    Ramp,
    Select,
    Var,
    const_value,
    convert,
)
from tsir.function import PrimFunc
from tsir.stmt import Allocate, BufferStore, For, ForKind, IfThenElse, SeqStmt, Stmt, seq
from tsir.structural import structural_equal
from tsir.visitor import Mutator, collect, substitute

from .infra import PassContext, register_pass
from .scope import ScopedMutator

__all__ = ["VectorizeLoop"]

VECTOR_SCOPES = ("global", "symmetric", "shared", "shared.dyn")


def _uses(e: Any, v: Var) -> bool:
    return any(x is v for x in collect(e, Var))


def _is_zero(e: PrimExpr) -> bool:
    return (isinstance(e, IntImm) and e.value == 0) or (isinstance(e, FloatImm) and e.value == 0.0)


def _lane_if(s: Stmt, v: Var) -> TypeGuard[IfThenElse]:
    """An `if` without else whose condition depends on the lane."""
    return isinstance(s, IfThenElse) and s.else_case is None and _uses(s.cond, v)


def _reads_written(cond: PrimExpr, body: SeqStmt) -> bool:
    """`cond` reads a buffer that `body` writes (a guard that must be evaluated once)."""
    written = {x.buffer for x in collect(body, BufferStore)}
    return any(ld.buffer in written for ld in collect(cond, BufferLoad))


def _lanes_independent(body: SeqStmt, v: Var) -> bool:
    """Every statement is a store, and each buffer the body writes is accessed at one index tuple
    (the same in every statement, differing per lane): no lane reads or writes another lane's
    element, so the statements may run one after the other over all lanes."""
    if not all(isinstance(x, BufferStore) for x in body.stmts):
        return False
    written = {x.buffer for x in body.stmts if isinstance(x, BufferStore)}
    seen: dict[Buffer, tuple[PrimExpr, ...]] = {}
    for acc in collect(body, (BufferLoad, BufferStore)):
        if acc.buffer not in written:
            continue
        first = seen.setdefault(acc.buffer, acc.indices)
        if not all(structural_equal(a, b) for a, b in zip(first, acc.indices)):
            return False
        if not any(_uses(i, v) for i in acc.indices):
            return False  # every lane writes the same element
    return True


class _Vectorize(ScopedMutator):
    def __init__(self) -> None:
        super().__init__()
        self.counter = 0

    def fresh(self, base: str, dtype: Any, lanes: int) -> Buffer:
        self.counter += 1
        return make_buffer(f"{base}_v{self.counter}", (lanes,), dtype, "local")

    def visit_For(self, s: For) -> Stmt:
        if s.kind is not ForKind.VECTORIZED:
            return super().visit_For(s)
        s = super().visit_For(s)  # pyright: ignore[reportAssignmentType]  # narrowed by a check above that the checker cannot follow
        lanes = const_value(s.extent)
        if lanes is None or lanes <= 1 or const_value(s.min) != 0:
            return s.replace(kind=ForKind.UNROLLED)
        return self.vectorize(s, lanes)

    # -- legality --------------------------------------------------------------------------------
    def vector_base(
        self, buffer: Buffer, indices: tuple[PrimExpr, ...], v: Var, lanes: int
    ) -> PrimExpr | None:
        """The base of the last index if the access is `buffer[..., base + v]`, contiguous and aligned."""
        if buffer.scope not in VECTOR_SCOPES or buffer.strides:
            return None
        if any(_uses(i, v) for i in indices[:-1]):
            return None
        base = self.analyzer.simplify(indices[-1] - v)
        if _uses(base, v):
            return None
        width = lanes * buffer.dtype.bytes
        if width not in (2, 4, 8, 16) or buffer.align < width:
            return None
        # Element offset of the vector's first lane must be a multiple of `lanes`.
        offset: PrimExpr = base
        for idx, stride in zip(indices[:-1], buffer.row_major_strides()[:-1]):
            offset = offset + idx * stride
        if not self.analyzer.can_prove(FloorMod(offset, IntImm(lanes, offset.dtype)) == 0):
            return None
        return base

    # -- rewriting -------------------------------------------------------------------------------
    def vectorize(self, loop: For, lanes: int) -> Stmt:
        v = loop.loop_var
        body = loop.body
        guards: list[PrimExpr] = []
        while isinstance(body, IfThenElse) and body.else_case is None and not _uses(body.cond, v):
            guards.append(body.cond)
            body = body.then_case
        split = body.then_case if _lane_if(body, v) else body
        if (
            isinstance(split, SeqStmt)
            and _lanes_independent(split, v)
            and (split is body or not _reads_written(body.cond, split))  # pyright: ignore[reportAttributeAccessIssue]  # narrowed by a check above that the checker cannot follow
        ):
            # Several statements: each becomes its own vector loop (all lanes of one statement,
            # then the next; a lane guard goes with each), legal since every lane touches only
            # its own elements of what the body writes.
            parts = []
            for k, x in enumerate(split.stmts):
                one = IfThenElse(body.cond, x) if split is not body else x  # pyright: ignore[reportAttributeAccessIssue]  # narrowed by a check above that the checker cannot follow
                var = v if k == 0 else Var(v.name, v.dtype)  # each loop binds its own variable
                part = loop.replace(loop_var=var, body=one if k == 0 else substitute(one, {v: var}))
                parts.append(self.vectorize(part, lanes))
            fissioned: Stmt = seq(*parts)
            for g in reversed(guards):
                fissioned = IfThenElse(g, fissioned)
            return fissioned
        lane_guard: PrimExpr | None = None
        if isinstance(body, IfThenElse) and body.else_case is None and self.affine_in(body.cond, v):
            # A tail: vectorize when the first and last lane are in (the guard is convex in v).
            lane_guard = body.cond
            body = body.then_case
        if not isinstance(body, BufferStore):
            return loop.replace(kind=ForKind.UNROLLED)
        store = body
        with self.assuming(*guards):
            if lane_guard is None:
                out = self.rewrite_store(store, v, lanes)
            else:
                whole = self.analyzer.simplify(self.whole_vector(lane_guard, v, lanes))
                with self.analyzer.assume(whole):
                    fast = self.rewrite_store(store, v, lanes)
                out = (
                    None
                    if fast is None
                    else IfThenElse(
                        whole,
                        fast,
                        loop.replace(kind=ForKind.UNROLLED, body=IfThenElse(lane_guard, store)),
                    )
                )
        if out is None:
            return loop.replace(kind=ForKind.UNROLLED)
        for g in reversed(guards):
            out = IfThenElse(g, out)
        return out

    def whole_vector(self, cond: PrimExpr, v: Var, lanes: int) -> PrimExpr:
        """A condition, free of v, that holds iff `cond` holds for every lane (cond is affine in v)."""
        if isinstance(cond, And):
            return self.whole_vector(cond.a, v, lanes) & self.whole_vector(cond.b, v, lanes)
        first = substitute(cond, {v: IntImm(0, v.dtype)})
        last = substitute(cond, {v: IntImm(lanes - 1, v.dtype)})
        if not _uses(cond, v):
            return cond
        diff = cond.a - cond.b  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
        slope = self.analyzer.simplify(
            substitute(diff, {v: IntImm(1, v.dtype)}) - substitute(diff, {v: IntImm(0, v.dtype)})
        )
        rising = isinstance(slope, IntImm) and slope.value > 0
        falling = isinstance(slope, IntImm) and slope.value < 0
        # `a < b` with a - b rising in v: the last lane is the tightest, and so on.
        if isinstance(cond, (LT, LE)) and (rising or falling):
            return last if rising else first
        if isinstance(cond, (GT, GE)) and (rising or falling):
            return first if rising else last
        return first & last

    def affine_in(self, cond: PrimExpr, v: Var) -> bool:
        """cond is a conjunction of comparisons whose sides are affine in v (a convex set of v)."""
        if isinstance(cond, And):
            return self.affine_in(cond.a, v) and self.affine_in(cond.b, v)
        if isinstance(cond, NE) and _uses(cond, v):
            # `v != c` is not convex (it holds at both ends of a vector and fails inside it), so
            # its first and last lanes do not decide the whole vector.
            return False
        if not isinstance(cond, CmpOp) or not _uses(cond, v):
            return isinstance(cond, CmpOp)
        d = cond.a - cond.b
        zero, one = IntImm(0, v.dtype), IntImm(1, v.dtype)
        d0 = substitute(d, {v: zero})
        slope = self.analyzer.simplify(substitute(d, {v: one}) - d0)
        if not isinstance(slope, IntImm):
            return False
        rest = self.analyzer.simplify(d - d0 - slope * v)
        return isinstance(rest, IntImm) and rest.value == 0

    def settle(self, load: BufferLoad, v: Var) -> BufferLoad:
        """`load` with its leading indices simplified where they mention the lane only in a way
        that cancels (`(8 a + v) // 8` is `a` for v < 8): a window position shared by the lanes."""
        lead = list(load.indices[:-1])
        changed = False
        for d, i in enumerate(lead):
            if _uses(i, v):
                lead[d] = self.analyzer.simplify(i)
                changed = changed or not _uses(lead[d], v)
        return load.replace(indices=(*lead, load.indices[-1])) if changed else load

    def zero_guard(self, value: PrimExpr, v: Var) -> PrimExpr | None:
        """For `Select(c1, Select(c2, load, 0), 0)` (a user's guard and a bounds guard), the one
        condition `c1 && c2`, simplified, when it is the same for every lane; else None."""
        conds: list[PrimExpr] = []
        while isinstance(value, Select) and _is_zero(value.false_value):
            conds.append(value.cond)
            value = value.true_value
        if not conds or not isinstance(value, BufferLoad):
            return None
        cond = conds[0]
        for c in conds[1:]:
            cond = And(cond, c)
        if _uses(cond, v):
            cond = self.analyzer.simplify(cond)
        return None if _uses(cond, v) else cond

    def rewrite_store(self, store: BufferStore, v: Var, lanes: int) -> Stmt | None:
        ramp0 = Ramp(IntImm(0, v.dtype), IntImm(1, v.dtype), lanes)
        dst_base = self.vector_base(store.buffer, store.indices, v, lanes)
        # A plain copy between two vectorizable places: one vector move, no registers; a copy
        # whose source is guarded moves the vector or stores zeros.
        value = store.value
        guard = self.zero_guard(value, v)
        if guard is not None:
            while isinstance(value, Select):
                value = value.true_value
        if dst_base is not None and isinstance(value, BufferLoad):
            src = self.settle(value, v)
            src_base = self.vector_base(src.buffer, src.indices, v, lanes)
            if src_base is not None and src.buffer.dtype == store.buffer.dtype:
                dst_idx = (*store.indices[:-1], Ramp(dst_base, IntImm(1, v.dtype), lanes))
                move = BufferStore(
                    store.buffer,
                    BufferLoad(
                        src.buffer, (*src.indices[:-1], Ramp(src_base, IntImm(1, v.dtype), lanes))
                    ),
                    dst_idx,
                )
                if guard is None:
                    return move
                zero = BufferStore(
                    store.buffer, Broadcast(convert(0, store.buffer.dtype), lanes), dst_idx
                )
                return IfThenElse(guard, move, zero)
        prologue: list[Stmt] = []
        regs: list[Buffer] = []
        replaced: list[tuple[PrimExpr, PrimExpr]] = []

        def load_to_reg(load: BufferLoad, guard: PrimExpr | None) -> PrimExpr | None:
            load = self.settle(load, v)
            base = self.vector_base(load.buffer, load.indices, v, lanes)
            if base is None:
                return None
            for old, new in replaced:
                if structural_equal(
                    old, load if guard is None else Select(guard, load, convert(0, load.dtype))
                ):
                    return new
            reg = self.fresh(load.buffer.name, load.buffer.dtype, lanes)
            regs.append(reg)
            vload = BufferLoad(
                load.buffer, (*load.indices[:-1], Ramp(base, IntImm(1, v.dtype), lanes))
            )
            move: Stmt = BufferStore(reg, vload, (ramp0,))
            if guard is not None:
                zero = Broadcast(convert(0, load.buffer.dtype), lanes)
                move = IfThenElse(guard, move, BufferStore(reg, zero, (ramp0,)))
            prologue.append(move)
            new = BufferLoad(reg, (v,))
            replaced.append(
                (load if guard is None else Select(guard, load, convert(0, load.dtype)), new)
            )
            return new

        class Loads(Mutator):
            def visit_Select(self, e: Select) -> PrimExpr:
                if (
                    isinstance(e.true_value, BufferLoad)
                    and _is_zero(e.false_value)
                    and not _uses(e.cond, v)
                ):
                    r = load_to_reg(e.true_value, e.cond)
                    if r is not None:
                        return r
                # Only the condition runs unconditionally: loads in the branches stay where they
                # are, since hoisting them out of their guard could read out of bounds.
                cond = self.visit(e.cond)
                return e if cond is e.cond else e.replace(cond=cond)

            def visit_BufferLoad(self, e: BufferLoad) -> PrimExpr:
                r = load_to_reg(e, None)
                return r if r is not None else self.generic_visit(e)

        value = Loads().visit(store.value)
        zero = IntImm(0, v.dtype)
        n = IntImm(lanes, v.dtype)
        if dst_base is not None:
            out_reg = self.fresh(store.buffer.name, store.buffer.dtype, lanes)
            regs.append(out_reg)
            compute = For(v, zero, n, ForKind.UNROLLED, BufferStore(out_reg, value, (v,)))
            vstore = BufferStore(
                store.buffer,
                BufferLoad(out_reg, (ramp0,)),
                (*store.indices[:-1], Ramp(dst_base, IntImm(1, v.dtype), lanes)),
            )
            stmt = seq(*prologue, compute, vstore)
        else:
            if not prologue:
                return None
            stmt = seq(
                *prologue,
                For(v, zero, n, ForKind.UNROLLED, BufferStore(store.buffer, value, store.indices)),
            )
        for reg in reversed(regs):
            stmt = Allocate(reg, stmt)
        return stmt


@register_pass("VectorizeLoop")
def VectorizeLoop(func: PrimFunc, ctx: PassContext) -> PrimFunc:
    """Turn VECTORIZED loops into 16-byte loads/stores where provably legal, else unrolled loops."""
    return _Vectorize().visit(func)
