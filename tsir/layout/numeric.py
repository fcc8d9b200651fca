"""Exhaustive evaluation of index expressions over constant domains, with numpy.

Layouts and fragments live on small constant domains (a shared tile, a register tile: at most a few
hundred thousand points), so every question that is hard symbolically (is this map injective? what
is its exact image? does this fragment contain that one?) has an exact answer by enumeration. This
module evaluates tsir integer expressions on whole index grids at once; `//` and `%` are floor
division and floor modulo in numpy exactly as in tsir, so results agree with `tsir.arith.evaluate`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import UnsupportedError
from ..expr import (
    EQ,
    GE,
    GT,
    LE,
    LT,
    NE,
    Add,
    And,
    Call,
    Cast,
    FloorDiv,
    FloorMod,
    IntImm,
    Max,
    Min,
    Mul,
    Not,
    Or,
    PrimExpr,
    Select,
    Sub,
    Var,
)

__all__ = ["MAX_POINTS", "const_shape", "grid", "evaluate_grid", "Table"]

# Enumerating more points than this is refused: it would take seconds and hundreds of megabytes.
MAX_POINTS = 1 << 21

Array = Any  # numpy int64 array (numpy's own typing is too loose to help here)

_BINARY = {
    Add: np.add,
    Sub: np.subtract,
    Mul: np.multiply,
    FloorDiv: np.floor_divide,
    FloorMod: np.mod,
    Min: np.minimum,
    Max: np.maximum,
    LT: np.less,
    LE: np.less_equal,
    GT: np.greater,
    GE: np.greater_equal,
    EQ: np.equal,
    NE: np.not_equal,
}
_CALLS = {
    "bitwise_and": np.bitwise_and,
    "bitwise_or": np.bitwise_or,
    "bitwise_xor": np.bitwise_xor,
    "shift_left": np.left_shift,
    "shift_right": np.right_shift,
}


def const_shape(shape: Sequence[Any]) -> tuple[int, ...] | None:
    """The shape as Python ints, or None when some extent is symbolic."""
    out: list[int] = []
    for d in shape:
        if isinstance(d, IntImm):
            out.append(d.value)
        elif isinstance(d, int) and not isinstance(d, bool):
            out.append(d)
        else:
            return None
    return tuple(out)


def grid(shape: Sequence[int], what: str = "layout") -> list[Array]:
    """Every point of the box `shape`, row-major: one flat int64 array per dimension."""
    total = int(np.prod(shape, dtype=np.int64)) if shape else 1
    if total > MAX_POINTS:
        raise UnsupportedError(
            f"{what}: the domain {tuple(shape)} has {total} points, more than the {MAX_POINTS} "
            "that tsir enumerates; use a smaller tile"
        )
    if not shape:
        return []
    return [a.reshape(-1).astype(np.int64) for a in np.indices(tuple(shape), dtype=np.int64)]


def evaluate_grid(expr: PrimExpr, env: Mapping[Var, Array]) -> Array:
    """The values of an integer expression at every point, given each Var's values (same length)."""
    return _GridEval(env).run(expr)


class _GridEval:
    def __init__(self, env: Mapping[Var, Array]) -> None:
        self.env = {id(v): a for v, a in env.items()}
        self.memo: dict[int, Array] = {}

    def run(self, e: PrimExpr) -> Array:
        hit = self.memo.get(id(e))
        if hit is None:
            hit = self.memo[id(e)] = self._eval(e)
        return hit

    def _eval(self, e: PrimExpr) -> Array:
        t = type(e)
        if t is IntImm:
            return np.int64(e.value)  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
        if t is Var:
            try:
                return self.env[id(e)]
            except KeyError:
                raise UnsupportedError(
                    f"index expression uses `{e}`, which is not a layout variable"
                ) from None
        fn = _BINARY.get(t)
        if fn is not None:
            a, b = self.run(e.a), self.run(e.b)  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
            if t in (FloorDiv, FloorMod) and np.any(np.asarray(b) == 0):
                raise UnsupportedError(f"division by zero while evaluating `{e}`")
            return np.asarray(fn(a, b), dtype=np.int64)
        if t is And or t is Or:
            a, b = self.run(e.a) != 0, self.run(e.b) != 0  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
            return np.asarray((a & b) if t is And else (a | b), dtype=np.int64)
        if t is Not:
            return np.asarray(self.run(e.a) == 0, dtype=np.int64)  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
        if t is Select:
            c = self.run(e.cond) != 0  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
            return np.where(c, self.run(e.true_value), self.run(e.false_value))  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
        if t is Cast and (e.dtype.is_int or e.dtype.is_bool):
            return self.run(e.value)  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
        if t is Call and e.op in _CALLS and len(e.args) == 2:  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
            a, b = (self.run(x) for x in e.args)  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
            return np.asarray(_CALLS[e.op](a, b), dtype=np.int64)  # pyright: ignore[reportAttributeAccessIssue]  # the exact-type dispatch above narrows it; the checker cannot follow `t is ...`
        raise UnsupportedError(
            f"cannot evaluate `{e}` ({t.__name__}) in a layout: layouts are built from integer "
            "arithmetic, comparisons, selects and bitwise operations"
        )


class Table:
    """A map evaluated at every point of its constant domain.

    `inputs[d]` holds coordinate d of every point (row-major order) and `outputs[k]` output k there.
    """

    def __init__(self, extents: tuple[int, ...], inputs: list[Array], outputs: list[Array]):
        self.extents = extents
        self.inputs = inputs
        self.outputs = outputs

    @property
    def size(self) -> int:
        return int(np.prod(self.extents, dtype=np.int64)) if self.extents else 1

    @staticmethod
    def build(
        variables: Sequence[Var], extents: tuple[int, ...], exprs: Sequence[PrimExpr], what: str
    ) -> Table:
        inputs = grid(extents, what)
        env = dict(zip(variables, inputs))
        n = int(np.prod(extents, dtype=np.int64)) if extents else 1
        ev = _GridEval(env)
        outs = [np.broadcast_to(ev.run(e), (n,)).astype(np.int64) for e in exprs]
        return Table(extents, inputs, outs)

    def output_extents(self) -> tuple[int, ...]:
        """max + 1 of every output (each must be >= 0 everywhere)."""
        out: list[int] = []
        for k, o in enumerate(self.outputs):
            if o.size and int(o.min()) < 0:
                raise UnsupportedError(
                    f"output {k} of the layout takes the negative value {int(o.min())}"
                )
            out.append(int(o.max()) + 1 if o.size else 0)
        return tuple(out)

    def is_injective(self) -> bool:
        if not self.outputs:
            return self.size <= 1
        stacked = np.stack(self.outputs, axis=1)
        return len(np.unique(stacked, axis=0)) == self.size
