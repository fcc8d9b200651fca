"""Vector add: C = A + B over a dynamic length, 16-byte accesses, tails guarded."""

from __future__ import annotations

import tsir
from tsir import T


def vector_add(dtype: str = "float32", block: int = 1024, threads: int = 256) -> tsir.PrimFunc:
    with T.prim_func("vector_add") as f:
        n = T.dynamic("n")
        A = T.param("A", (n,), dtype)
        B = T.param("B", (n,), dtype)
        C = T.param("C", (n,), dtype)
        with T.Kernel(T.ceildiv(n, block), threads=threads) as bx:
            for i in T.Parallel(block):
                C[bx * block + i] = A[bx * block + i] + B[bx * block + i]
    return f.func


def main() -> None:
    import torch

    kernel = tsir.compile(vector_add(), target="cuda")
    for n in (1, 1000, 1 << 20, (1 << 20) + 3):
        a = torch.randn(n, device="cuda")
        b = torch.randn(n, device="cuda")
        c = torch.full((n,), float("nan"), device="cuda")
        kernel(a, b, c)
        torch.testing.assert_close(c, a + b)
    print("vector_add: ok")


if __name__ == "__main__":
    main()
