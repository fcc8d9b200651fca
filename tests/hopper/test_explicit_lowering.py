"""Hand-specialized Hopper programs (issue 11, deliverable 4) through the pipeline: each ported
example computes what numpy computes at every stage (`check_stages`, the interpreter simulating
mbarriers, TMA and wgmma, with its race and barrier detectors on), and the passes respect the
program's own warp specialization."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sass_tools import count, opcodes, sass

import tsir
from tsir import T
from tsir.expr import Call
from tsir.interpret import check_stages
from tsir.interpret.errors import InterpretUnsupportedError
from tsir.stmt import AttrStmt, Evaluate, For, IfThenElse
from tsir.visitor import collect

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "examples"))

import hopper_ws_gemm as H
import tilelang_ws_gemm as TL

RNG = np.random.default_rng(11)


def _gemm_args(M: int, N: int, K: int) -> tuple[list[np.ndarray], np.ndarray]:
    a = RNG.standard_normal((M, K)).astype(np.float16)
    b = RNG.standard_normal((K, N)).astype(np.float16)
    return [a, b, np.zeros((M, N), np.float16)], a.astype(np.float32) @ b.astype(np.float32)


def _calls(s: object, prefix: str) -> list[Call]:
    return [c for c in collect(s, Call) if c.op.startswith(prefix)]


@pytest.mark.parametrize(
    "build",
    [
        lambda: H.ws_gemm_barrier(128, 128, 192),
        lambda: H.ws_gemm_barrier(128, 128, 192, tma=True),
        lambda: H.ws_gemm_stages(128, 128, 320, stages=2),
        lambda: H.ws_gemm_split_n(128, 128, 128),
    ],
    ids=["barrier", "barrier_tma", "stages", "split_n"],
)
def test_ported_gemm_matches_numpy_at_every_stage(build) -> None:  # type: ignore[no-untyped-def]
    func = build()
    M, K = (int(d) for d in func.params[0].shape)
    N = int(func.params[1].shape[1])
    args, ref = _gemm_args(M, N, K)
    report = check_stages(tsir.lower(func, "sm_90a"), args, target="sm_90a")
    assert report.ok, report.first_failure
    np.testing.assert_allclose(report.reference[2].astype(np.float32), ref, rtol=2e-2, atol=2e-2)


def test_tma_copy_outside_roles_matches_numpy_at_every_stage() -> None:
    x = RNG.standard_normal((100, 96)).astype(np.float32)
    report = check_stages(
        tsir.lower(H.tma_scale(100, 96), "sm_90a"), [x, np.zeros_like(x)], target="sm_90a"
    )
    assert report.ok, report.first_failure
    np.testing.assert_array_equal(report.reference[1], x * 2)


def test_roles_with_their_own_loops_run_at_the_thread_level_only() -> None:
    """ws_gemm_loops' producer loop comes before its consumer's: the tile level (one statement
    after another) refuses it, naming the wait; the thread-level stages compute the product."""
    args, ref = _gemm_args(128, 128, 320)
    lowered = tsir.lower(H.ws_gemm_loops(128, 128, 320, stages=2), "sm_90a")
    with pytest.raises(
        InterpretUnsupportedError,
        match=r"barrier_wait on empty\[0\] .* comes, in program order, before the arrivals",
    ):
        tsir.interpret(lowered["input"], *args)
    for stage in ("LowerTileOp", "ThreadSync", "SplitHostDevice"):
        c = np.zeros_like(args[2])
        tsir.interpret(lowered[stage], args[0], args[1], c, implicit_sync=stage == "LowerTileOp")
        np.testing.assert_allclose(c.astype(np.float32), ref, rtol=2e-2, atol=2e-2, err_msg=stage)


def test_a_wrong_parity_is_caught_by_the_interpreter() -> None:
    """The consumer waits for the phase after the one its tile lands in: it reads the tile
    before the TMA load lands, which the interpreter reports."""
    M = N = 128
    K = 192
    with T.prim_func("wrong_parity") as f:
        A = T.param("A", (M, K), "float16")
        B = T.param("B", (K, N), "float16")
        C = T.param("C", (M, N), "float16")
        with T.Kernel(1, 1, threads=256):
            A_s = T.alloc_shared((M, 64), "float16")
            B_s = T.alloc_shared((64, N), "float16")
            C_f = T.alloc_fragment((M, N), "float32")
            bars = T.alloc_barrier([1, 128])
            with T.ws(1):
                for ko in T.serial(K // 64):
                    T.barrier_wait(bars[1], (ko + 1) % 2)
                    T.tma_copy(A[0, ko * 64], A_s, barrier=bars[0])
                    T.tma_copy(B[ko * 64, 0], B_s, barrier=bars[0])
                    with T.If(T.get_thread_binding() == 128):
                        T.barrier_arrive(bars[0])
            with T.ws(0):
                T.clear(C_f)
                for ko in T.serial(K // 64):
                    T.barrier_wait(bars[0], (ko + 1) % 2)  # should be ko % 2
                    T.gemm(A_s, B_s, C_f)
                    T.barrier_arrive(bars[1])
                T.copy(C_f, C[0, 0])
    args, _ = _gemm_args(M, N, K)
    with pytest.raises(tsir.TSIRError, match="TMA load that has not landed"):
        tsir.interpret(tsir.lower(f.func, "sm_90a")["SplitHostDevice"], *args)


def test_thread_sync_puts_no_block_barrier_between_roles() -> None:
    """Roles wait for each other on the program's mbarriers: a block barrier between them would
    deadlock (or serialize them). Inside a role, its named barrier; before the arrival that
    hands the producer's plain stores to wgmma, a proxy fence."""
    body = tsir.lower(H.ws_gemm_barrier(256, 256, 256), "sm_90a")["ThreadSync"].body
    (loop,) = [s for s in collect(body, For) if s.loop_var.name == "ko"]
    assert not _calls(loop, "sync_threads")
    assert _calls(loop, "tsir.sync.named_barrier")
    assert all(a.key != "warp_role" for a in collect(body, AttrStmt))  # the markers are gone
    producer = next(
        i for i in collect(loop, IfThenElse) if _calls(i.then_case, "tsir.mbarrier.mbarrier_arrive")
    )
    ops = [e.value.op for e in collect(producer.then_case, Evaluate) if isinstance(e.value, Call)]
    arrive = ops.index("tsir.mbarrier.mbarrier_arrive")
    assert ops[arrive - 1] == "tsir.mbarrier.fence_proxy_async_shared"


