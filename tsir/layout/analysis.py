"""Questions about pairs of layouts that layout inference asks: containment and equivalence.

Both are decided exactly by enumeration when the shapes are constant (always, for fragments); the
symbolic fallback asks the analyzer (rewriting, intervals, then Z3) and answers False when it cannot
prove, which callers must read as "unknown".
"""

from __future__ import annotations

import numpy as np

from ..arith import Analyzer
from ..buffer import Range
from ..expr import IntImm
from ..structural import structural_equal
from ..visitor import substitute
from .fragment import Fragment
from .layout import Layout
from .numeric import Array, const_shape

__all__ = ["prove_fragment_contains", "equivalent"]


def _thread_base(frag: Fragment) -> int | None:
    rng: Range | None = frag.thread_range
    if rng is None:
        return 0
    base = const_shape((rng.min,))
    return base[0] if base is not None else None


def _ownership(frag: Fragment, base: int) -> tuple[Array, Array]:
    """(flat element index, absolute thread) of every (element, replica) pair."""
    t = frag.table()
    flat = np.zeros(t.size, dtype=np.int64)
    for x, extent in zip(t.inputs[:-1], t.extents[:-1]):
        flat = flat * extent + x
    return flat, t.outputs[-1] + base


def prove_fragment_contains(
    small: Fragment, big: Fragment, analyzer: Analyzer | None = None
) -> bool:
    """True when every (element, thread) ownership of `small` is also one of `big`.

    Then `big` can replace `small` for the same buffer: every thread that held an element under
    `small` still holds it (a more replicated layout "contains" a less replicated one). Register
    slots are not compared. Threads are compared absolutely (`thread_range.min` added).
    """
    if len(small.input_shape) != len(big.input_shape):
        return False
    s_shape, b_shape = small.const_input_shape(), big.const_input_shape()
    s_base, b_base = _thread_base(small), _thread_base(big)
    if s_shape is not None and b_shape is not None and s_base is not None and b_base is not None:
        if s_shape != b_shape:
            return False
        s_elem, s_thread = _ownership(small, s_base)
        b_elem, b_thread = _ownership(big, b_base)
        width = int(max(s_thread.max(initial=0), b_thread.max(initial=0))) + 1
        return bool(np.all(np.isin(s_elem * width + s_thread, b_elem * width + b_thread)))
    return _prove_symbolic(small, big, analyzer or Analyzer())


def _prove_symbolic(small: Fragment, big: Fragment, ana: Analyzer) -> bool:
    """Without replication on either side: prove thread equality pointwise."""
    if small.replicate_size != 1 or big.replicate_size != 1:
        return False
    if not all(structural_equal(a, b) for a, b in zip(small.input_shape, big.input_shape)):
        return False
    if not structural_equal(small.thread_range, big.thread_range):
        return False
    for v, e in zip(small.vars, small.input_shape):
        ana.bind(v, 0, e, override=True)
    zero = IntImm(0)
    s_thread = substitute(small.forward_thread, {small.rep: zero})
    b_thread = substitute(big.forward_thread, {big.rep: zero, **dict(zip(big.vars, small.vars))})
    return ana.can_prove(s_thread == b_thread)


def equivalent(a: Layout, b: Layout) -> bool:
    """Whether two layouts are the same map (possibly written differently), by enumeration.

    Fragments must agree on replicate_size, thread placement and register slots of every replica.
    """
    if type(a) is not type(b):
        return False
    sa, sb = a.const_input_shape(), b.const_input_shape()
    if sa is None or sb is None:
        return structural_equal(a, b)
    if sa != sb:
        return False
    if isinstance(a, Fragment) and isinstance(b, Fragment):
        if a.replicate_size != b.replicate_size or not structural_equal(
            a.thread_range, b.thread_range
        ):
            return False
    ta, tb = a.table(), b.table()
    if len(ta.outputs) != len(tb.outputs):
        return False
    return all(np.array_equal(x, y) for x, y in zip(ta.outputs, tb.outputs))
