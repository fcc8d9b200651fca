"""ThreadSync: barriers between conflicting shared accesses of different threads, and no more."""

from __future__ import annotations

import pytest
from tsir.passes import PassContext, get

import tsir
from tsir import T
from tsir.structural import assert_structural_equal

CTX = PassContext(tsir.Target.parse("sm_90a"))


def run(func: tsir.PrimFunc) -> tsir.PrimFunc:
    return get("ThreadSync")(func, CTX)


def test_write_then_read_by_other_threads_gets_one_barrier() -> None:
    with T.prim_func("f") as before:
        A = T.param("A", (128,), "float32")
        with T.Kernel(1, threads=128):
            tx = T.get_thread_binding(0)
            S = T.alloc_shared((128,), "float32")
            S[tx] = A[tx]
            A[tx] = S[127 - tx]

    with T.prim_func("f") as expected:
        A = T.param("A", (128,), "float32")
        with T.Kernel(1, threads=128):
            tx = T.get_thread_binding(0)
            S = T.alloc_shared((128,), "float32")
            S[tx] = A[tx]
            T.sync_threads()
            A[tx] = S[127 - tx]

    assert_structural_equal(run(before.func), expected.func)


def test_loop_carried_reuse_gets_a_barrier_at_the_loop_head() -> None:
    """Iteration k+1 overwrites the tile iteration k read: write-after-read across iterations."""
    with T.prim_func("f") as before:
        A = T.param("A", (8, 128), "float32")
        B = T.param("B", (8, 128), "float32")
        with T.Kernel(1, threads=128):
            tx = T.get_thread_binding(0)
            S = T.alloc_shared((128,), "float32")
            for k in T.serial(8):
                S[tx] = A[k, tx]
                B[k, tx] = S[127 - tx]

    with T.prim_func("f") as expected:
        A = T.param("A", (8, 128), "float32")
        B = T.param("B", (8, 128), "float32")
        with T.Kernel(1, threads=128):
            tx = T.get_thread_binding(0)
            S = T.alloc_shared((128,), "float32")
            for k in T.serial(8):
                T.sync_threads()
                S[tx] = A[k, tx]
                T.sync_threads()
                B[k, tx] = S[127 - tx]

    assert_structural_equal(run(before.func), expected.func)


def test_no_barrier_without_a_conflict() -> None:
    """Writes of two buffers, reads of a third, and reads after reads need no barrier."""
    with T.prim_func("f") as before:
        A = T.param("A", (128,), "float32")
        with T.Kernel(1, threads=128):
            tx = T.get_thread_binding(0)
            S = T.alloc_shared((128,), "float32")
            R = T.alloc_shared((128,), "float32")
            Q = T.alloc_shared((128,), "float32")
            S[tx] = A[tx]
            R[tx] = A[tx]
            A[tx] = Q[tx] + Q[127 - tx]
    assert_structural_equal(run(before.func), before.func)


def test_an_existing_barrier_is_reused() -> None:
    with T.prim_func("f") as before:
        A = T.param("A", (128,), "float32")
        with T.Kernel(1, threads=128):
            tx = T.get_thread_binding(0)
            S = T.alloc_shared((128,), "float32")
            S[tx] = A[tx]
            T.sync_threads()
            A[tx] = S[127 - tx]
    assert_structural_equal(run(before.func), before.func)


def test_conflict_before_a_loop_is_resolved_once_outside_it() -> None:
    with T.prim_func("f") as before:
        A = T.param("A", (4, 128), "float32")
        with T.Kernel(1, threads=128):
            tx = T.get_thread_binding(0)
            S = T.alloc_shared((128,), "float32")
            S[tx] = A[0, tx]
            for k in T.serial(4):
                A[k, tx] = S[127 - tx]

    with T.prim_func("f") as expected:
        A = T.param("A", (4, 128), "float32")
        with T.Kernel(1, threads=128):
            tx = T.get_thread_binding(0)
            S = T.alloc_shared((128,), "float32")
            S[tx] = A[0, tx]
            T.sync_threads()
            for k in T.serial(4):
                A[k, tx] = S[127 - tx]

    assert_structural_equal(run(before.func), expected.func)


def test_no_barrier_inside_a_thread_dependent_if() -> None:
    """A barrier inside `if tx < 64` would deadlock: it goes before the `if`."""
    with T.prim_func("f") as before:
        A = T.param("A", (128,), "float32")
        with T.Kernel(1, threads=128):
            tx = T.get_thread_binding(0)
            S = T.alloc_shared((128,), "float32")
            S[tx] = A[tx]
            with T.If(tx < 64):
                A[tx] = S[tx + 64]

    with T.prim_func("f") as expected:
        A = T.param("A", (128,), "float32")
        with T.Kernel(1, threads=128):
            tx = T.get_thread_binding(0)
            S = T.alloc_shared((128,), "float32")
            S[tx] = A[tx]
            T.sync_threads()
            with T.If(tx < 64):
                A[tx] = S[tx + 64]

    assert_structural_equal(run(before.func), expected.func)


