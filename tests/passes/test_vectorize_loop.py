"""VectorizeLoop: VECTORIZED loops become 16-byte vector accesses where the analyzer proves them
contiguous and aligned, scalar accesses otherwise (Before/Expected, CONVENTIONS 16)."""

from __future__ import annotations

from tsir.passes import PassContext, get

import tsir
from tsir import T

CTX = PassContext(tsir.Target.parse("sm_90a"))


def run(func: tsir.PrimFunc) -> tsir.PrimFunc:
    return get("VectorizeLoop")(func, CTX)


def test_aligned_operands_load_and_store_whole_vectors() -> None:
    """Contiguous, 16-byte aligned operands: one vector load into registers, the arithmetic per
    lane on the registers, one vector store."""
    with T.prim_func("f") as before:
        A = T.param("A", (1024,), "float32")
        B = T.param("B", (1024,), "float32")
        with T.Kernel(4, threads=64) as bx:
            tx = T.get_thread_binding(0)
            for v in T.vectorized(4):
                B[bx * 256 + tx * 4 + v] = A[bx * 256 + tx * 4 + v] * 2.0

    with T.prim_func("f") as expected:
        A = T.param("A", (1024,), "float32")
        B = T.param("B", (1024,), "float32")
        with T.Kernel(4, threads=64) as bx:
            tx = T.get_thread_binding(0)
            A_v = T.alloc_local((4,), "float32")
            B_v = T.alloc_local((4,), "float32")
            A_v[T.Ramp(0, 1, 4)] = A[T.Ramp(bx * 256 + tx * 4, 1, 4)]
            for v in T.unroll(4):
                B_v[v] = A_v[v] * 2.0
            B[T.Ramp(bx * 256 + tx * 4, 1, 4)] = B_v[T.Ramp(0, 1, 4)]

    tsir.assert_structural_equal(run(before.func), expected.func)


def test_a_lane_guard_keeps_whole_vectors_in_bounds_and_the_rest_scalar() -> None:
    """A pure copy under a guard that depends on the lane: the whole vector when its last lane is
    in bounds, lane by lane otherwise (the ragged end of a dynamic length)."""
    with T.prim_func("g") as before:
        n = T.dynamic("n")
        A = T.param("A", (n,), "float32")
        B = T.param("B", (n,), "float32")
        with T.Kernel(T.ceildiv(n, 256), threads=64) as bx:
            tx = T.get_thread_binding(0)
            for v in T.vectorized(4):
                with T.If(bx * 256 + tx * 4 + v < n):
                    B[bx * 256 + tx * 4 + v] = A[bx * 256 + tx * 4 + v]

    with T.prim_func("g") as expected:
        n = T.dynamic("n")
        A = T.param("A", (n,), "float32")
        B = T.param("B", (n,), "float32")
        with T.Kernel(T.ceildiv(n, 256), threads=64) as bx:
            tx = T.get_thread_binding(0)
            with T.If(bx * 256 + tx * 4 + 3 < n):
                B[T.Ramp(bx * 256 + tx * 4, 1, 4)] = A[T.Ramp(bx * 256 + tx * 4, 1, 4)]
            with T.Else():
                for v in T.unroll(4):
                    with T.If(bx * 256 + tx * 4 + v < n):
                        B[bx * 256 + tx * 4 + v] = A[bx * 256 + tx * 4 + v]

    tsir.assert_structural_equal(run(before.func), expected.func)


def test_an_operand_not_provably_aligned_stays_scalar() -> None:
    """`A[... + 1]` is contiguous but 4 bytes off a 16-byte boundary: its lanes load one by one
    into the registers; the aligned destination is still stored as one vector."""
    with T.prim_func("h") as before:
        A = T.param("A", (1025,), "float32")
        B = T.param("B", (1024,), "float32")
        with T.Kernel(4, threads=64) as bx:
            tx = T.get_thread_binding(0)
            for v in T.vectorized(4):
                B[bx * 256 + tx * 4 + v] = A[bx * 256 + tx * 4 + v + 1]

    with T.prim_func("h") as expected:
        A = T.param("A", (1025,), "float32")
        B = T.param("B", (1024,), "float32")
        with T.Kernel(4, threads=64) as bx:
            tx = T.get_thread_binding(0)
            B_v = T.alloc_local((4,), "float32")
            for v in T.unroll(4):
                B_v[v] = A[bx * 256 + tx * 4 + v + 1]
            B[T.Ramp(bx * 256 + tx * 4, 1, 4)] = B_v[T.Ramp(0, 1, 4)]

    tsir.assert_structural_equal(run(before.func), expected.func)


def test_a_body_of_several_stores_becomes_one_vector_loop_per_store() -> None:
    """TileLang's gemv loads two operands in one T.vectorized loop: each store is vectorized on
    its own (every lane touches only its own elements of what the body writes)."""
    with T.prim_func("two") as before:
        A = T.param("A", (1024,), "float16")
        B = T.param("B", (1024,), "float16")
        with T.Kernel(4, threads=32) as bx:
            tx = T.get_thread_binding(0)
            a = T.alloc_local((8,), "float16")
            b = T.alloc_local((8,), "float16")
            for v in T.vectorized(8):
                a[v] = A[bx * 256 + tx * 8 + v]
                b[v] = B[bx * 256 + tx * 8 + v]

    with T.prim_func("two") as expected:
        A = T.param("A", (1024,), "float16")
        B = T.param("B", (1024,), "float16")
        with T.Kernel(4, threads=32) as bx:
            tx = T.get_thread_binding(0)
            a = T.alloc_local((8,), "float16")
            b = T.alloc_local((8,), "float16")
            with T.scope():
                A_v = T.alloc_local((8,), "float16")
                A_v[T.Ramp(0, 1, 8)] = A[T.Ramp(bx * 256 + tx * 8, 1, 8)]
                for v in T.unroll(8):
                    a[v] = A_v[v]
            with T.scope():
                B_v = T.alloc_local((8,), "float16")
                B_v[T.Ramp(0, 1, 8)] = B[T.Ramp(bx * 256 + tx * 8, 1, 8)]
                for v in T.unroll(8):
                    b[v] = B_v[v]

    tsir.assert_structural_equal(run(before.func), expected.func)


