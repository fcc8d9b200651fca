"""Fragment: threads and registers, repeat/replicate, inversion for loop lowering, containment."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tsir.arith import Analyzer
from tsir.buffer import Range
from tsir.errors import UnsupportedError
from tsir.expr import IntImm, Var
from tsir.layout import (
    Fragment,
    equivalent,
    make_mma_a_fragment,
    make_mma_c_fragment,
    make_swizzled_layout,
    plot,
    prove_fragment_contains,
)

QUAD = Fragment.from_fn((8, 8), lambda i, j: i * 4 + j // 2, lambda i, j: j % 2)  # the m8n8 C quad


def test_quad_atom() -> None:
    assert (QUAD.thread_extent, QUAD.local_size, QUAD.replicate_size) == (32, 2, 1)
    assert int(QUAD.thread_of((3, 5))) == 14 and int(QUAD.forward((3, 5))[0]) == 1
    assert QUAD.is_injective()


def test_repeat_on_index_and_on_thread() -> None:
    """Repeating the quad {2, 1} on registers gives the m16n8 C tile; then {1, 2} on threads puts
    the second n8 tile on a second warp."""
    tile = QUAD.repeat((2, 1), repeat_on_thread=False)
    assert equivalent(tile, make_mma_c_fragment(16, 8, 16, 8))
    two_warps = tile.repeat((1, 2), repeat_on_thread=True)
    assert (two_warps.thread_extent, two_warps.local_size) == (64, 4)
    assert equivalent(two_warps, make_mma_c_fragment(16, 16, 16, 8))
    # repeat on registers, row-major over tiles: the register order of the C fragment
    regs = tile.repeat((2, 2), lower_dim_first=False)
    assert equivalent(regs, make_mma_c_fragment(32, 16, 32, 16))
    col_major = tile.repeat((2, 2), lower_dim_first=True)
    assert not equivalent(regs, col_major)
    assert int(col_major.forward((16, 0))[0]) == 4 and int(regs.forward((16, 0))[0]) == 8


def test_replicate_and_condense() -> None:
    rep = QUAD.replicate(4)
    assert (rep.replicate_size, rep.thread_extent, rep.local_size) == (4, 128, 2)
    assert [int(rep.thread_of((1, 2), r)) for r in range(4)] == [5, 37, 69, 101]
    assert rep.replicate(2).replicate_size == 8
    r = Var("rep")
    plain = Fragment((IntImm(8),), (Var("i"),), (IntImm(0),), r, Var("i") + r, 1)
    assert str(plain.condense_rep_var().forward_thread) == "i"


def test_register_index_may_not_depend_on_the_replica() -> None:
    i, r = Var("i"), Var("rep")
    with pytest.raises(UnsupportedError, match="may not depend on the replica"):
        Fragment((IntImm(8),), (i,), (r,), r, i, 2)


def test_fully_replicated() -> None:
    frag = Fragment.fully_replicated((4, 2), 64)
    assert (frag.thread_extent, frag.local_size, frag.replicate_size) == (64, 8, 64)
    assert int(frag.forward((3, 1))[0]) == 7 and int(frag.thread_of((3, 1), 9)) == 9
    assert frag.is_injective()


def test_inverse_gives_every_thread_its_registers() -> None:
    """inverse(local, thread) = (i, j, rep): how a loop over a fragment is lowered."""
    frag = make_mma_a_fragment(64, 64, 32, 32, 32)
    inv = frag.inverse()
    assert inv.const_input_shape() == (frag.local_size, frag.thread_extent)
    seen = set()
    for loc, th in itertools.product(range(frag.local_size), range(frag.thread_extent)):
        i, j, rep = (int(e) for e in inv.forward((loc, th)))
        assert int(frag.forward((i, j))[0]) == loc and int(frag.thread_of((i, j), rep)) == th
        seen.add((i, j, rep))
    assert len(seen) == 64 * 32 * 2


def test_sparse_fragment_needs_the_guard() -> None:
    """Threads 0, 2, 4, ... own elements: the odd threads' slots are empty."""
    frag = Fragment.from_fn((16,), lambda i: i * 2, lambda i: 0)
    assert frag.thread_extent == 31
    with pytest.raises(UnsupportedError, match="inverse_with_guard"):
        frag.inverse()
    inv, guard = frag.inverse_with_guard()
    local, thread = inv.vars
    from tsir.arith.evaluate import evaluate

    assert [evaluate(guard, {local: 0, thread: t}) for t in range(31)] == [
        int(t % 2 == 0) for t in range(31)
    ]
    assert int(inv.forward((0, 6))[0]) == 3


