"""Tiled GEMM on tensor cores: C = A @ B (+ optional bias and ReLU), fp16/bf16 in (or float8 with
per-tensor scales), fp32 accumulate.

The canonical TileLang program: shared-memory tiles, a register accumulator, `T.gemm` and a
software-pipelined K loop. On sm_80/sm_89 that is mma.sync m16n8k16 with ldmatrix from swizzled
tiles and cp.async; on sm_90a the same program compiles to wgmma, TMA loads into an mbarrier ring
and a producer warpgroup (`threads` is the consumers' count: 128 more run). `persistent=True`
runs one block per SM over the tiles; `warp_specialize=False` keeps the ring in the consumers.
"""

from __future__ import annotations

from typing import Any

import tsir
from tsir import T


def matmul(
    M: Any,
    N: int,
    K: int,
    bm: int = 128,
    bn: int = 128,
    bk: int = 32,
    dtype: str = "float16",
    accum: str = "float32",
    out_dtype: str | None = None,
    threads: int = 128,
    num_stages: int = 3,
    transpose_A: bool = False,
    transpose_B: bool = False,
    epilogue: str = "none",
    swizzle: int = 0,
    swizzle_order: str = "row",
    persistent: bool = False,
    warp_specialize: bool = True,
) -> tsir.PrimFunc:
    out_dtype = out_dtype or dtype
    with T.prim_func("matmul") as f:
        M = T.dynamic("M") if M is None else M
        A = T.param("A", (K, M) if transpose_A else (M, K), dtype)
        B = T.param("B", (N, K) if transpose_B else (K, N), dtype)
        if epilogue == "bias_relu":
            Bias = T.param("Bias", (N,), accum)
        if epilogue == "scale":  # C = (A @ B) * scale_a * scale_b, as torch._scaled_mm
            Scale_A = T.param("Scale_A", (1,), "float32")
            Scale_B = T.param("Scale_B", (1,), "float32")
        C = T.param("C", (M, N), out_dtype)
        grid = (T.ceildiv(N, bn), T.ceildiv(M, bm))
        hopper = {"persistent": True} if persistent else {}  # (older tsir: no such keyword)
        with T.Kernel(*grid, threads=threads, **hopper) as (bx, by):
            if swizzle:
                T.use_swizzle(swizzle, order=swizzle_order)
            A_s = T.alloc_shared((bk, bm) if transpose_A else (bm, bk), dtype)
            B_s = T.alloc_shared((bn, bk) if transpose_B else (bk, bn), dtype)
            C_f = T.alloc_fragment((bm, bn), accum)
            T.clear(C_f)
            ws = {} if warp_specialize else {"warp_specialize": False}
            for ko in T.Pipelined(T.ceildiv(K, bk), num_stages=num_stages, **ws):
                if transpose_A:
                    T.copy(A[ko * bk, by * bm], A_s)
                else:
                    T.copy(A[by * bm, ko * bk], A_s)
                if transpose_B:
                    T.copy(B[bx * bn, ko * bk], B_s)
                else:
                    T.copy(B[ko * bk, bx * bn], B_s)
                T.gemm(A_s, B_s, C_f, transpose_A=transpose_A, transpose_B=transpose_B)
            if epilogue == "bias_relu":
                for i, j in T.Parallel(bm, bn):
                    C_f[i, j] = T.max(C_f[i, j] + Bias[bx * bn + j], 0.0)
            if epilogue == "scale":
                for i, j in T.Parallel(bm, bn):
                    C_f[i, j] = C_f[i, j] * (Scale_A[0] * Scale_B[0])
            if epilogue == "smem":
                # Stage the tile through shared memory (rows padded by 16 bytes against bank
                # conflicts) so the global stores are 16-byte vectors.
                C_s = T.alloc_shared((bm, bn + 16 // tsir.dtype(out_dtype).bytes), out_dtype)
                T.copy(C_f, C_s[0:bm, 0:bn])
                T.copy(C_s[0:bm, 0:bn], C[by * bm, bx * bn])
            elif epilogue == "shared":
                # TileLang's form: an unpadded tile. On sm_90a it takes a swizzled layout and the
                # copy to C becomes TMA stores (clipped at C's edges).
                C_t = T.alloc_shared((bm, bn), out_dtype)
                T.copy(C_f, C_t)
                T.copy(C_t, C[by * bm, bx * bn])
            else:
                T.copy(C_f, C[by * bm, bx * bn])
    return f.func


def main() -> None:
    import torch

    for M, N, K in ((4096, 4096, 4096), (1000, 1000, 1000), (77, 130, 64)):
        k = tsir.compile(matmul(M, N, K), target="cuda")
        a = torch.randn(M, K, device="cuda", dtype=torch.float16)
        b = torch.randn(K, N, device="cuda", dtype=torch.float16)
        c = torch.full((M, N), float("nan"), device="cuda", dtype=torch.float16)
        k(a, b, c)
        torch.testing.assert_close(c.float(), (a.float() @ b.float()), rtol=2e-2, atol=2e-1)
    print("gemm: ok")


if __name__ == "__main__":
    main()
