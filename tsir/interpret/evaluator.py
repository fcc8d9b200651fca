"""Expressions, evaluated on all lanes at once (numpy arrays, see values.py for their shapes).

C semantics throughout: integers wrap, `FloorDiv`/`FloorMod` round toward minus infinity, an
integer `Div` truncates, float min/max ignore a NaN operand (fminf/fmaxf), half-precision
arithmetic rounds every result to the type, and `&&`, `||` and `?:` evaluate their right side only
in the lanes that need it, so a guarded load cannot fault in a lane whose guard is false.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ..buffer import Buffer
from ..dtype import DataType
from ..expr import (
    EQ,
    GE,
    GT,
    LE,
    LT,
    NE,
    Add,
    And,
    Broadcast,
    BufferLoad,
    Call,
    Cast,
    Div,
    FloatImm,
    FloorDiv,
    FloorMod,
    IntImm,
    Let,
    Max,
    Min,
    Mul,
    Not,
    Or,
    PrimExpr,
    Ramp,
    Select,
    StringImm,
    Sub,
    Var,
)
from .context import RunContext
from .errors import ArithmeticHazardError, InterpretUnsupportedError
from .lanes import Mask
from .memory import Memory, Pointer, View
from .values import NARROW_FLOATS, broadcast_lanes, cast_array, const_array, np_dtype

__all__ = ["Evaluator", "CallHandler"]

CallHandler = Callable[["Evaluator", Call, Mask], Any]

_F32 = np.dtype(np.float32)

_ARITH: dict[type, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    Add: np.add,
    Sub: np.subtract,
    Mul: np.multiply,
}
_CMP: dict[type, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    EQ: np.equal,
    NE: np.not_equal,
    LT: np.less,
    LE: np.less_equal,
    GT: np.greater,
    GE: np.greater_equal,
}


def _c_round(x: np.ndarray) -> np.ndarray:
    """C's round(): halves away from zero (numpy rounds them to even)."""
    w = x.astype(np.float64)
    return np.trunc(w + np.copysign(0.5, w)).astype(x.dtype)


_MATH1: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "exp": np.exp,
    "exp2": np.exp2,
    "log": np.log,
    "log2": np.log2,
    "sqrt": np.sqrt,
    "rsqrt": lambda x: np.reciprocal(np.sqrt(x)),
    "sin": np.sin,
    "cos": np.cos,
    "tanh": np.tanh,
    "floor": np.floor,
    "ceil": np.ceil,
    "round": _c_round,
    "tan": np.tan,
    "exp10": lambda x: np.power(x.dtype.type(10), x),
    "log10": np.log10,
    "erf": lambda x: _ERF(x).astype(x.dtype),
    # The fast-math intrinsics are approximations of these on the device (CUDA's documented
    # error bounds); the reference computes the exact function.
    "__exp": np.exp,
    "__exp10": lambda x: np.power(x.dtype.type(10), x),
    "__log": np.log,
    "__log2": np.log2,
    "__log10": np.log10,
    "__tan": np.tan,
    "__cos": np.cos,
    "__sin": np.sin,
}
_ERF = np.vectorize(math.erf, otypes=[np.float64])
_BITWISE: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "bitwise_and": np.bitwise_and,
    "bitwise_or": np.bitwise_or,
    "bitwise_xor": np.bitwise_xor,
    "shift_left": np.left_shift,
    "shift_right": np.right_shift,
}