def test_wgmma_retires_before_the_consumer_frees_its_tiles() -> None:
    body = tsir.lower(H.ws_gemm_barrier(256, 256, 256), "sm_90a")["InjectWgmmaSync"].body
    (loop,) = [s for s in collect(body, For) if s.loop_var.name == "ko"]
    consumer = next(
        i for i in collect(loop, IfThenElse) if _calls(i.then_case, "tsir.wgmma.wgmma_ss")
    )
    ops = [e.value.op for e in collect(consumer.then_case, Evaluate) if isinstance(e.value, Call)]
    assert ops.index("tsir.wgmma.wgmma_wait<0>") < ops.index("tsir.mbarrier.mbarrier_arrive")


def test_a_program_with_roles_is_not_specialized_or_staged_again() -> None:
    """softpipe_stage2: T.Pipelined(num_stages=2) around warp roles stays a plain loop, and
    WarpSpecialize leaves the kernel's threads alone; both say why under TSIR_EXPLAIN."""
    lowered = tsir.lower(TL.copy_0_gemm_1(256, 256, 256, 128, 128, 64, num_stages=2), "sm_90a")
    report = "\n".join(str(d) for d in lowered.report)
    assert "runs unpipelined: the kernel's warp roles (T.ws) order its copies" in report
    assert "is not warp-specialized by tsir: the program has its own warp roles (T.ws)" in report
    (launch,) = collect(lowered["WarpSpecialize"].body, tsir.KernelLaunch)
    assert launch.threads == (256,)
    assert not [
        f
        for f in collect(launch, For)
        if f.kind is not tsir.ForKind.SERIAL and f.loop_var.name == "ko"
    ]


@pytest.mark.parametrize(
    "name, tma, nreg",
    [
        ("ws_gemm_barrier", False, False),
        ("ws_gemm_barrier_tma", True, False),
        ("ws_gemm_loops", True, True),
    ],
)
def test_sass_holds_what_the_program_asked_for(
    name: str, tma: bool, nreg: bool, tmp_path: Path
) -> None:
    """wgmma (HGMMA) in every consumer; TMA loads (UTMALDG) exactly where the program wrote
    T.tma_copy; register budgets (USETMAXREG) exactly where it wrote T.dec/inc_max_nreg; no local
    memory (compiled for sm_90a with NVRTC, disassembled with cuobjdump: no GPU needed)."""
    ops = opcodes(sass(tsir.compile(H.EXAMPLES[name](), target="sm_90a").cubin, tmp_path))
    assert count(ops, "HGMMA") > 0
    assert (count(ops, "UTMALDG") > 0) == tma
    assert (count(ops, "USETMAXREG") > 0) == nreg
    assert count(ops, "LDL") == count(ops, "STL") == 0


def _reverse_through_shared(roles: tuple[tuple[int, ...], tuple[int, ...]]) -> tsir.PrimFunc:
    with T.prim_func("reverse") as f:
        X = T.param("X", (128,), "float32")
        Y = T.param("Y", (128,), "float32")
        with T.Kernel(1, threads=256):
            S = T.alloc_shared((128,), "float32")
            with T.ws(*roles[0]):
                T.copy(X, S)
            with T.ws(*roles[1]):
                for i in T.Parallel(128):
                    Y[i] = S[127 - i]
    return f.func


@pytest.mark.parametrize(
    "roles, barrier",
    [(((1,), (1,)), "tsir.sync.named_barrier"), (((0, 1), (0, 1)), "tsir.sync.named_barrier")],
    ids=["one_role_twice", "whole_block_role"],
)
def test_a_role_orders_its_own_shared_accesses(roles: Any, barrier: str) -> None:
    """Two blocks of one role, the second reading what other threads of the role wrote: the
    role's named barrier between them (a role spanning the block is ordinary code, whose accesses
    here all come from warpgroup 0: that warpgroup's own barrier); the program computes what numpy
    computes at every stage."""
    func = _reverse_through_shared(roles)
    x = np.arange(128, dtype=np.float32)
    report = check_stages(tsir.lower(func, "sm_90a"), [x, np.zeros_like(x)], target="sm_90a")
    assert report.ok, report.first_failure
    np.testing.assert_array_equal(report.reference[1], x[::-1])
    body = tsir.lower(func, "sm_90a")["ThreadSync"].body
    assert len(_calls(body, barrier)) == 1
    if barrier != "sync_threads":
        assert not _calls(body, "sync_threads")