def test_a_body_whose_lanes_share_an_element_stays_one_scalar_loop() -> None:
    """Lane v reads `a[v + 1]`, which lane v + 1 writes: running the statements one after the
    other over all lanes would change what is read, so the loop is only unrolled."""
    with T.prim_func("dep") as before:
        A = T.param("A", (1024,), "float32")
        with T.Kernel(4, threads=32) as bx:
            tx = T.get_thread_binding(0)
            a = T.alloc_local((5,), "float32")
            for v in T.vectorized(4):
                a[v] = A[bx * 256 + tx * 4 + v]
                A[bx * 256 + tx * 4 + v] = a[v + 1]

    with T.prim_func("dep") as expected:
        A = T.param("A", (1024,), "float32")
        with T.Kernel(4, threads=32) as bx:
            tx = T.get_thread_binding(0)
            a = T.alloc_local((5,), "float32")
            for v in T.unroll(4):
                a[v] = A[bx * 256 + tx * 4 + v]
                A[bx * 256 + tx * 4 + v] = a[v + 1]

    tsir.assert_structural_equal(run(before.func), expected.func)


def test_gemv_tile_loads_are_vectors_and_match_the_interpreter() -> None:
    """The split-k gemv of TileLang's examples (8 elements per thread per step): the lowered
    kernel loads its operands as 16-byte vectors and computes what the tile level computes."""
    import sys
    from pathlib import Path

    import numpy as np

    from tsir.expr import BufferLoad, Ramp
    from tsir.interpret import check_stages
    from tsir.visitor import collect

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "compat"))
    import tilelang_programs as P

    func = P.splitk_gemv.fn(64, 128, 4, 64, 8)  # the @T.prim_func under @tilelang.jit
    rng = np.random.default_rng(0)
    a = rng.standard_normal(128).astype(np.float16)
    b = rng.standard_normal((64, 128)).astype(np.float16)
    report = check_stages(func, [a, b, np.zeros(64, np.float16)], target="sm_80")
    assert report.ok, str(report)
    final = tsir.lower(func, "sm_80")["VectorizeLoop"]
    vector_loads = [x for x in collect(final.body, BufferLoad) if isinstance(x.indices[-1], Ramp)]
    assert {x.buffer.name for x in vector_loads} >= {"A", "B"}


def test_a_lane_condition_that_is_not_convex_keeps_the_per_lane_loop() -> None:
    """Found by the random-program generator: `with T.If(j != 1)` in a vectorised nest holds at the
    first and last lane of the vector [0, 4) but not at lane 1, so the all-lanes fast path may not
    be decided from the ends. Oracle: the interpreter at every stage."""
    import numpy as np

    with T.prim_func("skip_one") as f:
        X = T.param("X", (1, 128), "float32")
        Y = T.param("Y", (1, 128), "float32")
        with T.Kernel(1, threads=32):
            s = T.alloc_shared((1, 128), "float32")
            x = T.alloc_fragment((1, 128), "float32")
            T.copy(X[0, 0], s)
            T.copy(s, x)
            for i, j in T.Parallel(1, 128):
                with T.If(j != 1):
                    x[i, j] = s[i, j] * 2.0
            T.copy(x, Y[0, 0])
    a = np.arange(128, dtype=np.float32)[None]
    report = tsir.interpret.check_stages(
        f.func, [a, np.zeros((1, 128), np.float32)], target="sm_80"
    )
    report.raise_for_failure()
    np.testing.assert_array_equal(report.reference[1], np.where(np.arange(128) != 1, 2 * a, a))


def test_a_lane_guard_goes_with_each_store_of_a_split_body() -> None:
    """The ragged end of a dynamic length around two stores: each store's loop keeps the guard
    (whole vectors where the last lane is in, lane by lane otherwise); checked against the
    interpreter at every stage."""
    import numpy as np

    from tsir.interpret import check_stages

    with T.prim_func("tail2") as f:
        n = T.dynamic("n")
        A = T.param("A", (n,), "float32")
        B = T.param("B", (n,), "float32")
        C = T.param("C", (n,), "float32")
        with T.Kernel(T.ceildiv(n, 256), threads=64) as bx:
            tx = T.get_thread_binding(0)
            for v in T.vectorized(4):
                with T.If(bx * 256 + tx * 4 + v < n):
                    B[bx * 256 + tx * 4 + v] = A[bx * 256 + tx * 4 + v]
                    C[bx * 256 + tx * 4 + v] = A[bx * 256 + tx * 4 + v] * 2.0
    a = np.random.default_rng(0).standard_normal(301).astype(np.float32)
    report = check_stages(
        f.func, [a, np.zeros(301, np.float32), np.zeros(301, np.float32)], target="sm_80"
    )
    assert report.ok, str(report)
    np.testing.assert_array_equal(report.reference[1], a)
    np.testing.assert_array_equal(report.reference[2], 2 * a)
    out = run(f.func)
    from tsir.expr import Ramp
    from tsir.stmt import BufferStore
    from tsir.visitor import collect

    assert {
        s.buffer.name for s in collect(out.body, BufferStore) if isinstance(s.indices[-1], Ramp)
    } >= {"B", "C"}
