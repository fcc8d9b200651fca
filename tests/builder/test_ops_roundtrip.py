"""The printer's forms of issue 12's ops rebuild the same function: warp values, fast math,
reinterpret, an atomic's previous value, vector atomics, T.print, the escape hatch, reductions with
clear=False and the bit kinds, region atomics with a memory order (CONVENTIONS 10)."""

from __future__ import annotations

import tsir
from tsir import T
from tsir.printer import print_func, rebuild


def kernel() -> tsir.PrimFunc:
    with T.prim_func("rt") as f:
        X = T.param("X", (64,), "float32")
        I = T.param("I", (64,), "int32")  # noqa: E741
        H = T.param("H", (64,), "float16")
        with T.Kernel(1, threads=64):
            tx = T.get_thread_binding()
            v = T.alloc_var("float32")
            v[0] = T.warp_reduce_sum(X[tx]) + T.shfl_xor(X[tx], 3) + T.__exp(X[tx]) + T.erf(X[tx])
            I[tx] = T.reinterpret("int32", v[0])
            old = T.atomic_max(X[0], v[0], memory_order="acquire", return_prev=True)
            T.atomic_addx2(H[tx * 2 % 64], H[0])
            T.print(old, msg="old")
            T.print(X)
            T.import_source("__device__ void f(float* p) {}")
            T.call_extern("handle", "f", T.address_of(X[0]))
            F = T.alloc_fragment((64,), "float32")
            T.copy(X, F)
            R = T.alloc_fragment((1,), "float32")
            T.reduce_max(F, R, dim=0, clear=False)
            RI = T.alloc_fragment((1,), "int32")
            FI = T.alloc_fragment((64,), "int32")
            T.copy(I, FI)
            T.reduce_bitxor(FI, RI, dim=0)
            T.atomic_min(X[0:64], F, memory_order="seq_cst")
    return f.func


def test_the_new_ops_print_and_rebuild() -> None:
    func = kernel()
    text = print_func(func)
    for form in (
        "T.warp_reduce_sum(",
        "T.__exp(",
        "T.erf(",
        "T.reduce_bitxor(",
        'memory_order="seq_cst"',
    ):
        assert form in text, form
    tsir.assert_structural_equal(rebuild(text), func)
