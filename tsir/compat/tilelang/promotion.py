"""TileLang's implicit dtype promotion, for programs built through `tsir.compat.tilelang`.

DESIGN's rule for tsir's own builder (`tsir.T`) is explicit: an operation on two different IR
dtypes is a DTypeError that asks for `T.cast`. TileLang inherits TVM's promotion instead
(`BinaryOpMatchTypes`): a TileLang file such as examples/online_softmax mixes a float16 fragment
with a float32 one (`lse[0] - max_x[0] * scale`) and expects float32 arithmetic. So while the
compatibility layer builds a TileLang program (`@T.prim_func`, `@tilelang.jit`, `T.macro` bodies),
`tilelang_promotion()` is active and:

- two floats compute in the wider one (float16 + float32 -> float32; float16 + bfloat16, which TVM
  refuses, -> float32);
- an integer next to a float becomes that float (int32 * float16 -> float16);
- two integers of one signedness compute in the wider one; mixed signedness in the wider one, or
  the unsigned one at equal width (int32 + uint32 -> uint32); bool counts as a 1-bit unsigned;
- a Python float next to an integer expression is a float32 constant (`i * 0.5` is float32); any
  other Python literal takes the dtype of the expression beside it, as in tsir.

Only arithmetic, comparisons, `T.max`/`T.min` and the other binary operators promote; stores cast
to the destination's dtype in both (DESIGN). Vectors of different lanes never promote.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from ...dtype import DataType
from ...expr import implicit_promotion

__all__ = ["tvm_promotion", "tilelang_promotion"]


def tvm_promotion(a: DataType, b: DataType) -> DataType | None:
    """The dtype TVM's `BinaryOpMatchTypes` casts `a` and `b` to (None: no rule, keep the error)."""
    if a.lanes != b.lanes or a.is_handle or b.is_handle:
        return None
    if a.is_float and b.is_float:
        if a.bits != b.bits:
            return a if a.bits > b.bits else b
        return DataType("float32") if a.bits < 32 else a
    if a.is_float:
        return a
    if b.is_float:
        return b
    abits = 1 if a.is_bool else a.bits
    bbits = 1 if b.is_bool else b.bits
    a_unsigned = a.is_bool or a.is_unsigned
    b_unsigned = b.is_bool or b.is_unsigned
    if abits != bbits:
        wide = a if abits > bbits else b
        return DataType("int32") if wide.is_bool else wide
    if a_unsigned == b_unsigned:
        return a
    return a if a_unsigned else b


@contextlib.contextmanager
def tilelang_promotion() -> Iterator[None]:
    """Build with TileLang's promotion rules (see the module docstring)."""
    with implicit_promotion(tvm_promotion):
        yield
