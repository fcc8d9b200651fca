"""SplitHostDevice: kernels get the tensors they touch, then the dynamic dims and scalars they read."""

from __future__ import annotations

import tsir
from tsir import T
from tsir.passes import PassContext, get
from tsir.stmt import KernelCall
from tsir.visitor import collect


def test_kernel_parameters_in_declaration_order() -> None:
    with T.prim_func("f") as f:
        n = T.dynamic("n")
        A = T.param("A", (n,), "float32")
        B = T.param("B", (64,), "float32")
        C = T.param("C", (n,), "float32")
        alpha = T.scalar("alpha", "float32")
        with T.Kernel(T.ceildiv(n, 64), threads=64) as bx:
            for i in T.Parallel(64):
                C[bx * 64 + i] = A[bx * 64 + i] * alpha
        with T.Kernel(1, threads=64):
            for i in T.Parallel(64):
                B[i] = 0.0
    ctx = PassContext(tsir.Target.parse("sm_90a"))
    m = get("SplitHostDevice")(get("LowerTileOp")(f.func, ctx), ctx)
    assert isinstance(m, tsir.Module)
    assert [k.name for k in m.kernels] == ["f_kernel", "f_kernel_1"]
    assert [p.name for p in m.kernels[0].params] == ["A", "C", "n", "alpha"]
    assert [p.name for p in m.kernels[1].params] == ["B"]
    launches = collect(m.host, KernelCall)
    assert [x.kernel for x in launches] == ["f_kernel", "f_kernel_1"]
    assert m.host.params == f.func.params
