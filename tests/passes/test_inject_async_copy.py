"""InjectAsyncCopy: in the `async_copy` regions of pipelined copies, 16-byte global->shared moves
become cp.async (zero-filling when guarded), everything else stays (Before/Expected)."""

from __future__ import annotations

from tsir.passes import PassContext, get

import tsir
from tsir import T

CTX = PassContext(tsir.Target.parse("sm_80"))


def test_sixteen_byte_moves_in_async_regions_become_cp_async() -> None:
    """An unguarded 16-byte move is cp.async with `true`; one whose else-branch zero-fills passes
    its condition as the source size flag (cp.async zero-fills then); an 8-byte move, and any
    move outside the region, stay synchronous."""
    with T.prim_func("f") as before:
        A = T.param("A", (64, 32), "float16")
        with T.Kernel(1, threads=64):
            tx = T.get_thread_binding(0)
            S = T.alloc_shared((64, 32), "float16")
            with T.attr("async_copy", 1):
                S[tx, T.Ramp(0, 1, 8)] = A[tx, T.Ramp(0, 1, 8)]
                with T.If(tx < 40):
                    S[tx, T.Ramp(8, 1, 8)] = A[tx, T.Ramp(8, 1, 8)]
                with T.Else():
                    S[tx, T.Ramp(8, 1, 8)] = T.Broadcast(T.float16(0), 8)
                S[tx, T.Ramp(16, 1, 4)] = A[tx, T.Ramp(16, 1, 4)]
            S[tx, T.Ramp(24, 1, 8)] = A[tx, T.Ramp(24, 1, 8)]

    def cp_async(dst: tsir.PrimExpr, src: tsir.PrimExpr, valid: tsir.PrimExpr) -> None:
        dst_addr = T.call_intrin("handle", "address_of", dst)
        src_addr = T.call_intrin("handle", "address_of", src)
        T.evaluate(T.call_intrin("int32", "tsir.async_copy.cp_async_16", dst_addr, src_addr, valid))

    with T.prim_func("f") as expected:
        A = T.param("A", (64, 32), "float16")
        with T.Kernel(1, threads=64):
            tx = T.get_thread_binding(0)
            S = T.alloc_shared((64, 32), "float16")
            with T.attr("async_copy", 1):
                cp_async(S[tx, 0], A[tx, 0], T.bool(True))
                cp_async(S[tx, 8], A[tx, 8], tx < 40)
                S[tx, T.Ramp(16, 1, 4)] = A[tx, T.Ramp(16, 1, 4)]
            S[tx, T.Ramp(24, 1, 8)] = A[tx, T.Ramp(24, 1, 8)]

    out = get("InjectAsyncCopy")(before.func, CTX)
    tsir.assert_structural_equal(out, expected.func)
