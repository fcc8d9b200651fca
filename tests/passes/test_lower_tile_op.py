"""LowerTileOp: T.Parallel and T.copy/T.fill become thread-level loops with vector lanes innermost."""

from __future__ import annotations

import pytest
from tsir.passes import PassContext, get

import tsir
from tsir import T
from tsir.structural import assert_structural_equal

CTX = PassContext(tsir.Target.parse("sm_90a"))


def run(func: tsir.PrimFunc) -> tsir.PrimFunc:
    return get("LowerTileOp")(func, CTX)


def test_parallel_nest_is_spread_over_threads_with_vector_lanes() -> None:
    """A 8x256 float32 nest on 256 threads: 2 trips per thread, 4 contiguous lanes each."""
    with T.prim_func("f") as before:
        X = T.param("X", (64, 1024), "float32")
        with T.Kernel(4, 8, threads=256) as (bx, by):
            for i, j in T.Parallel(8, 256):
                X[by * 8 + i, bx * 256 + j] = 0.0

    with T.prim_func("f") as expected:
        X = T.param("X", (64, 1024), "float32")
        with T.Kernel(4, 8, threads=256) as (bx, by):
            tx = T.get_thread_binding(0)
            with T.attr("tile_op", "parallel"):
                for o in T.unroll(2):
                    for v in T.vectorized(4):
                        X[
                            by * 8 + (o * 256 + tx) // 64, bx * 256 + ((o * 256 + tx) % 64 * 4 + v)
                        ] = 0.0

    assert_structural_equal(run(before.func), expected.func)