def test_bind_thread_range() -> None:
    frag = make_mma_c_fragment(64, 64, 32, 32).bind_thread_range(Range(IntImm(128), IntImm(128)))
    assert frag.thread_range is not None and frag.thread_extent == 128
    with pytest.raises(UnsupportedError, match="spans 128 threads, more than the range of 64"):
        make_mma_c_fragment(64, 64, 32, 32).bind_thread_range(Range(IntImm(0), IntImm(64)))


def test_containment() -> None:
    """A replicated A fragment contains the single-warp-column one; not the other way round."""
    c = make_mma_c_fragment(64, 64, 16, 64)  # 4 warps along M, one warp column
    a = make_mma_a_fragment(64, 64, 64, 16, 64)  # same threads, no replication
    assert prove_fragment_contains(c, a) and prove_fragment_contains(a, c)
    small = make_mma_c_fragment(32, 32, 16, 16)
    wide = Fragment.fully_replicated((32, 32), 128)
    assert prove_fragment_contains(small, wide)
    assert not prove_fragment_contains(wide, small)
    other = make_mma_c_fragment(32, 32, 32, 16)  # different warp split
    assert not prove_fragment_contains(small, other)
    shifted = small.bind_thread_range(Range(IntImm(128), IntImm(128)))
    assert not prove_fragment_contains(small, shifted)
    assert prove_fragment_contains(shifted, shifted)
    assert not prove_fragment_contains(small, make_mma_c_fragment(32, 64, 16, 16))  # other shape


