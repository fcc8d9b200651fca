"""SplitHostDevice: kernels get the tensors they touch, then the dynamic dims and scalars they read."""

from __future__ import annotations

from tsir.passes import PassContext, get

import tsir
from tsir import T
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


def test_tensor_maps_become_kernel_parameters_bound_on_the_host() -> None:
    """Each distinct `tma_descriptor(...)` of a kernel (two uses of one map are one) becomes a
    handle parameter after the kernel's own; the host binds it to the descriptor around the
    launch; a tensor read only through its map is not passed as a pointer."""
    with T.prim_func("f") as f:
        A = T.param("A", (64, 64), "float16")
        C = T.param("C", (64,), "float32")
        with T.Kernel(1, threads=32):
            tmap = T.call_intrin(
                "handle",
                "tma_descriptor",
                T.call_intrin("handle", "address_of", A[0, 0]),
                64,
                64,
                128,
            )
            T.evaluate(T.call_intrin("int32", "tsir.tma.tma_prefetch_descriptor", tmap))
            T.evaluate(T.call_intrin("int32", "tsir.tma.tma_prefetch_descriptor", tmap))
            C[0] = 1.0
    ctx = PassContext(tsir.Target.parse("sm_90a"))
    m = get("SplitHostDevice")(f.func, ctx)
    (kernel,) = m.kernels
    assert [p.name for p in kernel.params] == ["C", "A_tmap"]
    tmap_param = kernel.params[1]
    calls = [
        c for c in collect(kernel.body, tsir.Call) if c.op == "tsir.tma.tma_prefetch_descriptor"
    ]
    assert len(calls) == 2 and all(c.args[0] is tmap_param for c in calls)
    (let,) = collect(m.host, tsir.LetStmt)
    assert let.var is tmap_param and let.value.op == "tma_descriptor"
    (launch,) = collect(m.host, KernelCall)
    assert launch.args == (f.func.params[1], tmap_param)
