"""wgmma fragments, descriptors and TMA boxes against the PTX ISA tables (ptx_wgmma_reference)."""

from __future__ import annotations

import itertools

import pytest
from ptx_wgmma_reference import (
    canonical_address,
    tma_swizzled_box_address,
    wgmma_a_8bit,
    wgmma_a_16bit,
    wgmma_d,
)

from tsir.errors import UnsupportedError
from tsir.layout import Fragment, SwizzleMode, make_swizzle_layout
from tsir.layout.wgmma_layouts import (
    WarpgroupPartition,
    a_fragment_matches_accumulator,
    choose_wgmma_swizzle,
    descriptor,
    instruction_k,
    make_wgmma_a_fragment,
    make_wgmma_c_fragment,
    tma_boxes,
    valid_wgmma_n,
)


def slots(frag: Fragment) -> dict[tuple[int, ...], tuple[int, int]]:
    """(element..., rep) -> (register, thread), from the exhaustive table."""
    t = frag.table()
    ins = list(zip(*(a.tolist() for a in t.inputs)))
    return dict(zip(ins, zip(t.outputs[0].tolist(), t.outputs[-1].tolist())))


C_TILINGS = [
    (64, 8, 64, 8),
    (64, 256, 64, 256),
    (128, 256, 64, 256),  # two consumer warpgroups along M (the GEMM's cooperative tile)
    (128, 128, 128, 128),  # one warpgroup, two m64 tiles
    (128, 256, 128, 128),  # warpgroups along N
    (256, 64, 128, 64),
]