def test_containment_symbolic_fallback() -> None:
    n = Var("n")
    a = Fragment.from_fn((n,), lambda i: i % 128, lambda i: i // 128)
    b = Fragment.from_fn((n,), lambda i: i - i // 128 * 128, lambda i: i // 128)
    c = Fragment.from_fn((n,), lambda i: i % 64, lambda i: i // 64)
    assert prove_fragment_contains(a, b, Analyzer())
    assert not prove_fragment_contains(a, c, Analyzer())


def test_str_is_readable() -> None:
    """The printer's form: the construction that rebuilds the fragment."""
    import tsir

    text = str(QUAD)
    assert text == (
        "tsir.layout.Fragment.from_fn((8, 8), lambda i, j, rep: i * 4 + j // 2, "
        "lambda i, j: (j % 2,), 1)"
    )
    tsir.assert_structural_equal(eval(text, {"tsir": tsir}), QUAD)


@pytest.mark.parametrize("size", [16, 64, 128])
def test_plot_writes_one_cell_per_element(tmp_path: Path, size: int) -> None:
    frag = make_mma_c_fragment(
        size, size, size // 2 if size > 16 else 16, size // 2 if size > 16 else 16
    )
    path = plot(frag, tmp_path / "frag.svg")
    root = ET.parse(path).getroot()
    cells = [e for e in root.iter("{http://www.w3.org/2000/svg}rect") if e.get("class") == "cell"]
    assert len(cells) == size * size
    assert len({c.get("fill") for c in cells}) == min(frag.thread_extent, 128)
    if size == 16:
        texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
        assert "T0" in texts and "L3" in texts  # element (8, 1) is c3 of lane 0


def test_plot_layout_colours_bank_groups(tmp_path: Path) -> None:
    path = plot(make_swizzled_layout((16, 64), "float16"), tmp_path / "swz.svg", dtype_bits=16)
    root = ET.parse(path).getroot()
    cells = [e for e in root.iter("{http://www.w3.org/2000/svg}rect") if e.get("class") == "cell"]
    assert len(cells) == 16 * 64 and len({c.get("fill") for c in cells}) == 8


@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize(
    "shape,threads,vec", [((64, 96), 128, 4), ((48, 40), 64, 2), ((3, 32, 16), 96, 8)]
)
def test_loop_partition_fragments_invert(
    shape: tuple[int, ...], threads: int, vec: int, transposed: bool
) -> None:
    """The fragments a parallel-loop partition builds: the nest's row-major offset (in loop order,
    which may be the buffer's dimensions reversed) cut into `vec`-element runs dealt round-robin
    to the threads. Odd extents (96 = 3 * 32) included."""

    if transposed:  # the loop runs over the buffer's dimensions in reverse order
        nest = Fragment.partitioned(shape[::-1], threads, vec)
        frag = nest.replace(vars=nest.vars[::-1], input_shape=nest.input_shape[::-1])
    else:
        frag = Fragment.partitioned(shape, threads, vec)
    assert frag.thread_extent == threads and frag.is_bijective()
    inv = frag.inverse()
    for loc, th in [(0, 0), (frag.local_size - 1, threads - 1), (vec + 1, threads // 2 + 1)]:
        x = [int(e) for e in inv.forward((loc, th))]
        assert int(frag.forward(x[:-1])[0]) == loc and int(frag.thread_of(x[:-1], x[-1])) == th


def test_reshape_keeps_threads_and_registers() -> None:
    """An alias of a fragment buffer with another shape sees the same (thread, register) slots."""
    c = make_mma_c_fragment(32, 16, 16, 16)
    flat = c.reshape((512,))
    assert isinstance(flat, Fragment) and equivalent(flat.reshape((32, 16)), c)
    assert int(flat.thread_of((8 * 16 + 3,))) == int(c.thread_of((8, 3)))
    with pytest.raises(UnsupportedError, match="repeat"):
        c.expand((2,))


def test_partial_partition_is_refused_not_guessed() -> None:
    """100 elements in rounds of 64: the padded offset (documented on `partitioned`) lowers it."""
    frag = Fragment.partitioned((10, 10), 32, 2)
    assert frag.thread_extent == 32 and frag.local_size == 4 and not frag.is_bijective()
    with pytest.raises(UnsupportedError, match="cannot invert"):
        frag.inverse_with_guard()
    for r, t in itertools.product(range(4), range(32)):
        f = r // 2 * 2 * 32 + t * 2 + r % 2
        if f < 100:
            assert int(frag.forward((f // 10, f % 10))[0]) == r
            assert int(frag.thread_of((f // 10, f % 10))) == t


def test_ragged_row_split_inverts_with_a_guard() -> None:
    """48 rows dealt to 32 thread groups: `i % 32` is no digit of i < 48, but it is of i < 64,
    whose inverse serves the real rows (the guard keeps i < 48)."""
    frag = Fragment.from_fn(
        (48, 32), lambda i, j: i % 32 * 4 + j // 8, lambda i, j: i // 32 * 8 + j % 8
    )
    assert frag.is_injective() and not frag.is_bijective()
    inv, guard = frag.inverse_with_guard()
    local, thread = inv.vars
    from tsir.arith.evaluate import evaluate

    held = 0
    for r, t in itertools.product(range(frag.local_size), range(frag.thread_extent)):
        if evaluate(guard, {local: r, thread: t}):
            held += 1
            i, j, _rep = (int(e) for e in inv.forward((r, t)))
            assert int(frag.forward((i, j))[0]) == r and int(frag.thread_of((i, j))) == t
    assert held == 48 * 32