GEMM = "tsir.gemm_sm80.gemm_ss<16, 16, 16, 1, 1, false, false, 0, 16, 0, 16>"


def _gemm(A_s: tsir.Buffer, B_s: tsir.Buffer, C: tsir.Buffer) -> None:
    T.evaluate(
        T.call_intrin(
            "int32",
            GEMM,
            T.call_intrin("handle", "address_of", A_s[0]),
            T.call_intrin("handle", "address_of", B_s[0]),
            T.call_intrin("handle", "address_of", C[0]),
        )
    )


def test_a_device_call_reading_shared_memory_gets_barriers() -> None:
    """Issue 9: the operand tiles handed to gemm_ss are READ by it (declared in
    tsir.intrin.DEVICE_FUNCTIONS), so the copies into them are ordered before it (RAW) and the next
    iteration's copies after it (WAR). Before, `&A_s[0]` counted as a write only."""
    with T.prim_func("f") as before:
        A = T.param("A", (4, 256), "float16")
        with T.Kernel(1, threads=32):
            tx = T.get_thread_binding(0)
            A_s = T.alloc_shared((256,), "float16")
            B_s = T.alloc_shared((256,), "float16")
            C = T.alloc_local((8,), "float32")
            for k in T.serial(4):
                for i in T.unroll(8):
                    A_s[i * 32 + tx] = A[k, i * 32 + tx]
                    B_s[i * 32 + tx] = A[k, i * 32 + tx]
                _gemm(A_s, B_s, C)

    with T.prim_func("f") as expected:
        A = T.param("A", (4, 256), "float16")
        with T.Kernel(1, threads=32):
            tx = T.get_thread_binding(0)
            A_s = T.alloc_shared((256,), "float16")
            B_s = T.alloc_shared((256,), "float16")
            C = T.alloc_local((8,), "float32")
            for k in T.serial(4):
                T.sync_threads()
                for i in T.unroll(8):  # each element is one thread's: no barrier between
                    A_s[i * 32 + tx] = A[k, i * 32 + tx]
                    B_s[i * 32 + tx] = A[k, i * 32 + tx]
                T.sync_threads()
                _gemm(A_s, B_s, C)

    assert_structural_equal(run(before.func), expected.func)


def test_one_tile_ops_lowering_is_one_unit() -> None:
    """Inside one op's lowering (a `tile_op` marker), the unrolled trips write disjoint elements
    from one thread each: no barrier between them; between two ops writing one tile (a fill,
    then a copy with another thread mapping), a write-after-write barrier."""
    with T.prim_func("f") as before:
        A = T.param("A", (256,), "float32")
        with T.Kernel(1, threads=32):
            tx = T.get_thread_binding(0)
            S = T.alloc_shared((256,), "float32")
            with T.attr("tile_op", "tl.Fill"):
                for i in T.unroll(8):
                    S[i * 32 + tx] = 0.0
            with T.attr("tile_op", "tl.Copy"):
                for i in T.unroll(4):
                    S[tx * 4 + i] = A[tx * 4 + i]

    with T.prim_func("f") as expected:
        A = T.param("A", (256,), "float32")
        with T.Kernel(1, threads=32):
            tx = T.get_thread_binding(0)
            S = T.alloc_shared((256,), "float32")
            for i in T.unroll(8):
                S[i * 32 + tx] = 0.0
            T.sync_threads()
            for i in T.unroll(4):
                S[tx * 4 + i] = A[tx * 4 + i]

    assert_structural_equal(run(before.func), expected.func)


def test_shared_atomics_after_plain_initialisation_get_a_barrier() -> None:
    """Issue 9 (a shared histogram): atomics on a tile other threads initialised need a barrier;
    atomics after atomics do not; a read of the result after them does."""
    with T.prim_func("f") as before:
        X = T.param("X", (256,), "int32")
        H = T.param("H", (32,), "int32")
        with T.Kernel(1, threads=32):
            tx = T.get_thread_binding(0)
            hist = T.alloc_shared((32,), "int32")
            hist[tx] = 0
            for i in T.serial(8):
                T.evaluate(
                    T.call_intrin(
                        "int32",
                        "atomic_add",
                        T.call_intrin("handle", "address_of", hist[X[i * 32 + tx] % 32]),
                        1,
                    )
                )
            H[tx] = hist[31 - tx]

    with T.prim_func("f") as expected:
        X = T.param("X", (256,), "int32")
        H = T.param("H", (32,), "int32")
        with T.Kernel(1, threads=32):
            tx = T.get_thread_binding(0)
            hist = T.alloc_shared((32,), "int32")
            hist[tx] = 0
            T.sync_threads()
            for i in T.serial(8):
                T.evaluate(
                    T.call_intrin(
                        "int32",
                        "atomic_add",
                        T.call_intrin("handle", "address_of", hist[X[i * 32 + tx] % 32]),
                        1,
                    )
                )
            T.sync_threads()
            H[tx] = hist[31 - tx]

    assert_structural_equal(run(before.func), expected.func)