@pytest.mark.parametrize("bm,bn,wm,wn", C_TILINGS)
def test_accumulator_fragment_matches_the_isa(bm: int, bn: int, wm: int, wn: int) -> None:
    """Register mi * wn/2 + r of thread tid in warpgroup (gm, gn) holds d_r of m64 tile mi."""
    frag = make_wgmma_c_fragment(bm, bn, wm, wn)
    wp = WarpgroupPartition.of(bm, bn, wm, wn)
    assert frag.thread_extent == 128 * wp.num_warpgroups
    assert frag.local_size == (wm // 64) * wn // 2
    s = slots(frag)
    for gm, gn, mi, tid in itertools.product(
        range(wp.wgs_m), range(wp.wgs_n), range(wm // 64), range(128)
    ):
        for r, (row, col) in enumerate(wgmma_d(tid, wn)):
            i, j = gm * wm + mi * 64 + row, gn * wn + col
            assert s[i, j, 0] == (mi * wn // 2 + r, (gm * wp.wgs_n + gn) * 128 + tid)
    assert frag.is_injective()
    assert len(set(s.values())) == bm * bn == frag.local_size * frag.thread_extent


@pytest.mark.parametrize("bits,table", [(16, wgmma_a_16bit), (8, wgmma_a_8bit)])
@pytest.mark.parametrize("bm,bk,wm", [(64, 64, 64), (128, 64, 64), (128, 128, 128)])
def test_a_fragment_matches_the_isa(bits: int, table, bm: int, bk: int, wm: int) -> None:
    frag = make_wgmma_a_fragment(bm, bk, wm, bits)
    kstep, per = (16, 8) if bits == 16 else (32, 16)
    s = slots(frag)
    for gm, mi, kk, tid in itertools.product(
        range(bm // wm), range(wm // 64), range(bk // kstep), range(128)
    ):
        for r, (row, col) in enumerate(table(tid)):
            m, k = gm * wm + mi * 64 + row, kk * kstep + col
            reg = (mi * (bk // kstep) + kk) * per + r
            assert s[m, k, 0] == (reg, gm * 128 + tid)
    assert frag.local_size * 4 == (wm // 64) * (bk // kstep) * 4 * per  # 4 32-bit regs a step
    assert frag.is_injective()


def test_a_fragment_is_replicated_over_warpgroup_columns() -> None:
    frag = make_wgmma_a_fragment(128, 32, 64, 16, wgs_n=2)
    s = slots(frag)
    for m, k in itertools.product(range(128), range(32)):
        t0, t1 = s[m, k, 0][1], s[m, k, 1][1]
        assert t1 - t0 == 128 and s[m, k, 0][0] == s[m, k, 1][0]
        assert t0 // 256 == m // 64


def test_p_from_registers_needs_no_shuffle_for_16_bit_only() -> None:
    """The converted fp32 accumulator of S = Q.K^T is P.V's A operand in place for f16/bf16
    (FlashAttention-3's register reuse); fp8 P needs a permutation."""
    assert a_fragment_matches_accumulator(64, 64, 16)
    assert a_fragment_matches_accumulator(128, 128, 16)
    assert not a_fragment_matches_accumulator(64, 64, 8)


@pytest.mark.parametrize("n", [0, 4, 12, 264])
def test_invalid_n(n: int) -> None:
    assert valid_wgmma_n(n) == (8 <= n <= 256 and n % 8 == 0)


def test_bad_tilings_are_refused() -> None:
    with pytest.raises(UnsupportedError, match="multiple of 64"):
        make_wgmma_c_fragment(96, 64, 96, 64)
    with pytest.raises(UnsupportedError, match="multiple of 8"):
        make_wgmma_c_fragment(64, 60, 64, 60)
    with pytest.raises(UnsupportedError, match="16-bit .* or 8-bit"):
        instruction_k("float32")


def _address(layout, esize: int, base: int, *index: int) -> int:
    """Byte address tsir's layout gives element `index` (physical indices linearised)."""
    return base + int(layout.linear_forward(index)) * esize


# (shape as stored (rows, cols), dtype, k_major): A K-major, B MN-major, fp8 B K-major, ...
OPERANDS = [
    ((128, 64), "float16", True),  # A tile 128 x 64, one 128B region
    ((128, 128), "bfloat16", True),  # two regions along K
    ((64, 256), "float16", False),  # B stored K x N, four 64-column regions
    ((64, 128), "float16", False),
    ((256, 128), "float8_e4m3", True),  # fp8 B stored N x K
    ((128, 128), "float8_e5m2", True),
    ((64, 32), "float16", True),  # 64B swizzle
    ((32, 64), "bfloat16", False),  # 64B MN-major... rows=K=32
    ((64, 16), "float16", True),  # 32B swizzle
]


@pytest.mark.parametrize("shape,dtype,k_major", OPERANDS)
def test_descriptor_reads_what_tma_wrote(shape, dtype: str, k_major: bool) -> None:
    """For every instruction of a tile (each m64 / n-span block and K step), the ISA's canonical
    layout under tsir's descriptor reads, for each operand element, exactly the address where the
    TMA boxes of `tma_boxes` put that element (and where tsir's swizzle layout says it is)."""
    mode = choose_wgmma_swizzle(shape, dtype)
    assert mode is not None
    rows, cols = shape
    esize = 1 if "float8" in dtype else 2
    kstep = instruction_k(dtype)
    base = 3 * 1024  # any 1024-aligned tile base
    layout = make_swizzle_layout(shape, dtype, mode)
    where: dict[tuple[int, int], int] = {}  # (row, col) as stored -> address, per TMA
    for box in tma_boxes(shape, dtype, mode):
        assert box.inner * esize <= mode.value and box.outer == rows
        for r, c in itertools.product(range(box.outer), range(box.inner)):
            where[r, box.col0 + c] = tma_swizzled_box_address(
                base + box.smem_offset, r, c, box.inner * esize, esize, mode.value
            )
    assert len(set(where.values())) == rows * cols
    for (r, c), addr in where.items():
        assert _address(layout, esize, base, r, c) == addr
    mn_extent, k_extent = (rows, cols) if k_major else (cols, rows)
    mn_block = 64 if k_major else mode.value // esize
    for mn0 in range(0, mn_extent, min(mn_block, mn_extent)):
        for k0 in range(0, k_extent, kstep):
            d = descriptor(shape, dtype, mode, k_major=k_major, mn0=mn0, k0=k0)
            assert d.encode(base) >> 62 == mode.gmma_layout_type
            n_inst = mn_extent - mn0  # one instruction reads up to the tile's end (B: all N)
            for mn, k in itertools.product(range(n_inst), range(kstep)):
                got = canonical_address(
                    start=base + d.start,
                    lbo=d.lbo,
                    sbo=d.sbo,
                    swizzle_bytes=mode.value,
                    k_major=k_major,
                    esize=esize,
                    mn=mn,
                    k=k,
                )
                stored = (mn0 + mn, k0 + k) if k_major else (k0 + k, mn0 + mn)
                assert got == where[stored], (mn0, k0, mn, k)


def test_descriptor_encoding_bit_fields() -> None:
    d = descriptor((128, 64), "float16", SwizzleMode.B128, k_major=True, mn0=64, k0=16)
    word = d.encode(0x4400)
    assert word & 0x3FFF == (0x4400 + 64 * 128 + 32) >> 4
    assert (word >> 16) & 0x3FFF == 1
    assert (word >> 32) & 0x3FFF == 1024 >> 4
    assert (word >> 49) & 0x7 == 0
    assert word >> 62 == 1


def test_fp8_mn_major_is_refused() -> None:
    with pytest.raises(UnsupportedError, match="must be K-major"):
        descriptor((64, 128), "float8_e4m3", SwizzleMode.B128, k_major=False, mn0=0, k0=0)


def test_tma_box_limits() -> None:
    with pytest.raises(UnsupportedError, match="at most 256 rows"):
        tma_boxes((512, 64), "float16", SwizzleMode.B128)
    boxes = tma_boxes((64, 256), "float16", SwizzleMode.B128)
    assert [(b.col0, b.smem_offset) for b in boxes] == [
        (0, 0),
        (64, 8192),
        (128, 16384),
        (192, 24576),
    ]
