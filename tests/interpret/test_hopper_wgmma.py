"""wgmma's reference semantics on hand-written thread-level IR: operand tiles loaded by TMA into
tsir's swizzled layouts, descriptors from `tsir.layout.wgmma_layouts` (the compiler's side,
written independently of the interpreter's ISA tables), the accumulator stored out by the ISA's
fragment table. The product must be A @ B in fp32 for every swizzle, both operand majors, the
register (rs) form and fp8; a descriptor that is off must give a wrong product."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from irkit import addr, desc, mb, tensor_map, tma, u32, wg

import tsir
from tsir import T
from tsir.layout.swizzle import SwizzleMode
from tsir.layout.wgmma_layouts import descriptor, instruction_k, tma_boxes

KIND = {
    ("float16", "float16"): "tsir::kWgmmaF16",
    ("bfloat16", "bfloat16"): "tsir::kWgmmaBF16",
    ("float8_e4m3", "float8_e4m3"): "tsir::kWgmmaE4M3E4M3",
    ("float8_e4m3", "float8_e5m2"): "tsir::kWgmmaE4M3E5M2",
    ("float8_e5m2", "float8_e4m3"): "tsir::kWgmmaE5M2E4M3",
}
NP = {
    "float16": np.float16,
    "bfloat16": ml_dtypes.bfloat16,
    "float8_e4m3": ml_dtypes.float8_e4m3fn,
    "float8_e5m2": ml_dtypes.float8_e5m2,
}


def load_tile(glob, tile_base, shape, dtype, mode, bar) -> int:
    """TMA loads of a whole (rows, cols) global matrix into tsir's `mode` swizzled tile; returns
    the bytes they complete on `bar`."""
    esize = 1 if dtype.startswith("float8") else 2
    total = 0
    for box in tma_boxes(shape, dtype, mode):
        tmap = tensor_map(glob, (box.outer, box.inner), mode.value)
        tma("tma_load_2d", u32(tile_base) + box.smem_offset, tmap, u32(bar[0]), box.col0, 0)
        total += box.outer * box.inner * esize
    return total


def store_accumulator(C, acc, n: int, tx) -> None:
    """d_i of thread tx sits at row 16 warp + lane / 4 + 8 (i % 4 / 2), column
    8 (i / 4) + 2 (lane % 4) + i % 2 (the ISA's accumulator table)."""
    for i in T.serial(n // 2):
        row = 16 * (tx // 32) + (tx % 32) // 4 + 8 * ((i % 4) // 2)
        col = 8 * (i // 4) + 2 * (tx % 4) + i % 2
        C[row, col] = acc[i]


def gemm_tile(
    a_dt: str,
    b_dt: str,
    n: int,
    k: int,
    mode_a: SwizzleMode,
    mode_b: SwizzleMode,
    a_kmajor: bool = True,
    b_kmajor: bool = True,
    rs: bool = False,
    sbo_error: int = 0,
    layout_b: int | None = None,
) -> tsir.PrimFunc:
    """C(64 x n) = A(64 x k) @ B(k x n) by one warpgroup: TMA -> mbarrier -> wgmma batch."""
    esize = 1 if a_dt.startswith("float8") else 2
    kstep = instruction_k(a_dt)
    a_shape = (64, k) if a_kmajor else (k, 64)
    b_shape = (n, k) if b_kmajor else (k, n)
    kind = KIND[(a_dt, b_dt)]
    with T.prim_func("wgmma_tile") as f:
        A = T.param("A", a_shape, a_dt)
        B = T.param("B", b_shape, b_dt)
        C = T.param("C", (64, n), "float32")
        with T.Kernel(1, threads=128):
            tx = T.get_thread_binding()
            A_s = T.alloc_shared((64 * k,), a_dt)
            B_s = T.alloc_shared((n * k,), b_dt)
            bar = T.alloc_shared((1,), "uint64")
            acc = T.alloc_local((n // 2,), "float32")
            a_regs = T.alloc_local((16 // esize,), a_dt)
            with T.If(tx == 0):
                mb("mbarrier_init", u32(bar[0]), 1)
                mb("mbarrier_init_fence")
            T.sync_threads()
            with T.If(tx == 0):
                nbytes = 0 if rs else 64 * k * esize
                mb("mbarrier_arrive_expect_tx", u32(bar[0]), nbytes + n * k * esize)
                if not rs:
                    load_tile(A, A_s[0], a_shape, a_dt, mode_a, bar)
                load_tile(B, B_s[0], b_shape, b_dt, mode_b, bar)
            mb("mbarrier_wait", u32(bar[0]), 0)
            wg("wgmma_fence")
            for kk in range(k // kstep):
                db = descriptor(b_shape, b_dt, mode_b, k_major=b_kmajor, mn0=0, k0=kk * kstep)
                lay = db.layout_type if layout_b is None else layout_b
                d_b = desc(u32(B_s[0]) + db.start, db.lbo, db.sbo + sbo_error, lay)
                scale = 0 if kk == 0 else 1
                if rs:
                    # A's fragment of k step kk, from global memory by the ISA's A table.
                    lane = tx % 32
                    for i in T.serial(16 // esize):
                        if esize == 2:
                            row = 16 * (tx // 32) + lane // 4 + 8 * ((i // 2) % 2)
                            col = 2 * (lane % 4) + i % 2 + 8 * (i // 4)
                        else:
                            row = 16 * (tx // 32) + lane // 4 + 8 * ((i // 4) % 2)
                            col = 4 * (lane % 4) + i % 4 + 16 * (i // 8)
                        a_regs[i] = A[row, kk * kstep + col]
                    wg("wgmma_fence")
                    op = f"wgmma_rs<{kind}, {n}, {0 if b_kmajor else 1}>"
                    wg(op, addr(acc[0]), addr(a_regs[0]), d_b, scale)
                    wg("wgmma_commit")
                    wg("wgmma_wait<0>")
                else:
                    da = descriptor(a_shape, a_dt, mode_a, k_major=a_kmajor, mn0=0, k0=kk * kstep)
                    d_a = desc(u32(A_s[0]) + da.start, da.lbo, da.sbo, da.layout_type)
                    op = f"wgmma_ss<{kind}, {n}, {0 if a_kmajor else 1}, {0 if b_kmajor else 1}>"
                    wg(op, addr(acc[0]), d_a, d_b, scale)
            wg("wgmma_commit")
            wg("wgmma_wait<0>")
            store_accumulator(C, acc, n, tx)
    return f.func


def run_tile(func, a_dt, b_dt, n, k, a_kmajor=True, b_kmajor=True, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((64, k)).astype(NP[a_dt])
    b = rng.standard_normal((k, n)).astype(NP[b_dt])
    c = np.full((64, n), np.nan, np.float32)
    tsir.interpret(
        func,
        a if a_kmajor else np.ascontiguousarray(a.T),
        np.ascontiguousarray(b.T) if b_kmajor else b,
        c,
    )
    return c, a.astype(np.float64) @ b.astype(np.float64)


B128, B64, B32 = SwizzleMode.B128, SwizzleMode.B64, SwizzleMode.B32
CASES = [
    # (a dtype, b dtype, N, K, A swizzle, B swizzle, A K-major, B K-major)
    ("float16", "float16", 64, 64, B128, B128, True, True),
    ("float16", "float16", 32, 32, B64, B64, True, False),
    ("float16", "float16", 16, 32, B32, B32, False, False),
    ("bfloat16", "bfloat16", 24, 64, B128, B32, False, True),
    ("float16", "float16", 64, 32, B32, B128, True, False),
    ("float8_e4m3", "float8_e4m3", 32, 128, B128, B128, True, True),
    ("float8_e4m3", "float8_e5m2", 48, 64, B64, B32, True, True),
]


@pytest.mark.parametrize("a_dt,b_dt,n,k,sa,sb,ak,bk", CASES)
def test_wgmma_ss_tile_is_a_times_b(a_dt, b_dt, n, k, sa, sb, ak, bk) -> None:
    func = gemm_tile(a_dt, b_dt, n, k, sa, sb, ak, bk)
    c, want = run_tile(func, a_dt, b_dt, n, k, ak, bk)
    np.testing.assert_allclose(c, want, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize(
    "a_dt,b_dt,n,k,sb,bk",
    [
        ("float16", "float16", 32, 32, B64, False),
        ("bfloat16", "bfloat16", 16, 64, B128, True),
        ("float8_e5m2", "float8_e4m3", 32, 64, B64, True),
    ],
)
def test_wgmma_rs_tile_is_a_times_b(a_dt, b_dt, n, k, sb, bk) -> None:
    func = gemm_tile(a_dt, b_dt, n, k, B128, sb, b_kmajor=bk, rs=True)
    c, want = run_tile(func, a_dt, b_dt, n, k, True, bk)
    np.testing.assert_allclose(c, want, rtol=1e-5, atol=1e-4)


def test_a_wrong_swizzle_in_the_descriptor_gives_a_wrong_product() -> None:
    """B stored with the 128-byte swizzle, read as 64-byte: other elements, as on the GPU."""
    func = gemm_tile("float16", "float16", 32, 64, B128, B128, layout_b=2)
    c, want = run_tile(func, "float16", "float16", 32, 64)
    assert not np.allclose(c, want, rtol=1e-2, atol=1e-2)


def test_a_descriptor_past_its_tile_is_out_of_bounds() -> None:
    from tsir.interpret import OutOfBoundsError

    func = gemm_tile("float16", "float16", 32, 64, B128, B128, sbo_error=16)
    with pytest.raises(
        OutOfBoundsError,
        match=r"operand B: shared address 0x\w+ \(\+\d+ bytes\) is "
        "outside every live shared allocation",
    ):
        run_tile(func, "float16", "float16", 32, 64)
