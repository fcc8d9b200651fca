"""Hypothesis properties: random layouts and fragments built from repeats, swizzles, reversals,
permutations and reshapes are inverted exactly (forward . inverse = identity both ways)."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from tsir.expr import PrimExpr, Var
from tsir.layout import Fragment, Layout, placeholders
from tsir.layout.numeric import Table, evaluate_grid

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _split(total: int, draw: st.DrawFn, pow2: bool) -> list[int]:
    """A random factorization of `total` into 1..3 extents."""
    factors = []
    m, p = total, 2
    while m > 1:
        while m % p == 0:
            factors.append(p)
            m //= p
        p += 1
    order = draw(st.permutations(factors))
    cuts = sorted(draw(st.lists(st.integers(0, len(order)), max_size=2)))
    bounds = [0, *cuts, len(order)]
    return [math.prod(order[a:b]) for a, b in zip(bounds, bounds[1:])]


@st.composite
def layouts(draw: st.DrawFn, refused: bool = False) -> Layout:
    """`refused`: the layout's outputs will be fused again and re-split into (register, thread)
    to build a fragment; then extents are powers of two. (With odd extents, re-splitting a fused
    index of reordered or reversed digits at a point that is not a digit boundary, e.g.
    `(3 * (i // 3) + 2 - i % 3) // 2`, leaves the family `tsir.layout.inverse` inverts; the
    odd-extent fragments that lowering builds are tested one by one in test_fragment.py.)"""
    pow2 = draw(st.booleans()) or refused
    sizes = [1, 2, 4, 8, 16, 32] if pow2 else [1, 2, 3, 4, 6, 8, 12, 16]
    shape = draw(
        st.lists(st.sampled_from(sizes), min_size=1, max_size=3).filter(
            lambda s: math.prod(s) <= 4096
        )
    )
    vs = placeholders(len(shape))
    exprs: list[PrimExpr] = list(vs)
    extents = list(shape)
    reshaped = draw(st.booleans())
    if reshaped:  # reshape: fuse in some order, split into a random factorization
        order = draw(st.permutations(range(len(exprs))))
        off: PrimExpr = exprs[order[0]]
        for d in order[1:]:
            off = off * extents[d] + exprs[d]
        new = _split(math.prod(extents), draw, pow2)
        exprs, extents = [], new
        stride = math.prod(new)
        for e in new:
            stride //= e
            exprs.append(off // stride % e)
    for _ in range(draw(st.integers(0, 4))):
        op = draw(
            st.sampled_from(["permute", "reverse", "xor"] if pow2 else ["permute", "reverse"])
        )
        k = draw(st.integers(0, len(exprs) - 1))
        if op == "permute":
            perm = draw(st.permutations(range(len(exprs))))
            exprs, extents = [exprs[p] for p in perm], [extents[p] for p in perm]
        elif op == "reverse":
            exprs[k] = extents[k] - 1 - exprs[k]
        elif len(exprs) > 1 and extents[k] > 1:  # xor low bits of another output into output k
            other = draw(st.sampled_from([o for o in range(len(exprs)) if o != k]))
            bits = draw(st.integers(1, int(math.log2(extents[k]))))
            exprs[k] = exprs[k] ^ (exprs[other] % (1 << bits))
    layout = Layout(tuple(shape), vs, tuple(exprs))
    # Repeating splits an input into (tile, offset in tile); after a reshape of extents with odd
    # factors that can fuse part of one input with another at a point that is not a digit
    # boundary, e.g. `(6 * i + j % 6) // 4`: outside the inverted family (see tsir.layout.inverse).
    for _ in range(draw(st.integers(0, 2)) if pow2 or not reshaped else 0):
        if math.prod(layout.const_input_shape()) * 4 > 8192:
            break
        dim = draw(st.integers(0, layout.ndim - 1))
        layout = layout.repeat(dim, draw(st.sampled_from([2, 4] if pow2 else [2, 3])))
    return layout


def assert_inverse(layout: Layout, inv: Layout) -> None:
    note(f"layout: {layout}\ninverse: {inv}")
    t = layout.table()
    back = [evaluate_grid(e, dict(zip(inv.vars, t.outputs))) for e in inv.forward_index]
    for x, y in zip(t.inputs, back):  # inverse(forward(x)) == x at every logical point
        assert np.array_equal(np.broadcast_to(y, x.shape), x)
    ti = Table.build(inv.vars, inv.const_input_shape(), inv.forward_index, "inverse")
    env = dict(zip(layout._forward_vars(), ti.outputs))
    for e, p in zip(layout._forward_exprs(), ti.inputs):  # forward(inverse(p)) == p everywhere
        assert np.array_equal(np.broadcast_to(evaluate_grid(e, env), p.shape), p)


@SETTINGS
@given(layouts())
def test_random_layouts_invert_exactly(layout: Layout) -> None:
    note(f"layout: {layout}")
    assert layout.is_bijective()
    assert_inverse(layout, layout.inverse())


@SETTINGS
@given(layouts(refused=True), st.data())
def test_random_fragments_invert_and_cover(layout: Layout, data: st.DataObject) -> None:
    """thread = offset % T, register = offset // T over a random bijective layout, then random
    repeats and replication: each (element, replica) has one slot, the box is filled, and the
    inverse recovers (element, replica) from (register, thread)."""
    offset: PrimExpr = layout.forward_index[0]
    for p, e in zip(layout.forward_index[1:], layout.const_output_shape()[1:]):
        offset = offset * e + p
    total = math.prod(layout.const_input_shape())
    threads = data.draw(st.sampled_from([t for t in (1, 2, 4, 8, 32, 64) if total % t == 0]))
    mapping = dict(zip(layout.vars, placeholders(layout.ndim)))
    frag = Fragment(
        layout.input_shape,
        tuple(mapping.values()),
        (_subst(offset // threads, mapping),),
        Var("rep"),
        _subst(offset % threads, mapping),
    )
    if data.draw(st.booleans()) and total <= 1024:
        repeats = data.draw(
            st.lists(st.sampled_from([1, 2]), min_size=frag.ndim, max_size=frag.ndim)
        )
        frag = frag.repeat(repeats, data.draw(st.booleans()), data.draw(st.booleans()))
    if data.draw(st.booleans()):
        frag = frag.replicate(data.draw(st.sampled_from([2, 3, 4])))
    note(f"fragment: {frag}")
    assert frag.is_injective() and frag.is_bijective()
    assert_inverse(frag, frag.inverse())


def _subst(e: PrimExpr, mapping: dict[Var, Var]) -> PrimExpr:
    from tsir.visitor import substitute

    return substitute(e, mapping)
