"""Each detector of the thread-level interpreter fires on hand-written IR that has the hazard, with
a message naming both statements, the threads, the blocks and the buffer; hazard-free twins run
clean and compute the right values."""

from __future__ import annotations

import numpy as np
import pytest
from irkit import addr, call, emit, evaluate

import tsir
from tsir import T
from tsir.dtype import DataType
from tsir.expr import Ramp
from tsir.interpret import (
    ArithmeticHazardError,
    AsyncCopyHazardError,
    DataRaceError,
    DivergentBarrierError,
    DivergentWarpError,
    HazardError,
    OutOfBoundsError,
    UninitializedReadError,
)

N = 64


def kernel(
    body, n: int = N, threads: int = N, blocks: int = 1, dtype: str = "float32"
) -> tsir.PrimFunc:
    with T.prim_func("k") as f:
        A = T.param("A", (n,), dtype)
        B = T.param("B", (n,), dtype)
        with T.Kernel(blocks, threads=threads) as bx:
            body(A, B, bx, T.get_thread_binding())
    return f.func


def run(func: tsir.PrimFunc, n: int = N, dtype: str = "float32") -> tuple[np.ndarray, np.ndarray]:
    a = np.arange(n, dtype=dtype)
    b = np.full(n, -1, dtype=dtype)
    tsir.interpret(func, a, b)
    return a, b


# -- data races ------------------------------------------------------------------------------------


def _shift(barrier: bool):
    def body(A, B, bx, tx):
        S = T.alloc_shared((N,), "float32")
        S[tx] = A[tx]
        if barrier:
            T.sync_threads()
        B[tx] = S[(tx + 1) % N]

    return body


def test_race_write_then_read_names_both_statements_and_threads() -> None:
    with pytest.raises(DataRaceError) as info:
        run(kernel(_shift(False)))
    msg = str(info.value)
    assert "data race on shared memory `S`" in msg and "block (0,)" in msg
    assert "write by thread (1,) of block (0,)" in msg
    assert "S[tx] = A[tx]" in msg
    assert "read by thread (0,) of block (0,)" in msg
    assert "B[tx] = S[(tx + 1) % 64]" in msg
    err = info.value
    assert err.buffer == "S" and err.address == 4
    assert [a.what for a in err.accesses] == ["write", "read"]


def test_no_race_with_a_barrier() -> None:
    a, b = run(kernel(_shift(True)))
    np.testing.assert_array_equal(b, np.roll(a, -1))


def test_race_read_then_write() -> None:
    def body(A, B, bx, tx):
        S = T.alloc_shared((N,), "float32")
        S[tx] = A[tx]
        T.sync_threads()
        B[tx] = S[(tx + 1) % N]
        S[tx] = 0.0  # thread tx - 1 may still be reading S[tx]

    with pytest.raises(DataRaceError, match=r"(?s)read by thread \(63,\).*write by thread \(0,\)"):
        run(kernel(body))