def test_no_barrier_inside_a_loop_whose_bounds_differ_across_threads() -> None:
    """A barrier inside `for i in range(tx)` would be reached a different number of times by
    each thread: the conflict is resolved before the loop."""
    with T.prim_func("f") as before:
        A = T.param("A", (32,), "float32")
        with T.Kernel(1, threads=32):
            tx = T.get_thread_binding(0)
            S = T.alloc_shared((32,), "float32")
            S[tx] = A[tx]
            for i in T.serial(tx):
                A[tx] = A[tx] + S[i]

    with T.prim_func("f") as expected:
        A = T.param("A", (32,), "float32")
        with T.Kernel(1, threads=32):
            tx = T.get_thread_binding(0)
            S = T.alloc_shared((32,), "float32")
            S[tx] = A[tx]
            T.sync_threads()
            for i in T.serial(tx):
                A[tx] = A[tx] + S[i]

    assert_structural_equal(run(before.func), expected.func)


def test_a_device_call_without_declared_effects_is_refused() -> None:
    with T.prim_func("f") as before:
        with T.Kernel(1, threads=32):
            S = T.alloc_shared((32,), "float32")
            T.evaluate(
                T.call_intrin(
                    "int32", "tsir.mystery.fn", T.call_intrin("handle", "address_of", S[0])
                )
            )
    with pytest.raises(tsir.UnsupportedError, match="tsir.mystery.fn.*declares no memory effects"):
        run(before.func)


def test_tile_ops_in_a_thread_range_sync_on_the_ranges_named_barrier() -> None:
    """Between two ops in `if tx < 64` (threads [0, 64), barrier id 1), the barrier is
    `bar.sync 1, 64`: a __syncthreads there would wait for threads that never come."""
    with T.prim_func("f") as before:
        A = T.param("A", (64,), "float32")
        with T.Kernel(1, threads=128):
            tx = T.get_thread_binding(0)
            S = T.alloc_shared((64,), "float32")
            with T.If(tx < 64):
                with T.attr("thread_range", (0, 64, 1)):
                    with T.attr("tile_op", "tl.Copy"):
                        S[tx] = A[tx]
                    with T.attr("tile_op", "parallel"):
                        A[tx] = S[63 - tx]

    with T.prim_func("f") as expected:
        A = T.param("A", (64,), "float32")
        with T.Kernel(1, threads=128):
            tx = T.get_thread_binding(0)
            S = T.alloc_shared((64,), "float32")
            with T.If(tx < 64):
                S[tx] = A[tx]
                T.evaluate(T.call_intrin("int32", "tsir.sync.named_barrier", 1, 64))
                A[tx] = S[63 - tx]

    assert_structural_equal(run(before.func), expected.func)


def test_a_pipeline_inside_an_outer_loop_waits_for_the_previous_iterations_reads() -> None:
    """Found by the random-program generator: the prologue of a pipelined K loop nested in an outer
    loop overwrote stage 0 while other threads' gemm of the previous outer iteration still read
    the last stage. The pipeline's entry now orders its staged tiles after earlier accesses.
    Oracle: the interpreter's race detector at every stage."""
    import numpy as np

    with T.prim_func("outer") as f:
        A = T.param("A", (64, 96), "float16")
        B = T.param("B", (96, 64), "float16")
        C = T.param("C", (64, 64), "float32")
        with T.Kernel(1, 2, threads=128) as (bx, by):
            for nb in T.serial(2):
                A_s = T.alloc_shared((32, 32), "float16")
                B_s = T.alloc_shared((32, 32), "float16")
                C_f = T.alloc_fragment((32, 32), "float32")
                T.clear(C_f)
                # 3 iterations on 2 stages: the last one reads stage 0, which the next
                # outer iteration's prologue overwrites.
                for ko in T.Pipelined(3, num_stages=2):
                    T.copy(A[by * 32, ko * 32], A_s)
                    T.copy(B[ko * 32, nb * 32], B_s)
                    T.gemm(A_s, B_s, C_f)
                T.copy(C_f, C[by * 32, nb * 32])
    rng = np.random.default_rng(4)
    a = rng.standard_normal((64, 96)).astype(np.float16)
    b = rng.standard_normal((96, 64)).astype(np.float16)
    report = tsir.interpret.check_stages(
        f.func, [a, b, np.zeros((64, 64), np.float32)], target="sm_80"
    )
    report.raise_for_failure()
    np.testing.assert_allclose(report.reference[2], a.astype(np.float64) @ b, rtol=2e-2, atol=2e-1)


