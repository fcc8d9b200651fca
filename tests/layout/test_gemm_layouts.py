"""The mma.sync fragments and ldmatrix patterns against the PTX ISA tables (ptx_reference)."""

from __future__ import annotations

import itertools

import pytest
from ptx_reference import (
    ldmatrix,
    mma_m8n8k4_f64_c,
    mma_m16n8_c,
    mma_m16n8k16_a,
    mma_m16n8k16_b,
)

from tsir.errors import UnsupportedError
from tsir.layout import (
    Fragment,
    WarpPartition,
    equivalent,
    ldmatrix_a,
    ldmatrix_b,
    make_mma_a_fragment,
    make_mma_b_fragment,
    make_mma_c_fragment,
)

TILINGS = [
    (16, 8, 16, 8),
    (64, 64, 32, 32),
    (128, 128, 64, 32),
    (64, 128, 64, 32),
    (32, 64, 32, 16),
]


def slots(frag: Fragment) -> dict[tuple[int, ...], tuple[int, int]]:
    """(element..., rep) -> (register, thread), from the exhaustive table."""
    t = frag.table()
    ins = list(zip(*(a.tolist() for a in t.inputs)))
    local, thread = t.outputs[0].tolist(), t.outputs[-1].tolist()
    return {x: (loc, th) for x, loc, th in zip(ins, local, thread)}


def assert_exact_cover(frag: Fragment) -> None:
    """Every (element, replica) has its own (register, thread), the replicas of an element are on
    distinct threads, and the register x thread box is filled exactly."""
    s = slots(frag)
    assert len(set(s.values())) == len(s)
    assert frag.is_injective()
    box = {(loc, th) for loc in range(frag.local_size) for th in range(frag.thread_extent)}
    assert set(s.values()) == box
    shape = frag.const_input_shape()
    for x in itertools.product(*map(range, shape)):
        threads = {s[(*x, r)][1] for r in range(frag.replicate_size)}
        assert len(threads) == frag.replicate_size