def test_race_two_writers_in_one_statement() -> None:
    def body(A, B, bx, tx):
        S = T.alloc_shared((N,), "float32")
        S[tx // 2] = A[tx]

    with pytest.raises(DataRaceError, match="several threads write it in one statement"):
        run(kernel(body))


def test_race_between_warps_despite_syncwarp_but_not_within_a_warp() -> None:
    def body(other_warp: bool):
        def b(A, B, bx, tx):
            S = T.alloc_shared((N,), "float32")
            S[tx] = A[tx]
            T.sync_warp()
            B[tx] = S[tx ^ (32 if other_warp else 1)]

        return b

    a, b = run(kernel(body(False)))
    np.testing.assert_array_equal(b, a[np.arange(N) ^ 1])
    with pytest.raises(DataRaceError):
        run(kernel(body(True)))


def test_races_are_per_block() -> None:
    """Blocks have their own shared memory: the same bytes in two blocks never race."""

    def body(A, B, bx, tx):
        S = T.alloc_shared((1,), "float32")
        with T.If(tx == 0):
            S[0] = A[bx]
        T.sync_threads()
        with T.If(tx == 1):
            B[bx] = S[0]

    a = np.arange(4, dtype="float32")
    b = np.zeros(4, dtype="float32")
    tsir.interpret(kernel(body, n=4, threads=32, blocks=4), a, b)
    np.testing.assert_array_equal(a, b)


def _histogram(barrier: bool):
    def body(A, B, bx, tx):
        H = T.alloc_shared((8,), "int32")
        with T.If(tx < 8):
            H[tx] = 0
        if barrier:
            T.sync_threads()
        T.atomic_add(H[A[tx] % 8], 1)
        T.sync_threads()
        with T.If(tx < 8):
            B[tx] = H[tx]

    return body


def test_atomics_race_with_a_plain_initialisation() -> None:
    with pytest.raises(DataRaceError) as info:
        run(kernel(_histogram(False), dtype="int32"), dtype="int32")
    msg = str(info.value)
    assert "H[tx] = 0" in msg and "atomic_add" in msg and "atomic write" in msg


def test_atomics_do_not_race_with_each_other() -> None:
    a, b = run(kernel(_histogram(True), dtype="int32"), dtype="int32")
    np.testing.assert_array_equal(b[:8], np.bincount(a % 8, minlength=8))


def test_plain_read_of_an_atomically_updated_element_races() -> None:
    def body(A, B, bx, tx):
        S = T.alloc_shared((1,), "float32")
        with T.If(tx == 0):
            S[0] = 0.0
        T.sync_threads()
        T.atomic_add(S[0], A[tx])
        B[tx] = S[0]

    with pytest.raises(DataRaceError, match="atomic write"):
        run(kernel(body))


# -- registers -------------------------------------------------------------------------------------


def test_uninitialised_register_read() -> None:
    def body(A, B, bx, tx):
        r = T.alloc_local((2,), "float32")
        with T.If(tx < 32):
            r[0] = A[tx]
        B[tx] = r[0]

    with pytest.raises(UninitializedReadError) as info:
        run(kernel(body))
    msg = str(info.value)
    assert (
        "register `r` element 0" in msg
        and "thread (32,) of block (0,)" in msg
        and "B[tx] = r[0]" in msg
    )


def test_uninitialised_vector_lane() -> None:
    def body(A, B, bx, tx):
        r = T.alloc_local((2,), "float32")
        v = T.alloc_local((2,), "float32")
        r[0] = A[tx]
        lanes = Ramp(tsir.IntImm(0), tsir.IntImm(1), 2)
        emit(tsir.BufferStore(v, r.vload((lanes,)), (lanes,)))
        B[tx] = v[0]

    with pytest.raises(UninitializedReadError, match="register `r` element 1"):
        run(kernel(body))


def test_registers_written_by_every_thread_are_fine() -> None:
    def body(A, B, bx, tx):
        r = T.alloc_local((2,), "float32")
        r[0] = A[tx]
        r[1] = r[0] * 2.0
        B[tx] = r[1]

    a, b = run(kernel(body))
    np.testing.assert_array_equal(b, 2 * a)


# -- bounds ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["global", "shared", "local"])
def test_out_of_bounds(where: str) -> None:
    def body(A, B, bx, tx):
        S = T.alloc_shared((N,), "float32")
        r = T.alloc_local((1,), "float32")
        S[tx] = A[tx]
        r[0] = A[tx]
        T.sync_threads()
        if where == "global":
            B[tx] = A[tx + 1]
        elif where == "shared":
            B[tx] = S[tx + 1]
        else:
            B[tx] = r[tx % 2]

    with pytest.raises(OutOfBoundsError) as info:
        run(kernel(body))
    name = {"global": "A", "shared": "S", "local": "r"}[where]
    assert f"out-of-bounds read of `{name}`" in str(info.value)


def test_out_of_bounds_vector_lane() -> None:
    def body(A, B, bx, tx):
        v = T.alloc_local((4,), "float32")
        emit(
            tsir.BufferStore(
                v,
                A.vload((Ramp(tx * 4 + 1, tsir.IntImm(1), 4),)),
                (Ramp(tsir.IntImm(0), tsir.IntImm(1), 4),),
            )
        )
        B[tx] = v[3]

    with pytest.raises(OutOfBoundsError, match=r"`A`\[256\]"):
        run(kernel(body, n=256), n=256)


def test_guarded_accesses_do_not_fault() -> None:
    def body(A, B, bx, tx):
        with T.If(tx + 1 < N):
            B[tx] = A[tx + 1]
        with T.Else():
            B[tx] = T.if_then_else(tx + 1 < N, A[tx + 1], 0.0)

    a, b = run(kernel(body))
    np.testing.assert_array_equal(b, np.append(a[1:], 0))


# -- barriers and warps ----------------------------------------------------------------------------


def test_divergent_barrier() -> None:
    def body(A, B, bx, tx):
        with T.If(tx < 32):
            T.sync_threads()

    with pytest.raises(DivergentBarrierError) as info:
        run(kernel(body))
    msg = str(info.value)
    assert "reached by 32 of the 64 threads of block (0,)" in msg
    assert "barrier reached by thread (0,)" in msg and "barrier not reached by thread (32,)" in msg
    assert "T.sync_threads()" in msg


def test_block_uniform_branch_with_a_barrier_is_fine() -> None:
    def body(A, B, bx, tx):
        S = T.alloc_shared((N,), "float32")
        with T.If(bx < 1):
            S[tx] = A[tx]
            T.sync_threads()
            B[tx] = S[N - 1 - tx]

    a, b = run(kernel(body))
    np.testing.assert_array_equal(b, a[::-1])


def test_warp_shuffle_sum_and_divergent_shuffle() -> None:
    def body(partial: bool):
        def b(A, B, bx, tx):
            r = T.alloc_local((1,), "float32")
            r[0] = A[tx]
            for off in (16, 8, 4, 2, 1):
                if partial and off == 1:
                    with T.If(tx < 16):
                        r[0] = r[0] + call("float32", "tsir.reduce.shfl_xor", r[0], off)
                else:
                    r[0] = r[0] + call("float32", "tsir.reduce.shfl_xor", r[0], off)
            B[tx] = r[0]

        return b

    a, b = run(kernel(body(False)))
    np.testing.assert_array_equal(b, np.repeat([a[:32].sum(), a[32:].sum()], 32))
    with pytest.raises(DivergentWarpError, match="16 of the 32 lanes"):
        run(kernel(body(True)))


def test_integer_division_by_zero() -> None:
    def body(A, B, bx, tx):
        B[tx] = A[tx] // (tx - 3)

    with pytest.raises(ArithmeticHazardError, match="division by zero"):
        run(kernel(body, dtype="int32"), dtype="int32")


# -- cp.async --------------------------------------------------------------------------------------


def _cp_async(wait: str | None, read_group: int = 0):
    """Thread t copies A[4t : 4t + 4] (16 bytes) into S as group 0 and into S2 as group 1."""

    def body(A, B, bx, tx):
        S = T.alloc_shared((4 * N,), "float32")
        S2 = T.alloc_shared((4 * N,), "float32")
        evaluate("int32", "tsir.async_copy.cp_async_16", addr(S[tx * 4]), addr(A[tx * 4]), True)
        evaluate("int32", "tsir.async_copy.cp_async_commit")
        evaluate("int32", "tsir.async_copy.cp_async_16", addr(S2[tx * 4]), addr(A[tx * 4]), tx < 32)
        evaluate("int32", "tsir.async_copy.cp_async_commit")
        if wait is not None:
            evaluate("int32", f"tsir.async_copy.cp_async_wait<{wait}>")
            T.sync_threads()
        buf = S if read_group == 0 else S2
        for i in T.serial(4):
            B[tx * 4 + i] = buf[(tx * 4 + i + 4) % (4 * N)]
        if wait is not None:
            evaluate("int32", "tsir.async_copy.cp_async_wait<0>")

    return body


def _run_cp(func: tsir.PrimFunc) -> tuple[np.ndarray, np.ndarray]:
    a = np.arange(4 * N, dtype="float32")
    b = np.zeros(4 * N, dtype="float32")
    tsir.interpret(func, a, b)
    return a, b


def test_cp_async_lands_at_the_wait() -> None:
    a, b = _run_cp(kernel(_cp_async("0", 1), n=4 * N))
    want = np.where(np.arange(4 * N) < 4 * 32, a, 0)  # group 1 zero-fills where tx >= 32
    np.testing.assert_array_equal(b, np.roll(want, -4))


def test_cp_async_read_before_its_wait() -> None:
    with pytest.raises(AsyncCopyHazardError) as info:
        _run_cp(kernel(_cp_async(None), n=4 * N))
    msg = str(info.value)
    assert "no cp_async_wait has retired" in msg and "cp.async issued by thread (1,)" in msg
    assert "cp_async_16" in msg and "B[tx * 4 + i] = S[" in msg and "read by thread (0,)" in msg


def test_cp_async_wait_1_leaves_the_newest_group_pending() -> None:
    a, b = _run_cp(kernel(_cp_async("1", 0), n=4 * N))
    np.testing.assert_array_equal(b, np.roll(a, -4))
    with pytest.raises(AsyncCopyHazardError):
        _run_cp(kernel(_cp_async("1", 1), n=4 * N))


def test_cp_async_pending_at_kernel_end() -> None:
    def body(A, B, bx, tx):
        S = T.alloc_shared((4 * N,), "float32")
        evaluate("int32", "tsir.async_copy.cp_async_16", addr(S[tx * 4]), addr(A[tx * 4]), True)
        evaluate("int32", "tsir.async_copy.cp_async_commit")

    with pytest.raises(AsyncCopyHazardError, match="kernel ends with cp.async copies into `S`"):
        _run_cp(kernel(body, n=4 * N))


def test_check_false_turns_detectors_off() -> None:
    a = np.arange(N, dtype="float32")
    b = np.zeros(N, dtype="float32")
    tsir.interpret(kernel(_shift(False)), a, b, check=False)
    np.testing.assert_array_equal(b, np.roll(a, -1))  # lockstep order


def test_hazards_are_tsir_errors() -> None:
    assert issubclass(HazardError, tsir.TSIRError)
    _ = DataType


def test_a_cp_async_issued_before_other_threads_finished_reading_is_a_race() -> None:
    """A cp.async may land any time after its issue: issuing it into bytes another thread read
    with no barrier in between is a race, even if a barrier comes before its wait."""
    import tsir
    from tsir import T

    with T.prim_func("war") as f:
        A = T.param("A", (64,), "float32")
        Y = T.param("Y", (32,), "float32")
        with T.Kernel(1, threads=32):
            tx = T.get_thread_binding(0)
            S = T.alloc_shared((64,), "float32")
            S[tx] = A[tx]
            S[tx + 32] = A[tx + 32]
            T.sync_threads()
            Y[tx] = S[(tx + 4) % 64]
            # thread t overwrites S[4t .. 4t+3] while thread t-1 may still read S[4t]
            T.evaluate(
                T.call_intrin(
                    "int32",
                    "tsir.async_copy.cp_async_16",
                    T.call_intrin("handle", "address_of", S[tx * 4 % 64]),
                    T.call_intrin("handle", "address_of", A[tx * 4 % 64]),
                    True,
                )
            )
            T.evaluate(T.call_intrin("int32", "tsir.async_copy.cp_async_commit"))
            T.sync_threads()
            T.evaluate(T.call_intrin("int32", "tsir.async_copy.cp_async_wait<0>"))
    import numpy as np
    import pytest as _pytest

    with _pytest.raises(tsir.interpret.DataRaceError, match="cp.async into it \\(issued\\)"):
        tsir.interpret(f.func, np.arange(64, dtype=np.float32), np.zeros(32, np.float32))