def _wgmma_reading(S: object, acc: object) -> None:
    desc = T.call_intrin(
        "uint64",
        "tsir.wgmma.wgmma_desc",
        T.call_intrin(
            "uint32", "tsir.mbarrier.shared_u32", T.call_intrin("handle", "address_of", S[0])
        ),  # type: ignore[index]
        16,
        1024,
        1,
    )
    T.evaluate(
        T.call_intrin(
            "int32",
            "tsir.wgmma.wgmma_ss<tsir::kWgmmaF16, 64, 0, 0>",
            T.call_intrin("handle", "address_of", acc[0]),
            desc,
            desc,
            1,  # type: ignore[index]
        )
    )


def test_ordinary_writes_read_by_wgmma_get_a_proxy_fence_before_the_barrier() -> None:
    """wgmma reads shared memory through the async proxy: each writer fences its generic writes
    for it before the barrier that orders them (PTX ISA, "Memory consistency: proxies")."""
    with T.prim_func("f") as before:
        A = T.param("A", (128,), "float16")
        with T.Kernel(1, threads=128):
            tx = T.get_thread_binding(0)
            S = T.alloc_shared((8192,), "float16")
            acc = T.alloc_local((32,), "float32")
            S[tx] = A[tx]
            _wgmma_reading(S, acc)

    with T.prim_func("f") as expected:
        A = T.param("A", (128,), "float16")
        with T.Kernel(1, threads=128):
            tx = T.get_thread_binding(0)
            S = T.alloc_shared((8192,), "float16")
            acc = T.alloc_local((32,), "float32")
            S[tx] = A[tx]
            T.evaluate(T.call_intrin("int32", "tsir.mbarrier.fence_proxy_async_shared"))
            T.sync_threads()
            _wgmma_reading(S, acc)

    assert_structural_equal(run(before.func), expected.func)


def test_a_barrier_already_there_gets_the_proxy_fence_its_async_readers_need() -> None:
    """Found by the fuzzer: the program's own `T.sync_threads()` between ordinary writes and the
    wgmma that reads them needs each writer's proxy fence before it."""
    with T.prim_func("f") as before:
        A = T.param("A", (128,), "float16")
        with T.Kernel(1, threads=128):
            tx = T.get_thread_binding(0)
            S = T.alloc_shared((8192,), "float16")
            acc = T.alloc_local((32,), "float32")
            S[tx] = A[tx]
            T.sync_threads()
            _wgmma_reading(S, acc)

    with T.prim_func("f") as expected:
        A = T.param("A", (128,), "float16")
        with T.Kernel(1, threads=128):
            tx = T.get_thread_binding(0)
            S = T.alloc_shared((8192,), "float16")
            acc = T.alloc_local((32,), "float32")
            S[tx] = A[tx]
            T.evaluate(T.call_intrin("int32", "tsir.mbarrier.fence_proxy_async_shared"))
            T.sync_threads()
            _wgmma_reading(S, acc)

    assert_structural_equal(run(before.func), expected.func)


def test_a_barrier_placed_for_one_tile_fences_the_writes_of_another_that_wgmma_reads() -> None:
    """A helper's reproducer: B_s is written, then the barrier for A_s -> A_f (a generic read)
    also orders B_s's writes before wgmma_rs reads B_s through the async proxy, so its writers
    must fence first; the fence decision looked only at the accesses that placed the barrier."""
    import numpy as np

    with T.prim_func("rs") as f:
        A = T.param("A", (64, 32), "float16")
        B = T.param("B", (32, 64), "float16")
        C = T.param("C", (64, 64), "float16")
        with T.Kernel(1, threads=128):
            A_s = T.alloc_shared((64, 32), "float16")
            B_s = T.alloc_shared((32, 64), "float16")
            A_f = T.alloc_fragment((64, 32), "float16")
            C_f = T.alloc_fragment((64, 64), "float32")
            T.copy(A, A_s)
            T.copy(B, B_s)
            T.copy(A_s, A_f)
            T.gemm(A_f, B_s, C_f, clear_accum=True)
            T.copy(C_f, C)
    rng = np.random.default_rng(0)
    x = [
        rng.standard_normal((64, 32)).astype(np.float16),
        rng.standard_normal((32, 64)).astype(np.float16),
        np.zeros((64, 64), np.float16),
    ]
    lowered = tsir.lower(f.func, "sm_90a")
    tsir.interpret.check_stages(lowered, x, target="sm_90a").raise_for_failure()
    assert "fence_proxy_async_shared" in str(lowered["ThreadSync"])
