"""A fused element-wise 2-D kernel with broadcasting: y = exp(x) * w[col] + b, rows dynamic."""

from __future__ import annotations

import tsir
from tsir import T


def fused_exp_scale_bias(
    N: int = 1024, dtype: str = "float32", bm: int = 8, bn: int = 256, threads: int = 256
) -> tsir.PrimFunc:
    with T.prim_func("fused_exp_scale_bias") as f:
        M = T.dynamic("M")
        X = T.param("X", (M, N), dtype)
        W = T.param("W", (N,), dtype)
        Bias = T.param("Bias", (N,), dtype)
        Y = T.param("Y", (M, N), dtype)
        with T.Kernel(T.ceildiv(N, bn), T.ceildiv(M, bm), threads=threads) as (bx, by):
            for i, j in T.Parallel(bm, bn):
                row = by * bm + i
                col = bx * bn + j
                Y[row, col] = T.exp(X[row, col]) * W[col] + Bias[col]
    return f.func


def reference(x, w, b):  # type: ignore[no-untyped-def]
    import torch

    return (torch.exp(x.double()) * w.double() + b.double()).to(x.dtype)


def main() -> None:
    import torch

    N = 1024
    kernel = tsir.compile(fused_exp_scale_bias(N), target="cuda")
    for M in (1, 7, 1000, 4096):
        x = torch.randn(M, N, device="cuda")
        w = torch.randn(N, device="cuda")
        b = torch.randn(N, device="cuda")
        y = torch.full((M, N), float("nan"), device="cuda")
        kernel(x, w, b, y)
        torch.testing.assert_close(y, reference(x, w, b), rtol=1e-5, atol=1e-5)
    print("fused_exp_scale_bias: ok")


if __name__ == "__main__":
    main()