@pytest.mark.parametrize("bm,bn,wm,wn", TILINGS)
def test_c_fragment_matches_the_isa_accumulator_layout(bm: int, bn: int, wm: int, wn: int) -> None:
    """Register (mi * nt + ni) * 4 + r of lane l in warp (wm, wn) holds c_r of tile (mi, ni):
    row = l / 4 (+8 for c2, c3), col = (l % 4) * 2 + r % 2."""
    frag = make_mma_c_fragment(bm, bn, wm, wn)
    wp = WarpPartition.of(bm, bn, wm, wn)
    assert frag.thread_extent == 32 * wp.num_warps
    assert frag.local_size == (wm // 16) * (wn // 8) * 4
    s = slots(frag)
    nt = wn // 8
    for warp_m, warp_n in itertools.product(range(wp.warps_m), range(wp.warps_n)):
        for mi, ni, lane in itertools.product(range(wm // 16), range(nt), range(32)):
            for r, (row, col) in enumerate(mma_m16n8_c(lane)):
                i = warp_m * wm + mi * 16 + row
                j = warp_n * wn + ni * 8 + col
                thread = wp.warp_id(warp_m, warp_n) * 32 + lane
                assert s[i, j, 0] == ((mi * nt + ni) * 4 + r, thread)
    assert_exact_cover(frag)


def test_f64_accumulator_uses_m8n8_tiles() -> None:
    frag = make_mma_c_fragment(16, 16, 16, 16, dtype_bits=64)
    s = slots(frag)
    for mi, ni, lane in itertools.product(range(2), range(2), range(32)):
        for r, (row, col) in enumerate(mma_m8n8k4_f64_c(lane)):
            assert s[mi * 8 + row, ni * 8 + col, 0] == ((mi * 2 + ni) * 2 + r, lane)
    assert_exact_cover(frag)


@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("bm,bn,wm,wn", TILINGS)
def test_a_fragment_matches_the_isa_operand_layout(
    bm: int, bn: int, wm: int, wn: int, transposed: bool
) -> None:
    bk = 32
    frag = make_mma_a_fragment(bm, bn, bk, wm, wn, transposed=transposed)
    wp = WarpPartition.of(bm, bn, wm, wn)
    assert frag.replicate_size == wp.warps_n and frag.local_size == (wm // 16) * (bk // 16) * 8
    s = slots(frag)
    for warp_m, mi, ki, lane in itertools.product(
        range(wp.warps_m), range(wm // 16), range(bk // 16), range(32)
    ):
        for r, (row, col) in enumerate(mma_m16n8k16_a(lane)):
            m, k = warp_m * wm + mi * 16 + row, ki * 16 + col
            for rep in range(wp.warps_n):  # every warp of the warp row holds the A rows it needs
                key = (k, m, rep) if transposed else (m, k, rep)
                expected = ((mi * (bk // 16) + ki) * 8 + r, wp.warp_id(warp_m, rep) * 32 + lane)
                assert s[key] == expected
    assert_exact_cover(frag)


@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("bm,bn,wm,wn", TILINGS)
def test_b_fragment_matches_the_isa_operand_layout(
    bm: int, bn: int, wm: int, wn: int, transposed: bool
) -> None:
    bk = 32
    frag = make_mma_b_fragment(bm, bn, bk, wm, wn, transposed=transposed)
    wp = WarpPartition.of(bm, bn, wm, wn)
    nt = wn // 8
    s = slots(frag)
    for warp_n, ni, ki, lane in itertools.product(
        range(wp.warps_n), range(nt), range(bk // 16), range(32)
    ):
        for r, (row, col) in enumerate(mma_m16n8k16_b(lane)):
            k, n = ki * 16 + row, warp_n * wn + ni * 8 + col
            for rep in range(wp.warps_m):
                key = (n, k, rep) if transposed else (k, n, rep)
                assert s[key] == ((ki * nt + ni) * 4 + r, wp.warp_id(rep, warp_n) * 32 + lane)
    assert_exact_cover(frag)


@pytest.mark.parametrize("transposed", [False, True])
def test_ldmatrix_x4_fills_one_a_tile(transposed: bool) -> None:
    """ldmatrix.x4 (with .trans when A is stored K x M) at ldmatrix_a's addresses puts element
    a_{2q+h} of the ISA table in half h of register q: 8 consecutive fragment registers."""
    acc = ldmatrix_a(0, transposed=transposed)
    assert acc.num == 4 and acc.trans == transposed

    def address(lane: int) -> tuple[int, int]:
        a = ldmatrix_a(lane, transposed=transposed)
        return a.row, a.col

    # storage holds each element's logical (m, k)
    read = (lambda r, c: (c, r)) if transposed else (lambda r, c: (r, c))
    regs = ldmatrix(4, acc.trans, address, read)
    frag = make_mma_a_fragment(16, 8, 16, 16, 8)
    inv = frag.inverse()
    for lane in range(32):
        want = mma_m16n8k16_a(lane)
        for q in range(4):
            assert regs[lane][q] == (want[2 * q], want[2 * q + 1])
            for h in range(2):  # and the fragment agrees on where the value goes
                m, k, _rep = (int(e) for e in inv.forward((2 * q + h, lane)))
                assert (m, k) == regs[lane][q][h]


@pytest.mark.parametrize("num", [2, 4])
@pytest.mark.parametrize("transposed", [False, True])
def test_ldmatrix_fills_b_tiles(transposed: bool, num: int) -> None:
    """x2 loads b0..b3 of one n8 tile, x4 those of two adjacent n8 tiles; .trans iff B is K x N."""
    acc = ldmatrix_b(0, transposed=transposed, num=num)
    assert acc.trans == (not transposed)

    def address(lane: int) -> tuple[int, int]:
        a = ldmatrix_b(lane, transposed=transposed, num=num)
        return a.row, a.col

    read = (lambda r, c: (c, r)) if transposed else (lambda r, c: (r, c))  # logical (k, n)
    regs = ldmatrix(num, acc.trans, address, read)
    for lane in range(32):
        want = [(k, n + 8 * tile) for tile in range(num // 2) for (k, n) in mma_m16n8k16_b(lane)]
        got = [e for q in range(num) for e in regs[lane][q]]
        assert got == want


def test_c_fragment_is_the_a_fragment_of_the_next_gemm() -> None:
    """With one warp column, an accumulator S (M x N) can feed `gemm(P, V)` as A (M x K=N) without
    moving data: same threads and same registers (the flash-attention pattern)."""
    c = make_mma_c_fragment(64, 64, 16, 64)
    a = make_mma_a_fragment(64, 32, 64, 16, 32)
    assert a.replicate_size == 1
    assert equivalent(c, a)
    c2 = make_mma_c_fragment(64, 64, 32, 32)  # two warp columns: the layouts differ
    a2 = make_mma_a_fragment(64, 64, 64, 32, 32)
    assert not equivalent(c2, a2)


def test_bad_tilings_are_refused_with_the_rule() -> None:
    with pytest.raises(UnsupportedError, match="multiple of 16"):
        make_mma_c_fragment(64, 64, 24, 32)
    with pytest.raises(
        UnsupportedError, match="block extent 64 must be a multiple of the warp extent 48"
    ):
        make_mma_c_fragment(64, 64, 32, 48)
    with pytest.raises(UnsupportedError, match="16-bit"):
        make_mma_a_fragment(64, 64, 32, 32, 32, dtype_bits=8)
    with pytest.raises(UnsupportedError, match="block_k"):
        make_mma_b_fragment(64, 64, 24, 32, 32)


def test_warp_partition_round_trips() -> None:
    wp = WarpPartition(2, 4)
    assert [wp.coords(w) for w in range(8)] == [(m, n) for m in range(2) for n in range(4)]
    assert all(wp.warp_id(*wp.coords(w)) == w for w in range(8))