def test_copy_to_shared_and_back() -> None:
    """T.copy global->shared of a 16x16 tile with 64 threads: one trip, 4 lanes per thread."""
    with T.prim_func("f") as before:
        A = T.param("A", (32, 32), "float32")
        with T.Kernel(2, 2, threads=64) as (bx, by):
            S = T.alloc_shared((16, 16), "float32")
            T.copy(A[by * 16, bx * 16], S)

    with T.prim_func("f") as expected:
        A = T.param("A", (32, 32), "float32")
        with T.Kernel(2, 2, threads=64) as (bx, by):
            tx = T.get_thread_binding(0)
            S = T.alloc_shared((16, 16), "float32")
            with T.attr("tile_op", "tl.Copy"):
                for v in T.vectorized(4):
                    S[tx // 4, tx % 4 * 4 + v] = A[by * 16 + tx // 4, bx * 16 + (tx % 4 * 4 + v)]

    assert_structural_equal(run(before.func), expected.func)


def test_copy_casts_between_dtypes() -> None:
    """A float16 -> float32 copy casts each element; 4 lanes of the wider dtype per thread."""
    with T.prim_func("f") as before:
        A = T.param("A", (128,), "float16")
        B = T.param("B", (128,), "float32")
        with T.Kernel(1, threads=32):
            T.copy(A, B)

    with T.prim_func("f") as expected:
        A = T.param("A", (128,), "float16")
        B = T.param("B", (128,), "float32")
        with T.Kernel(1, threads=32):
            tx = T.get_thread_binding(0)
            with T.attr("tile_op", "tl.Copy"):
                for v in T.vectorized(4):
                    B[tx * 4 + v] = T.cast(A[tx * 4 + v], "float32")

    assert_structural_equal(run(before.func), expected.func)


def test_fill_of_a_ragged_region_is_guarded() -> None:
    """100 elements on 64 threads: scalar lanes (4-wide would idle threads), second trip guarded."""
    with T.prim_func("f") as before:
        A = T.param("A", (100,), "float32")
        with T.Kernel(1, threads=64):
            T.fill(A, 1.0)

    with T.prim_func("f") as expected:
        A = T.param("A", (100,), "float32")
        with T.Kernel(1, threads=64):
            tx = T.get_thread_binding(0)
            with T.attr("tile_op", "tl.Fill"):
                for o in T.unroll(2):
                    with T.If(o * 64 + tx < 100):
                        A[o * 64 + tx] = 1.0

    assert_structural_equal(run(before.func), expected.func)


def test_fragment_copy_without_layout_inference_is_refused() -> None:
    """LowerTileOp alone (no LayoutInference before it) cannot place fragment registers."""
    with T.prim_func("f") as before:
        A = T.param("A", (128,), "float32")
        with T.Kernel(1, threads=128):
            F = T.alloc_fragment((128,), "float32")
            T.copy(A, F)
    with pytest.raises(tsir.UnsupportedError, match="LowerTileOp.*LayoutInference"):
        run(before.func)


def test_input_is_not_modified() -> None:
    with T.prim_func("f") as before:
        A = T.param("A", (128,), "float32")
        with T.Kernel(1, threads=128):
            T.fill(A, 1.0)
    text = str(before.func)
    run(before.func)
    assert str(before.func) == text


def _lower_with_layouts(func: tsir.PrimFunc) -> tsir.PrimFunc:
    return run(get("LayoutInference")(func, CTX))


def test_nest_writing_a_replicated_fragment_runs_in_every_thread() -> None:
    """Issue 9, layer norm with blk_m = 1: a fragment every thread holds whole (one value per row
    of a reduction's result) written in a T.Parallel must be computed by EVERY thread, since every
    thread later reads its own copy; only the store to global memory is done once (thread 0).
    Before the fix the nest was split over threads (`if tx < 4`), leaving the other threads'
    copies unwritten."""
    from tsir.layout import Fragment

    with T.prim_func("f") as before:
        X = T.param("X", (4,), "float32")
        Y = T.param("Y", (4,), "float32")
        with T.Kernel(1, threads=32):
            m = T.alloc_fragment((4,), "float32")
            T.annotate_layout({m: Fragment.fully_replicated((4,), 32)})
            for i in T.Parallel(4):
                m[i] = X[i] * 2.0
                Y[i] = m[i]

    with T.prim_func("f") as expected:
        X = T.param("X", (4,), "float32")
        Y = T.param("Y", (4,), "float32")
        with T.Kernel(1, threads=32):
            tx = T.get_thread_binding(0)
            m = T.alloc_local((4,), "float32")
            with T.attr("tile_op", "parallel"):
                for i in T.unroll(4):
                    m[i] = X[i] * 2.0
                    with T.If(tx == 0):
                        Y[i] = m[i]

    assert_structural_equal(_lower_with_layouts(before.func), expected.func)


def test_nest_only_reading_a_replicated_fragment_is_split_over_threads() -> None:
    """Reads of a whole-held fragment need no particular thread: the nest is spread as usual."""
    from tsir.layout import Fragment

    with T.prim_func("f") as before:
        Y = T.param("Y", (4,), "float32")
        with T.Kernel(1, threads=32):
            m = T.alloc_fragment((4,), "float32")
            T.annotate_layout({m: Fragment.fully_replicated((4,), 32)})
            T.fill(m, 1.0)
            for i in T.Parallel(4):
                Y[i] = m[3 - i]

    with T.prim_func("f") as expected:
        Y = T.param("Y", (4,), "float32")
        with T.Kernel(1, threads=32):
            tx = T.get_thread_binding(0)
            m = T.alloc_local((4,), "float32")
            with T.attr("tile_op", "tl.Fill"):
                for l in T.unroll(4):
                    m[l] = 1.0
            with T.attr("tile_op", "parallel"):
                with T.If(tx < 4):
                    Y[tx] = m[3 - tx]

    assert_structural_equal(_lower_with_layouts(before.func), expected.func)


def test_a_nest_mixing_reducer_updates_and_replicated_writes_is_refused() -> None:
    with T.prim_func("f") as before:
        X = T.param("X", (64,), "float32")
        with T.Kernel(1, threads=32):
            r = T.alloc_reducer((1,), "float32", op="sum")
            m = T.alloc_fragment((1,), "float32")
            from tsir.layout import Fragment

            T.annotate_layout({m: Fragment.fully_replicated((1,), 32)})
            for i in T.Parallel(64):
                r[0] = r[0] + X[i]
                m[0] = X[i]
    with pytest.raises(tsir.UnsupportedError, match="updates reducers and also writes"):
        _lower_with_layouts(before.func)


def test_tile_op_in_a_thread_range_is_spread_over_that_range() -> None:
    """Issue 9: `T.copy` under `T.If(tx >= 128)` in a 256-thread block runs in threads
    [128, 256) only, so it is spread over those 128 threads (index tx - 128), not all 256."""
    with T.prim_func("f") as before:
        A = T.param("A", (128,), "float32")
        B = T.param("B", (128,), "float32")
        with T.Kernel(1, threads=256):
            tx = T.get_thread_binding(0)
            with T.If(tx >= 128):
                T.copy(A, B)

    with T.prim_func("f") as expected:
        A = T.param("A", (128,), "float32")
        B = T.param("B", (128,), "float32")
        with T.Kernel(1, threads=256):
            tx = T.get_thread_binding(0)
            with T.If(tx >= 128):
                with T.attr("thread_range", (128, 256, 1)):
                    with T.attr("tile_op", "tl.Copy"):
                        B[tx - 128] = A[tx - 128]

    assert_structural_equal(run(before.func), expected.func)


def test_tile_op_under_a_block_uniform_if_uses_every_thread() -> None:
    with T.prim_func("f") as before:
        A = T.param("A", (128,), "float32")
        with T.Kernel(2, threads=128) as bx:
            with T.If(bx == 1):
                T.fill(A, 1.0)

    with T.prim_func("f") as expected:
        A = T.param("A", (128,), "float32")
        with T.Kernel(2, threads=128) as bx:
            tx = T.get_thread_binding(0)
            with T.If(bx == 1):
                with T.attr("tile_op", "tl.Fill"):
                    A[tx] = 1.0

    assert_structural_equal(run(before.func), expected.func)


@pytest.mark.parametrize(
    "cond, message",
    [
        ("tx % 2 == 0", "does not select a range"),
        ("A[tx] > 0.0", "does not select a range"),
    ],
)
def test_tile_op_under_a_condition_that_is_not_a_thread_range_is_refused(
    cond: str, message: str
) -> None:
    with T.prim_func("f") as before:
        A = T.param("A", (128,), "float32")
        with T.Kernel(1, threads=128):
            tx = T.get_thread_binding(0)  # noqa: F841  (read by the eval below)
            S = T.alloc_shared((128,), "float32")
            with T.If(eval(cond)):
                T.copy(A, S)
    with pytest.raises(tsir.UnsupportedError, match=message):
        run(before.func)


def test_fragment_op_in_a_thread_range_is_refused() -> None:
    """Fragments are laid out over all the block's threads; an op on one in a subset would leave
    the other threads' registers untouched."""
    with T.prim_func("f") as before:
        A = T.param("A", (64, 64), "float32")
        with T.Kernel(1, threads=128):
            tx = T.get_thread_binding(0)
            F = T.alloc_fragment((64, 64), "float32")
            with T.If(tx < 64):
                T.copy(A, F)
    with pytest.raises(tsir.UnsupportedError, match="threads \\[0, 64\\) of 128 touches fragment"):
        _lower_with_layouts(before.func)


def test_an_ops_barrier_in_a_range_of_whole_warps_becomes_a_named_barrier() -> None:
    """A block-scope remote copy synchronizes its group before and after the copy: in threads
    [0, 64) of 128 those barriers are the range's named barrier, not __syncthreads."""
    with T.prim_func("f") as before:
        src = T.param("src", (64,), "float32", scope="symmetric")
        dst = T.param("dst", (64,), "float32", scope="symmetric")
        with T.Kernel(1, threads=128):
            tx = T.get_thread_binding(0)
            with T.If(tx < 64):
                T.put_block(src, dst, 64, dst_pe=0)

    with T.prim_func("f") as expected:
        src = T.param("src", (64,), "float32", scope="symmetric")
        dst = T.param("dst", (64,), "float32", scope="symmetric")
        with T.Kernel(1, threads=128):
            tx = T.get_thread_binding(0)
            with T.If(tx < 64):
                with T.attr("thread_range", (0, 64, 1)):
                    with T.attr("tile_op", "tl.PutOp"):
                        barrier = T.call_intrin("int32", "tsir.sync.named_barrier", 1, 64)
                        T.evaluate(barrier)
                        remote = T.call_intrin(
                            "handle",
                            "tsir.distributed.remote_ptr",
                            T.call_intrin("handle", "address_of", dst[0]),
                            0,
                        )
                        local = T.call_intrin("handle", "address_of", src[0])
                        T.evaluate(
                            T.call_intrin(
                                "int32",
                                "tsir.distributed.copy_group",
                                remote,
                                local,
                                T.int64(256),
                                tx,
                                64,
                            )
                        )
                        T.evaluate(barrier)

    assert_structural_equal(_lower_with_layouts(before.func), expected.func)


def test_an_ops_barrier_in_a_range_that_is_not_whole_warps_is_refused() -> None:
    with T.prim_func("f") as before:
        src = T.param("src", (64,), "float32", scope="symmetric")
        dst = T.param("dst", (64,), "float32", scope="symmetric")
        with T.Kernel(1, threads=128):
            tx = T.get_thread_binding(0)
            with T.If(tx < 48):
                T.put_block(src, dst, 64, dst_pe=0)
    with pytest.raises(tsir.UnsupportedError, match="\\[0, 48\\).*whole warps"):
        _lower_with_layouts(before.func)


def test_a_block_collective_call_in_a_thread_range_is_refused() -> None:
    """T.barrier_blocks waits for every thread of the block inside its device function."""
    with T.prim_func("f") as before:
        bar = T.param("bar", (8,), "int32", scope="symmetric")
        with T.Kernel(1, threads=128):
            tx = T.get_thread_binding(0)
            with T.If(tx < 64):
                T.barrier_blocks(bar)
    with pytest.raises(tsir.UnsupportedError, match="barrier_blocks.*every thread of the block"):
        _lower_with_layouts(before.func)


@pytest.mark.parametrize("rows,cols,threads", [(1, 16, 128), (3, 64, 128), (5, 8, 64)])
def test_row_reduction_of_a_fragment_narrower_than_the_block_reads_no_unwritten_register(
    rows: int, cols: int, threads: int
) -> None:
    """Threads whose row slot is past the tile hold no element: the fold must not read their
    (never written) registers. The interpreter's uninitialised-read detector is the oracle."""
    import numpy as np

    with T.prim_func("f") as f:
        X = T.param("X", (rows, cols), "float32")
        Y = T.param("Y", (rows,), "float32")
        with T.Kernel(1, threads=threads):
            x = T.alloc_fragment((rows, cols), "float32")
            s = T.alloc_fragment((rows,), "float32")
            T.copy(X, x)
            T.reduce_max(x, s, 1)
            T.copy(s, Y)
    a = np.random.default_rng(0).standard_normal((rows, cols)).astype(np.float32)
    report = tsir.interpret.check_stages(f.func, [a, np.zeros(rows, np.float32)], target="sm_80")
    report.raise_for_failure()
    np.testing.assert_array_equal(report.reference[1], a.max(1))
