"""T.copy from a shared tile to global memory on sm_90a: TMA stores (`cp.async.bulk.tensor` from
shared memory, one thread, clipped at the tensor's edges), the tile laid out in the swizzle the
store reads when nothing else chose its layout, the other threads' writes fenced for the async
proxy before the barrier. Every stage agrees with the tile-level program in the interpreter (its
TMA unit reads the tile through the swizzle and writes only in-bounds elements) with no detector
firing; copies TMA cannot take fall back with the reason under TSIR_EXPLAIN."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest
from tsir.codegen.cuda import generate_cuda
from tsir.runtime.nvrtc import compile_cuda

import tsir
from tsir import T

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))

from gemm import matmul  # noqa: E402
from tma_store_programs import pipelined_copy, stored_twice  # noqa: E402


def _check(func: tsir.PrimFunc, args: list[np.ndarray], target: str = "sm_90a") -> tsir.Lowered:
    lowered = tsir.lower(func, target)
    report = tsir.interpret.check_stages(lowered, args, target=target)
    report.raise_for_failure()
    return lowered


def _cuda(lowered: tsir.Lowered) -> str:
    return str(generate_cuda(lowered.module))


def _staged(M: int, N: int, bm: int, bn: int, dtype: str, threads: int = 128) -> tsir.PrimFunc:
    """Y = 2 X through a shared tile per block, the tile rewritten by every block row."""
    with T.prim_func("staged") as f:
        X = T.param("X", (M, N), dtype)
        Y = T.param("Y", (M, N), dtype)
        with T.Kernel(T.ceildiv(N, bn), T.ceildiv(M, bm), threads=threads) as (bx, by):
            t = T.alloc_shared((bm, bn), dtype)
            r = T.alloc_fragment((bm, bn), dtype)
            T.copy(X[by * bm, bx * bn], r)
            for i, j in T.Parallel(bm, bn):
                r[i, j] = r[i, j] * 2
            T.copy(r, t)
            T.copy(t, Y[by * bm, bx * bn])
    return f.func


@pytest.mark.parametrize(
    "M,N,bm,bn,dtype,threads",
    [
        (64, 128, 32, 64, "float16", 128),  # the 128B swizzle, whole tiles
        (70, 136, 32, 64, "float16", 96),  # ragged: TMA clips rows and columns
        (5, 40, 8, 32, "float32", 64),  # M < 8; the 128B swizzle of fp32
        (48, 64, 16, 16, "float16", 128),  # a 32-byte-wide tile: the 32B swizzle
    ],
)
def test_staged_store_is_tma_and_agrees_at_every_stage(
    M: int, N: int, bm: int, bn: int, dtype: str, threads: int
) -> None:
    x = np.random.default_rng(3).standard_normal((M, N)).astype(dtype)
    lowered = _check(_staged(M, N, bm, bn, dtype, threads), [x, np.full((M, N), np.nan, dtype)])
    src = _cuda(lowered)
    assert src.count("tsir::tma_store_2d(") >= 1
    # The wait is deferred and waits only until the stores have read the tile (nothing in the
    # kernel reads Y; the kernel's end completes its writes).
    assert "tsir::tma_store_commit();" in src and "tsir::tma_store_wait_read<0>();" in src
    assert "tsir::tma_store_wait<0>();" not in src
    # The writers' fence, then the barrier, then the store.
    assert src.index("tsir::fence_proxy_async_shared();") < src.index("tsir::tma_store_2d(")
    compile_cuda(src, "sm_90a", use_cache=False)


def test_the_gemm_epilogue_in_tilelang_form_stores_by_tma() -> None:
    """examples/gemm.py's `shared` epilogue: a 128B-swizzled tile, one TMA box per 64 columns,
    ragged M and N; agrees with the tile-level program."""
    M, N, K = 130, 136, 64
    rng = np.random.default_rng(5)
    a = rng.standard_normal((M, K)).astype(np.float16)
    b = rng.standard_normal((K, N)).astype(np.float16)
    func = matmul(M, N, K, bm=64, bn=128, bk=32, threads=128, num_stages=2, epilogue="shared")
    lowered = _check(func, [a, b, np.full((M, N), np.nan, np.float16)])
    src = _cuda(lowered)
    assert src.count("tsir::tma_store_2d(") == 2  # 128 columns: two 128-byte spans
    assert "^" in src  # the tile is swizzled


def test_store_in_a_loop_rewrites_the_tile_only_after_the_store_is_done() -> None:
    """One block walks its rows, rewriting one tile each step: the barrier before the rewrite
    orders it after the previous step's store (the interpreter reports a write of a tile a TMA
    store still reads)."""
    M, N, bm = 64, 64, 16
    with T.prim_func("rows") as f:
        X = T.param("X", (M, N), "float32")
        Y = T.param("Y", (M, N), "float32")
        with T.Kernel(1, threads=64) as bx:
            t = T.alloc_shared((bm, N), "float32")
            for k in T.serial(M // bm):
                T.copy(X[k * bm + bx, 0], t)
                for i, j in T.Parallel(bm, N):
                    t[i, j] = t[i, j] + 1.0
                T.copy(t, Y[k * bm, 0])
    x = np.random.default_rng(1).standard_normal((M, N)).astype(np.float32)
    lowered = _check(f.func, [x, np.full((M, N), np.nan, np.float32)])
    assert "tsir::tma_store_2d(" in _cuda(lowered)


def test_three_dimensional_destination() -> None:
    B, S, D, bm = 3, 40, 64, 16
    with T.prim_func("heads") as f:
        X = T.param("X", (B, S, D), "float16")
        Y = T.param("Y", (B, S, D), "float16")
        with T.Kernel(T.ceildiv(S, bm), B, threads=128) as (bx, bz):
            t = T.alloc_shared((bm, D), "float16")
            T.copy(X[bz, bx * bm, 0], t)
            T.copy(t, Y[bz, bx * bm, 0])
    x = np.random.default_rng(2).standard_normal((B, S, D)).astype(np.float16)
    lowered = _check(f.func, [x, np.full((B, S, D), np.nan, np.float16)])
    assert "tsir::tma_store_3d(" in _cuda(lowered)


def _explained(func: tsir.PrimFunc, target: str = "sm_90a") -> list[str]:
    """What TSIR_EXPLAIN prints about TMA stores (the lowering's report)."""
    lowered = tsir.lower(func, target)
    return [d.message for d in lowered.report if "tma store" in d.message]


def test_copies_tma_cannot_store_fall_back_and_say_why() -> None:
    M, N = 64, 64
    with T.prim_func("cast") as f:  # shared fp32 -> global fp16: TMA does not convert
        X = T.param("X", (M, N), "float32")
        Y = T.param("Y", (M, N), "float16")
        with T.Kernel(1, threads=128) as _:
            t = T.alloc_shared((M, N), "float32")
            T.copy(X[0, 0], t)
            T.copy(t, Y[0, 0])
    lowered = tsir.lower(f.func, "sm_90a")
    assert "tma_store" not in _cuda(lowered)
    x = np.random.default_rng(0).standard_normal((M, N)).astype(np.float32)
    tsir.interpret.check_stages(
        lowered, [x, np.zeros((M, N), np.float16)], target="sm_90a"
    ).raise_for_failure()
    padded = matmul(128, 128, 64, bm=64, bn=128, bk=32, epilogue="smem")
    reasons = _explained(padded)
    assert any("not a whole tile of `C_s`" in r for r in reasons), reasons


def test_no_tma_store_before_hopper() -> None:
    func = _staged(64, 128, 32, 64, "float16")
    src = _cuda(tsir.lower(func, "sm_80"))
    assert "tma_store" not in src
    assert _explained(func, "sm_80") == []  # the target alone: nothing to report


def test_the_persistent_gemm_epilogue_is_tma_stores_in_sass(tmp_path: Path) -> None:
    from sass_tools import count, opcodes, sass

    func = matmul(
        4096, 4096, 4096, bm=128, bn=256, bk=64, threads=256, num_stages=3, persistent=True,
        epilogue="shared",
    )  # fmt: skip
    binary = compile_cuda(_cuda(tsir.lower(func, "sm_90a")), "sm_90a", use_cache=False)
    ops = opcodes(sass(binary.cubin, tmp_path))
    assert count(ops, "UTMASTG") == 4  # one per 64-column span of the 128x256 tile
    assert count(ops, "STG") == 0 and count(ops, "LDL") == 0 and count(ops, "STL") == 0
    assert count(ops, "HGMMA") > 0


def test_a_view_of_a_parameter_is_stored_without_tma_and_says_why() -> None:
    """A tensor map describes a parameter as the host passes it: a T.reshape view of the output
    keeps the element-wise store (TileLang's convolution writes through such a view)."""
    with T.prim_func("viewed") as f:
        X = T.param("X", (4, 16, 64), "float16")
        Y = T.param("Y", (4, 16, 64), "float16")
        with T.Kernel(4, threads=128) as bx:
            flat = T.reshape(Y, (64, 64))
            t = T.alloc_shared((16, 64), "float16")
            T.copy(X[bx, 0, 0], t)
            T.copy(t, flat[bx * 16, 0])
    lowered = tsir.lower(f.func, "sm_90a")
    assert "tma_store" not in _cuda(lowered)
    assert any("view of one" in r for r in _explained(f.func)), _explained(f.func)
    x = np.random.default_rng(4).standard_normal((4, 16, 64)).astype(np.float16)
    report = tsir.interpret.check_stages(lowered, [x, np.zeros_like(x)], target="sm_90a")
    report.raise_for_failure()


def test_tile_last_written_in_an_earlier_loop_is_fenced_before_the_store() -> None:
    """Fuzz seed 20261239, shrunk: `x1` is written and read in a loop (ThreadSync's barrier
    there has no proxy fence) and stored after it; the store's own fence and barrier make the
    writes visible to the async proxy (the interpreter's ProxyFenceError without them)."""
    M, N, bm, bk = 4, 16, 4, 8
    with T.prim_func("fz") as f:
        X = T.param("X", (M, N), "float32")
        L = T.param("L", (M, bk), "float32")
        Y = T.param("Y", (M, bk), "float32")
        with T.Kernel(1, threads=32) as bx:
            x1 = T.alloc_shared((bm, bk), "float32")
            acc = T.alloc_fragment((bm, bk), "float32")
            T.clear(acc)
            for ko in T.serial(N // bk):
                T.copy(X[bx * bm, ko * bk], x1)
                for i, j in T.Parallel(bm, bk):
                    acc[i, j] = acc[i, j] + x1[i, j] * 2.0
            T.copy(x1, L[0, 0])
            T.copy(acc, Y[0, 0])
    x = np.random.default_rng(6).standard_normal((M, N)).astype(np.float32)
    outs = [np.full((M, bk), np.nan, np.float32) for _ in range(2)]
    lowered = _check(f.func, [x, *outs])
    assert "tsir::tma_store_2d(" in _cuda(lowered)


@pytest.mark.parametrize("writer", [0, 5])
def test_a_tile_one_thread_wrote_is_fenced_by_that_thread(writer: int) -> None:
    """Thread `writer` alone fills the tile, element by element; thread 0 stores it. The writer's
    fence and a barrier come before the store (the interpreter's ProxyFenceError or race report
    otherwise); the storing thread also fences its own writes next to the store."""
    M, N = 8, 32
    with T.prim_func("one_writer") as f:
        X = T.param("X", (M, N), "float32")
        Y = T.param("Y", (M, N), "float32")
        with T.Kernel(1, threads=64):
            tx = T.get_thread_binding()
            t = T.alloc_shared((M, N), "float32")
            with T.If(tx == writer):
                for i in T.serial(M):
                    for j in T.serial(N):
                        t[i, j] = X[i, j] * 3.0
            T.copy(t, Y[0, 0])
    x = np.random.default_rng(8).standard_normal((M, N)).astype(np.float32)
    lowered = _check(f.func, [x, np.full((M, N), np.nan, np.float32)])
    src = _cuda(lowered)
    assert "tsir::tma_store_2d(" in src
    store = src.index("tsir::tma_store_2d(")
    assert "tsir::fence_proxy_async_shared();" in src[:store]


def _store_ifs(src: str) -> list[str]:
    """The bodies of the `if` blocks that issue TMA stores, in source order."""
    out = []
    for m in re.finditer(r"if \([^)]*\) \{\n((?:\s+tsir::[^\n]*\n)+?)\s*\}", src):
        if "tma_store_2d(" in m.group(1) or "tma_store_3d(" in m.group(1):
            out.append(m.group(1))
    return out


def test_the_storing_thread_waits_only_before_the_tile_is_rewritten() -> None:
    """A loop that rewrites and stores one tile per step: the store's wait moves from the store
    to the barrier before the next rewrite (and the end of the kernel), so the storing thread
    goes on while its stores run; the interpreter reports a rewrite of a tile that a store still
    reads, so every stage agreeing shows the wait comes early enough."""
    M, N, bm = 64, 64, 16
    with T.prim_func("rows") as f:
        X = T.param("X", (M, N), "float32")
        Y = T.param("Y", (M, N), "float32")
        with T.Kernel(1, threads=64):
            t = T.alloc_shared((bm, N), "float32")
            for k in T.serial(M // bm):
                T.copy(X[k * bm, 0], t)
                for i, j in T.Parallel(bm, N):
                    t[i, j] = t[i, j] * 2.0 + 1.0
                T.copy(t, Y[k * bm, 0])
    x = np.random.default_rng(2).standard_normal((M, N)).astype(np.float32)
    lowered = _check(f.func, [x, np.full((M, N), np.nan, np.float32)])
    src = _cuda(lowered)
    (store,) = _store_ifs(src)
    assert "tma_store_commit" in store and "tma_store_wait" not in store
    loop = src.index("for (int k = 0")
    waits = [m.start() for m in re.finditer(r"tsir::tma_store_wait_read<0>\(\);", src)]
    first_barrier_in_loop = src.index("__syncthreads();", loop)
    assert len(waits) == 2, src
    assert loop < waits[0] < first_barrier_in_loop  # before the rewrite's barrier
    assert waits[1] > src.index("tma_store_commit")  # and after the loop, at the end


def test_a_store_into_a_tensor_the_kernel_reads_keeps_its_wait() -> None:
    """Y is stored by TMA and then read back by the kernel: the stores complete (wait<0>) right
    where they are issued, before the barrier that orders the readers after them."""
    M, N = 16, 64
    with T.prim_func("readback") as f:
        X = T.param("X", (M, N), "float32")
        Y = T.param("Y", (M, N), "float32")
        Z = T.param("Z", (M, N), "float32")
        with T.Kernel(1, threads=64):
            t = T.alloc_shared((M, N), "float32")
            r = T.alloc_fragment((M, N), "float32")
            T.copy(X[0, 0], t)
            T.copy(t, Y[0, 0])
            T.copy(Y[0, 0], r)
            T.copy(r, Z[0, 0])
    x = np.random.default_rng(3).standard_normal((M, N)).astype(np.float32)
    outs = [np.full((M, N), np.nan, np.float32) for _ in range(2)]
    src = _cuda(_check(f.func, [x, *outs]))
    (store,) = _store_ifs(src)
    assert "tsir::tma_store_wait<0>();" in store


def test_a_tile_rewritten_before_another_ops_barrier_is_fenced_for_the_store() -> None:
    """Fuzz seed 7300168, shrunk: `s1` is rewritten (under a uniform T.If), then a reduction's
    own barrier is the one that orders the rewrite before the TMA store of `s1`. That barrier
    sits inside the reduction's code, where nothing later in its block reads `s1`: the writers'
    proxy fence must come from the kernel-wide set of tiles the async proxy reads."""
    bm, bn, N = 1, 64, 128
    with T.prim_func("fz") as f:
        X = T.param("X", (1, N), "float32")
        Y = T.param("Y", (1, N), "float32")
        with T.Kernel(T.ceildiv(N, bn), 1, threads=32) as (bx, by):
            s1 = T.alloc_shared((bm, bn), "float32")
            T.copy(X[by * bm, bx * bn], s1)
            f2 = T.alloc_fragment((bm, bn), "float32")
            T.copy(s1, f2)
            with T.If(by == 0):
                for i, j in T.Parallel(bm, bn):
                    s1[i, j] = s1[i, j] * 4.0
            f4 = T.alloc_fragment((bn,), "float32")
            T.reduce_sum(f2, f4, dim=0)
            T.copy(s1, Y[by * bm, bx * bn])
    x = np.random.default_rng(9).standard_normal((1, N)).astype(np.float32)
    lowered = _check(f.func, [x, np.full((1, N), np.nan, np.float32)])
    assert "tsir::tma_store_2d(" in _cuda(lowered)


def test_a_tile_updated_by_atomics_is_fenced_for_the_store() -> None:
    """Fuzz seed 7300354, shrunk: a shared histogram filled by atomicAdd and stored by TMA.
    Atomics are generic-proxy writes too: the barrier before the store needs the writers'
    fence (the interpreter's ProxyFenceError without it)."""
    N, nb = 8, 64
    with T.prim_func("hist") as f:
        X = T.param("X", (1, N), "int32")
        H = T.param("H", (1, nb), "int32")
        with T.Kernel(1, threads=32) as bx:
            h = T.alloc_shared((nb,), "int32")
            T.clear(h)
            x = T.alloc_fragment((1, N), "int32")
            T.copy(X[bx, 0], x)
            for i, j in T.Parallel(1, N):
                T.atomic_add(h[x[i, j] % nb], 1)
            T.copy(h, H[bx, 0])
    x = np.random.default_rng(10).integers(0, 1000, (1, N)).astype(np.int32)
    lowered = _check(f.func, [x, np.full((1, nb), -1, np.int32)])
    assert "tsir::tma_store_2d(" in _cuda(lowered)


def test_a_store_into_a_tensor_the_kernel_also_loads_by_tma_keeps_its_wait() -> None:
    """Y is read by a pipeline's TMA loads and then written by a TMA store: both name Y through
    tensor maps, and the store completes where it is issued (async-proxy writes and reads of one
    tensor are not ordered otherwise)."""
    M, N, bm = 32, 64, 8
    with T.prim_func("inplace") as f:
        Y = T.param("Y", (M, N), "float32")
        with T.Kernel(1, threads=64):
            t = T.alloc_shared((bm, N), "float32")
            acc = T.alloc_fragment((bm, N), "float32")
            o = T.alloc_shared((bm, N), "float32")
            T.clear(acc)
            for k in T.Pipelined(M // bm, num_stages=2):
                T.copy(Y[k * bm, 0], t)
                for i, j in T.Parallel(bm, N):
                    acc[i, j] = acc[i, j] + t[i, j]
            T.copy(acc, o)
            T.copy(o, Y[0, 0])
    y = np.random.default_rng(11).standard_normal((M, N)).astype(np.float32)
    lowered = _check(f.func, [y])
    src = _cuda(lowered)
    assert "tsir::tma_load_2d(" in src
    (store,) = _store_ifs(src)
    assert "tsir::tma_store_wait<0>();" in store
    assert any("store into `Y` waits where it is issued" in str(d) for d in lowered.report)


def test_two_stores_into_one_tensor_each_complete_before_the_next() -> None:
    """Two tiles stored to the same rows of Y one after the other: left in flight together they
    could land in either order, so each store keeps its wait (Y ends up with the second)."""
    M, N = 8, 64
    f = stored_twice(M, N)
    x = np.random.default_rng(12).standard_normal((M, N)).astype(np.float32)
    lowered = _check(f, [x, np.full((M, N), np.nan, np.float32)])
    stores = _store_ifs(_cuda(lowered))
    assert len(stores) == 2 and all("tsir::tma_store_wait<0>();" in s for s in stores)
    assert [str(d) for d in lowered.report] == [
        "kernel `twice_kernel`: the TMA store into `Y` waits where it is issued: more than one "
        "statement stores into that tensor, and stores in flight together may land in either "
        "order [ThreadSync]"
    ]


@pytest.mark.parametrize("warp_specialize", [False, True])
def test_a_stage_stored_by_tma_is_refilled_only_after_the_store_read_it(
    warp_specialize: bool,
) -> None:
    """A pipelined copy: each stage is filled by a TMA load and stored by a TMA store. The refill
    (a TMA load: no data to ThreadSync's barriers) must wait for the store that reads the stage
    -- in the same thread, or, warp-specialized, before the consumers release the stage to the
    producer. The interpreter reports a stage rewritten under a store without it."""
    M, N, bm = 64, 64, 8
    f = pipelined_copy(M, N, bm, 2, warp_specialize)
    x = np.random.default_rng(13).standard_normal((M, N)).astype(np.float32)
    src = _cuda(_check(f, [x, np.full((M, N), np.nan, np.float32)]))
    assert "tsir::tma_load_2d(" in src and "tsir::tma_store_2d(" in src
    assert ("setmaxnreg" in src) == warp_specialize
