"""TileLang's hand-specialized GEMMs (tile-ai/tilelang, examples/warp_specialize/) in TileLang's
own form, through `tsir.compat.tilelang` (only the imports differ from TileLang's files): tsir's
transcriptions of example_warp_specialize_gemm_copy_0_gemm_1.py,
example_warp_specialize_gemm_softpipe_stage2.py and
example_warp_specialize_gemm_copy_gemm_0_1.py. examples/hopper_ws_gemm.py has them in tsir's
builder. Run on an H100/H200: `python examples/tilelang_ws_gemm.py` (checks against torch).
"""

from __future__ import annotations

from typing import Any

from tsir.compat import tilelang
from tsir.compat.tilelang import language as T


def copy_0_gemm_1(
    M: int,
    N: int,
    K: int,
    block_M: int,
    block_N: int,
    block_K: int,
    dtype: str = "float16",
    accum_dtype: str = "float",
    num_stages: int = 0,
) -> Any:
    """Warpgroup 0 copies, warpgroup 1 multiplies; `num_stages=2` is the softpipe_stage2 variant
    (tsir leaves a loop of warp roles unpipelined: the program's mbarriers order it)."""

    @T.prim_func
    def main(
        A: T.Tensor((M, K), dtype),
        B: T.Tensor((K, N), dtype),
        C: T.Tensor((M, N), dtype),
    ):
        with T.Kernel(T.ceildiv(N, block_N), T.ceildiv(M, block_M), threads=256) as (bx, by):
            A_shared = T.alloc_shared((block_M, block_K), dtype)
            B_shared = T.alloc_shared((block_K, block_N), dtype)
            C_local = T.alloc_fragment((block_M, block_N), accum_dtype)

            data_is_ready = T.alloc_barrier(arrive_count=128)
            compute_is_done = T.alloc_barrier(arrive_count=128)

            with T.ws(1):
                T.clear(C_local)

            for ko in T.Pipelined(T.ceildiv(K, block_K), num_stages=num_stages):
                with T.ws(0):
                    T.barrier_wait(compute_is_done, (ko + 1) % 2)
                    T.copy(A[by * block_M, ko * block_K], A_shared)
                    T.copy(B[ko * block_K, bx * block_N], B_shared)
                    T.barrier_arrive(data_is_ready)
                with T.ws(1):
                    T.barrier_wait(data_is_ready, ko % 2)
                    T.gemm(A_shared, B_shared, C_local)
                    T.barrier_arrive(compute_is_done)

            with T.ws(1):
                T.copy(C_local, C[by * block_M, bx * block_N])

    return main


def copy_gemm_0_1(
    M: int,
    N: int,
    K: int,
    block_M: int,
    block_N: int,
    block_K: int,
    dtype: str = "float16",
    accum_dtype: str = "float",
) -> Any:
    warp_group_num = 2
    threads = 128 * warp_group_num

    @T.prim_func
    def main(
        A: T.Tensor((M, K), dtype),
        B: T.Tensor((K, N), dtype),
        C: T.Tensor((M, N), dtype),
    ):
        with T.Kernel(T.ceildiv(N, block_N), T.ceildiv(M, block_M), threads=threads) as (bx, by):
            A_shared = T.alloc_shared((block_M, block_K), dtype, "shared")
            B_shared_g0 = T.alloc_shared((block_K, block_N // warp_group_num), dtype, "shared")
            B_shared_g1 = T.alloc_shared((block_K, block_N // warp_group_num), dtype, "shared")

            C_local_g0 = T.alloc_fragment((block_M, block_N // warp_group_num), accum_dtype)
            C_local_g1 = T.alloc_fragment((block_M, block_N // warp_group_num), accum_dtype)

            with T.ws(1):
                T.clear(C_local_g1)
            with T.ws(0):
                T.clear(C_local_g0)

            for ko in T.Pipelined(T.ceildiv(K, block_K), num_stages=0):
                T.copy(A[by * block_M, ko * block_K], A_shared)
                with T.ws(1):
                    T.copy(B[ko * block_K, bx * block_N], B_shared_g1)
                    T.gemm(A_shared, B_shared_g1, C_local_g1)
                with T.ws(0):
                    T.copy(B[ko * block_K, bx * block_N + block_N // warp_group_num], B_shared_g0)
                    T.gemm(A_shared, B_shared_g0, C_local_g0)

            with T.ws(1):
                T.copy(C_local_g1, C[by * block_M, bx * block_N])
            with T.ws(0):
                T.copy(C_local_g0, C[by * block_M, bx * block_N + block_N // warp_group_num])

    return main


PROGRAMS = {
    "copy_0_gemm_1": lambda: copy_0_gemm_1(512, 384, 512, 128, 128, 64),
    "softpipe_stage2": lambda: copy_0_gemm_1(512, 384, 512, 128, 128, 64, num_stages=2),
    "copy_gemm_0_1": lambda: copy_gemm_0_1(512, 384, 512, 128, 128, 64),
}


def main() -> None:
    import torch

    for name, build in PROGRAMS.items():
        kernel = tilelang.compile(build(), out_idx=[2], target="sm_90a")
        a = torch.randn(512, 512, device="cuda", dtype=torch.float16)
        b = torch.randn(512, 384, device="cuda", dtype=torch.float16)
        c = kernel(a, b)
        torch.testing.assert_close(c, a @ b, rtol=2e-2, atol=2e-2)
        print(f"{name}: matches torch")


if __name__ == "__main__":
    main()