class Evaluator:
    """Evaluates expressions over `n` lanes against an environment of Vars and buffer views."""

    def __init__(self, mem: Memory, ctx: RunContext, call_handler: CallHandler | None = None):
        self.mem = mem
        self.ctx = ctx
        self.env: dict[Var, Any] = {}
        self.views: dict[Buffer, View] = {}
        self.call_handler = call_handler
        self._dispatch: dict[type, Callable[[Any, Mask], Any]] = {
            Var: self._var,
            IntImm: self._int,
            FloatImm: self._float,
            Add: self._arith,
            Sub: self._arith,
            Mul: self._arith,
            Div: self._div,
            FloorDiv: self._floordiv,
            FloorMod: self._floormod,
            Min: self._minmax,
            Max: self._minmax,
            EQ: self._cmp,
            NE: self._cmp,
            LT: self._cmp,
            LE: self._cmp,
            GT: self._cmp,
            GE: self._cmp,
            And: self._and,
            Or: self._or,
            Not: self._not,
            Select: self._select,
            Cast: self._cast,
            Ramp: self._ramp,
            Broadcast: self._broadcast,
            BufferLoad: self._load,
            Call: self._call,
            Let: self._let,
            StringImm: self._string,
        }

    # -- entry points ------------------------------------------------------------------------------
    def eval(self, e: PrimExpr, mask: Mask) -> Any:
        fn = self._dispatch.get(type(e))
        if fn is None:
            raise InterpretUnsupportedError(
                f"the interpreter cannot evaluate {type(e).__name__} `{e}`"
            )
        return fn(e, mask)

    def index(self, e: PrimExpr, mask: Mask) -> np.ndarray:
        v = self.eval(e, mask)
        return v if v.dtype == np.int64 else v.astype(np.int64)

    def view(self, b: Buffer) -> View:
        v = self.views.get(b)
        if v is None:
            raise InterpretUnsupportedError(
                f"buffer `{b.name}` ({b.scope}) is used where it is not allocated or bound"
            )
        return v

    def pointer(self, load: Any, mask: Mask) -> Pointer:
        if not isinstance(load, BufferLoad):
            raise InterpretUnsupportedError(f"address_of takes one buffer element, got `{load}`")
        view = self.view(load.buffer)
        return self.mem.pointer(view, [self.index(i, mask) for i in load.indices])

    def uniform_int(self, e: PrimExpr, what: str) -> int:
        """A value every lane agrees on (loop bounds, grid extents, tile-op regions)."""
        v = self.eval(e, Mask.full(1))
        if v.shape[0] != 1 and not (v == v[0]).all():
            raise InterpretUnsupportedError(f"{what} `{e}` differs between threads")
        return int(v.reshape(-1)[0])

    # -- leaves ------------------------------------------------------------------------------------
    def _var(self, e: Var, mask: Mask) -> Any:
        try:
            return self.env[e]
        except KeyError:
            raise InterpretUnsupportedError(
                f"variable `{e.name}` is used where it has no value"
            ) from None

    def _int(self, e: IntImm, mask: Mask) -> np.ndarray:
        return const_array(e.value, e.dtype)

    def _float(self, e: FloatImm, mask: Mask) -> np.ndarray:
        return const_array(e.value, e.dtype)

    def _string(self, e: StringImm, mask: Mask) -> Any:
        return e.value

    # -- arithmetic --------------------------------------------------------------------------------
    def _pair(self, e: Any, mask: Mask) -> tuple[np.ndarray, np.ndarray, DataType]:
        a = self.eval(e.a, mask)
        b = self.eval(e.b, mask)
        dt = e.a.dtype
        if dt.name in NARROW_FLOATS:
            a, b = a.astype(_F32), b.astype(_F32)
        return a, b, dt

    def _out(self, x: np.ndarray, dt: DataType) -> np.ndarray:
        want = np_dtype(dt)
        return x if x.dtype == want else x.astype(want)

    def _arith(self, e: Any, mask: Mask) -> np.ndarray:
        a, b, dt = self._pair(e, mask)
        return self._out(_ARITH[type(e)](a, b), dt)

    def _nonzero_divisor(self, b: np.ndarray, mask: Mask, e: Any) -> np.ndarray:
        zero = b == 0
        if zero.any():
            bad = (
                zero if zero.shape[0] == 1 else zero & mask.arr.reshape(-1, *[1] * (zero.ndim - 1))
            )
            if self.ctx.check and bad.any() and mask.any:
                lane = (
                    int(mask.idx[0])
                    if zero.shape[0] == 1
                    else int(np.flatnonzero(bad.reshape(bad.shape[0], -1).any(axis=1))[0])
                )
                raise ArithmeticHazardError(
                    f"integer division by zero in `{e}`{self.ctx.where()}",
                    accesses=[self.ctx.access("division", [lane])],
                )
            b = np.where(zero, b.dtype.type(1), b)
        return b

    def _div(self, e: Div, mask: Mask) -> np.ndarray:
        a, b, dt = self._pair(e, mask)
        if dt.is_float:
            return self._out(np.true_divide(a, b), dt)
        b = self._nonzero_divisor(b, mask, e)
        # C division truncates toward zero.
        q = np.floor_divide(a, b)
        fix = (q < 0) & (q * b != a)
        return self._out(np.where(fix, q + 1, q), dt)

    def _floordiv(self, e: FloorDiv, mask: Mask) -> np.ndarray:
        a, b, dt = self._pair(e, mask)
        if dt.is_float:
            return self._out(np.floor(a / b), dt)
        return self._out(np.floor_divide(a, self._nonzero_divisor(b, mask, e)), dt)

    def _floormod(self, e: FloorMod, mask: Mask) -> np.ndarray:
        a, b, dt = self._pair(e, mask)
        if dt.is_float:
            return self._out(a - np.floor(a / b) * b, dt)
        return self._out(np.remainder(a, self._nonzero_divisor(b, mask, e)), dt)

    def _minmax(self, e: Any, mask: Mask) -> np.ndarray:
        a, b, dt = self._pair(e, mask)
        if dt.is_float:
            fn = np.fmin if isinstance(e, Min) else np.fmax
        else:
            fn = np.minimum if isinstance(e, Min) else np.maximum
        return self._out(fn(a, b), dt)

    def _cmp(self, e: Any, mask: Mask) -> np.ndarray:
        a, b, _ = self._pair(e, mask)
        return _CMP[type(e)](a, b)

    # -- logic -------------------------------------------------------------------------------------
    def _and(self, e: And, mask: Mask) -> np.ndarray:
        a = self.eval(e.a, mask)
        if not e.dtype.is_bool:
            return np.bitwise_and(a, self.eval(e.b, mask))
        if a.ndim == 1:
            sub = mask & a
            if not sub.any:
                return a if a.shape[0] == mask.n else broadcast_lanes(a, mask.n)
            return np.logical_and(a, self.eval(e.b, sub))
        return np.logical_and(a, self.eval(e.b, mask))

    def _or(self, e: Or, mask: Mask) -> np.ndarray:
        a = self.eval(e.a, mask)
        if not e.dtype.is_bool:
            return np.bitwise_or(a, self.eval(e.b, mask))
        if a.ndim == 1:
            sub = mask.without(a)
            if not sub.any:
                return a if a.shape[0] == mask.n else broadcast_lanes(a, mask.n)
            return np.logical_or(a, self.eval(e.b, sub))
        return np.logical_or(a, self.eval(e.b, mask))

    def _not(self, e: Not, mask: Mask) -> np.ndarray:
        a = self.eval(e.a, mask)
        return np.logical_not(a) if e.dtype.is_bool else np.invert(a)

    def _select(self, e: Select, mask: Mask) -> np.ndarray:
        c = self.eval(e.cond, mask)
        if c.ndim == 1 and c.shape[0] == 1:
            return self.eval(e.true_value if c[0] else e.false_value, mask)
        if c.ndim == 1:
            tm, fm = mask & c, mask.without(c)
            t = self.eval(e.true_value, tm) if tm.any else None
            f = self.eval(e.false_value, fm) if fm.any else None
            if t is None:
                return f  # pyright: ignore[reportReturnType]  # narrowed by a check above that the checker cannot follow
            if f is None:
                return t
            cc = c if t.ndim == 1 and f.ndim == 1 else c[:, None]
            return np.where(cc, t, f)
        return np.where(c, self.eval(e.true_value, mask), self.eval(e.false_value, mask))

    def _cast(self, e: Cast, mask: Mask) -> np.ndarray:
        return cast_array(self.eval(e.value, mask), e.value.dtype, e.dtype)

    # -- vectors -----------------------------------------------------------------------------------
    def _ramp(self, e: Ramp, mask: Mask) -> np.ndarray:
        base = self.eval(e.base, mask)
        stride = self.eval(e.stride, mask)
        step = np.arange(e.lanes, dtype=base.dtype)
        return base[:, None] + stride[:, None] * step

    def _broadcast(self, e: Broadcast, mask: Mask) -> np.ndarray:
        v = self.eval(e.value, mask)
        return np.repeat(v[:, None], e.lanes, axis=1)

    # -- memory, calls, lets -----------------------------------------------------------------------
    def _load(self, e: BufferLoad, mask: Mask) -> np.ndarray:
        view = self.view(e.buffer)
        return self.mem.load(view, [self.index(i, mask) for i in e.indices], mask)

    def _let(self, e: Let, mask: Mask) -> Any:
        value = self.eval(e.value, mask)
        had = e.var in self.env
        old = self.env.get(e.var)
        self.env[e.var] = value
        try:
            return self.eval(e.body, mask)
        finally:
            if had:
                self.env[e.var] = old
            else:
                del self.env[e.var]

    def _call(self, e: Call, mask: Mask) -> Any:
        op = e.op
        fn1 = _MATH1.get(op)
        if fn1 is not None:
            x = self.eval(e.args[0], mask)
            if e.dtype.name in NARROW_FLOATS:
                return fn1(x.astype(_F32)).astype(np_dtype(e.dtype))
            return self._out(fn1(x), e.dtype)
        if op == "abs":
            x = self.eval(e.args[0], mask)
            if e.dtype.name in NARROW_FLOATS:
                return np.abs(x.astype(_F32)).astype(np_dtype(e.dtype))
            return np.abs(x)
        fb = _BITWISE.get(op)
        if fb is not None:
            a, b = self.eval(e.args[0], mask), self.eval(e.args[1], mask)
            return self._out(fb(a, b.astype(a.dtype) if b.dtype != a.dtype else b), e.dtype)
        if op == "bitwise_not":
            return np.invert(self.eval(e.args[0], mask))
        if op == "pow":
            a, b = self.eval(e.args[0], mask), self.eval(e.args[1], mask)
            return np.power(a.astype(np.float64), b.astype(np.float64)).astype(np_dtype(e.dtype))
        if op == "fma":
            a, b, c = (self.eval(x, mask).astype(np.float64) for x in e.args)
            return (a * b + c).astype(np_dtype(e.dtype))
        if op in ("isnan", "isinf"):
            x = self.eval(e.args[0], mask)
            if x.dtype.kind not in "fV" and not e.args[0].dtype.is_float:
                return np.zeros(x.shape, dtype=bool)
            wide = x.astype(np.float64)
            return np.isnan(wide) if op == "isnan" else np.isinf(wide)
        if op == "reinterpret":
            x = np.ascontiguousarray(self.eval(e.args[0], mask))
            return x.view(np_dtype(e.dtype))
        if op == "address_of":
            return self.pointer(e.args[0], mask)
        if self.call_handler is None:
            raise InterpretUnsupportedError(f"call `{op}` is not available here")
        return self.call_handler(self, e, mask)
