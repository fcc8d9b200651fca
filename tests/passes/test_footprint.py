"""passes/footprint.py against a brute-force oracle: for random index expressions of the thread
index and loop counters, under random thread conditions, the warpgroups the enumeration says touch
each element are those that evaluating the index in every thread and iteration one at a time
(tsir.arith.evaluate) finds; what cannot be enumerated is None, never a guess."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from tsir.passes.footprint import footprints, thread_values

from tsir.arith import evaluate
from tsir.buffer import make_buffer
from tsir.dtype import int32
from tsir.expr import BufferLoad, Call, FloorDiv, FloorMod, IntImm, Max, Min, PrimExpr, Var
from tsir.stmt import BufferStore, Evaluate, For, ForKind, IfThenElse, LetStmt, Stmt, seq

N = 512  # elements of the buffer
TX = Var("tx", int32)
K = Var("k", int32)
J = Var("j", int32)


def _c(v: int) -> IntImm:
    return IntImm(v, int32)


@st.composite
def _index(draw: st.DrawFn, depth: int = 0) -> PrimExpr:
    leaves = [TX, K, J, _c(draw(st.integers(0, 300)))]
    if depth >= 3 or draw(st.integers(0, 3)) == 0:
        return draw(st.sampled_from(leaves))
    a = draw(_index(depth + 1))
    b = draw(_index(depth + 1))
    op = draw(st.sampled_from(["+", "-", "*", "//", "%", "^", "min", "max"]))
    if op in ("//", "%"):
        d = _c(draw(st.integers(1, 130)))
        return FloorDiv(a, d) if op == "//" else FloorMod(a, d)
    if op == "min":
        return Min(a, b)
    if op == "max":
        return Max(a, b)
    if op == "*":  # by a small constant: indices stay far from int32's limits
        return a * _c(draw(st.integers(0, 16)))
    if op == "^":
        return Call(int32, "bitwise_xor", (a, b))
    return a + b if op == "+" else a - b


def _program(
    idx: PrimExpr, cond: PrimExpr | None, read: bool, ek: int, ej: int
) -> tuple[Stmt, Any]:
    buf = make_buffer("S", (N,), "float32", scope="shared")
    at = FloorMod(idx, _c(N))  # always in bounds (floor modulo of a positive modulus)
    if read:
        out = make_buffer("O", (1,), "float32", scope="global")
        leaf: Stmt = BufferStore(out, BufferLoad(buf, (at,)), (_c(0),))
    else:
        leaf = BufferStore(buf, BufferLoad(buf, (_c(0),)) * 0.0, (at,))
    if cond is not None:
        leaf = IfThenElse(cond, leaf)
    body = For(J, _c(0), _c(ej), ForKind.SERIAL, leaf)
    return For(K, _c(0), _c(ek), ForKind.UNROLLED, body), buf


def _oracle(
    idx: PrimExpr, cond: PrimExpr | None, lo: int, hi: int, ek: int, ej: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per element: the warpgroup bits, and the lowest and highest thread that touch it."""
    at = FloorMod(idx, _c(N))
    bits = np.zeros(N, np.int64)
    tmin, tmax = np.full(N, hi, np.int64), np.full(N, -1, np.int64)
    for t in range(lo, hi):
        for k in range(ek):
            for j in range(ej):
                env = {TX: t, K: k, J: j}
                if cond is not None and not evaluate(cond, env):
                    continue
                e = int(evaluate(at, env))
                bits[e] |= 1 << (t // 128)
                tmin[e], tmax[e] = min(tmin[e], t), max(tmax[e], t)
    return bits, tmin, tmax


@settings(max_examples=60, deadline=None)
@given(
    idx=_index(),
    cmod=st.integers(1, 200),
    use_cond=st.booleans(),
    read=st.booleans(),
    lo=st.sampled_from([0, 128]),
    ek=st.integers(1, 3),
    ej=st.integers(1, 3),
)
def test_footprints_match_evaluating_every_thread(
    idx: PrimExpr, cmod: int, use_cond: bool, read: bool, lo: int, ek: int, ej: int
) -> None:
    hi = lo + 256
    cond = FloorMod(TX + K, _c(cmod)) == _c(0) if use_cond else None
    prog, buf = _program(idx, cond, read, ek, ej)
    fp = footprints(prog, {buf}, TX, lo, hi, {})[buf]
    assert fp is not None
    want, tmin, tmax = _oracle(idx, cond, lo, hi, ek, ej)
    got = fp.reads if read else fp.writes
    # A write program also reads S[0] (the value stored is S[0] * 0): every thread in the range.
    np.testing.assert_array_equal(got, want)
    if read:
        assert not fp.writes.any()
        np.testing.assert_array_equal(fp.tmin, tmin)
        np.testing.assert_array_equal(fp.tmax, tmax)
    else:  # the threads of the writes, where S[0] (read by every thread) is not among them
        rest = np.arange(N) != 0
        np.testing.assert_array_equal(fp.tmin[rest], tmin[rest])
        np.testing.assert_array_equal(fp.tmax[rest], tmax[rest])


def test_lets_bound_outside_are_evaluated_and_unknown_values_give_none() -> None:
    buf = make_buffer("S", (256,), "float32", scope="shared")
    w = Var("w", int32)
    store = BufferStore(buf, BufferLoad(buf, (_c(0),)), (w * 128 + FloorMod(TX, _c(128)),))
    fp = footprints(store, {buf}, TX, 0, 256, {w: FloorDiv(TX, _c(128))})[buf]
    assert fp is not None and fp.partitioned() is False  # S[0] is read by both warpgroups
    np.testing.assert_array_equal(fp.writes, np.repeat([1, 2], 128))
    # `w` unknown (bound by something not enumerated): no footprint.
    assert footprints(store, {buf}, TX, 0, 256, {})[buf] is None
    # A loop whose extent is not known inside the statement.
    n = Var("n", int32)
    loop = For(K, _c(0), n, ForKind.SERIAL, BufferStore(buf, _c(0).astype("float32"), (K,)))
    assert footprints(loop, {buf}, TX, 0, 256, {})[buf] is None


def test_a_call_without_a_stated_extent_gives_none_and_a_let_inside_is_followed() -> None:
    buf = make_buffer("S", (256,), "float32", scope="shared")
    v = Var("v", int32)
    s = LetStmt(v, TX ^ _c(1), BufferStore(buf, BufferLoad(buf, (v,)), (TX,)))
    fp = footprints(s, {buf}, TX, 0, 256, {})[buf]
    assert fp is not None and fp.partitioned()
    esc = Evaluate(Call(int32, "address_of", (BufferLoad(buf, (TX,)),)))
    assert footprints(seq(s, esc), {buf}, TX, 0, 256, {})[buf] is None


def test_thread_values_evaluates_an_id_per_thread() -> None:
    vals = thread_values(FloorDiv(TX - _c(128), _c(128)) + _c(3), TX, 128, 384)
    assert vals is not None
    np.testing.assert_array_equal(vals, np.repeat([3, 4], 128))
    assert thread_values(TX + K, TX, 0, 128) is None
