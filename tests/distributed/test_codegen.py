"""The CUDA the distributed ops generate, and NVRTC compiling all of it for sm_80, sm_90a and
sm_100a: every op, the whole st/ld memory-order x scope x cache-hint x memory-space matrix (the
invalid combinations must be refused when built), every wait relation and flag type, every atomic,
and the examples. No GPU needed."""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import pytest
from tsir.runtime.dist import table
from tsir.runtime.nvrtc import compile_cuda

import tsir
from tsir import T
from tsir.builder import dist_lang
from tsir.errors import BuildError

TARGETS = ["sm_80", "sm_90a", "sm_100a"]
DTYPES = ["int8", "float16", "bfloat16", "int32", "float32", "int64", "float64"]
SEMS = ["weak", "volatile", "relaxed", "acquire", "release", "acq_rel", "seq_cst"]
SCOPES = [None, "cta", "gpu", "sys"]
SPACES = ["global", "shared", "remote"]


@pytest.fixture(autouse=True)
def no_group(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dist_lang, "world_size_hint", None)


def valid(op: str, sem: str, scope: str | None, na: bool, nc: bool, space: str) -> bool:
    """Which combinations PTX has (ISA 8.x, `ld` / `st`), independently of the builder's code."""
    if sem not in (
        ("weak", "volatile", "relaxed", "release")
        if op == "st"
        else ("weak", "volatile", "relaxed", "acquire")
    ):
        return False
    if scope is not None and sem in ("weak", "volatile"):  # .weak and .volatile take no .scope
        return False
    global_space = space != "shared"
    if na and (sem == "volatile" or not global_space):  # ld/st.volatile take no eviction priority
        return False
    # only ld.global.nc (weak)
    return not (nc and (op == "st" or sem != "weak" or not global_space))


def matrix_kernel(
    dtypes: list[str], expect_invalid: bool = False
) -> tuple[tsir.PrimFunc, int, int]:
    """One kernel with every st/ld combination on each dtype; invalid ones must raise BuildError."""
    built = refused = 0
    with T.prim_func("matrix") as f:
        G = {d: T.param(f"G_{d}", (64,), d) for d in dtypes}
        S = {d: T.param(f"S_{d}", (64,), d, scope="symmetric") for d in dtypes}
        with T.Kernel(1, threads=32):
            for d in dtypes:
                sh = T.alloc_shared((64,), d)
                v = T.alloc_var(d)
                for op, sem, scope, na, nc, space in itertools.product(
                    ("st", "ld"), SEMS, SCOPES, (False, True), (False, True), SPACES
                ):
                    if op == "st" and nc:
                        continue
                    buf = {"global": G[d], "shared": sh, "remote": S[d]}[space]
                    pe = (
                        {"dst_pe": 1}
                        if op == "st" and space == "remote"
                        else {"src_pe": 1}
                        if space == "remote"
                        else {}
                    )
                    kw: dict[str, Any] = {"sem": sem, "na": na, **pe}
                    if scope is not None:
                        kw["scope"] = scope
                    try:
                        if op == "st":
                            T.st(buf[3], 1, **kw)
                        else:
                            T.ld(buf[4], v[0], nc=nc, **kw)
                        built += 1
                        assert valid(op, sem, scope, na, nc, space), (
                            f"accepted invalid {op} {kw} nc={nc} on {space}"
                        )
                    except BuildError:
                        refused += 1
                        assert not valid(op, sem, scope, na, nc, space), (
                            f"refused valid {op} {kw} nc={nc} on {space}"
                        )
    return f.func, built, refused


def test_matrix_validity_matches_ptx() -> None:
    _, built, refused = matrix_kernel(["int32"])
    assert built == 48 + 52 and refused > 0  # st: 48 forms, ld: 52 (see valid())


@pytest.mark.parametrize("target", TARGETS)
def test_st_ld_matrix_compiles(target: str) -> None:
    f, built, _ = matrix_kernel(DTYPES)
    kernel = tsir.compile(f, target=target)
    assert kernel.cubin[:4] == b"\x7fELF"
    src = kernel.cuda_source
    for fragment in (
        "tsir::st<tsir::RELEASE, tsir::SYS>",
        "tsir::ld<tsir::WEAK, tsir::GPU, tsir::GLOBAL, tsir::NON_COHERENT>",
        "tsir::st<tsir::RELAXED, tsir::CTA, tsir::GENERIC>",
        "tsir::ld<tsir::VOLATILE>",
    ):
        assert fragment in src
    assert len(re.findall(r"tsir::(?:st|ld)<", src)) == built


@pytest.mark.parametrize("target", TARGETS)
def test_waits_and_atomics_compile(target: str) -> None:
    with T.prim_func("waits") as f:
        flags = {
            d: T.param(f"F_{d}", (4,), d, scope="symmetric")
            for d in ("int32", "uint32", "int64", "uint64")
        }
        local = T.param("L", (4,), "uint64")
        acc = {
            d: T.param(f"A_{d}", (4,), d)
            for d in ("int32", "uint32", "int64", "uint64", "float32", "float64")
        }
        with T.Kernel(1, threads=32):
            for _d, fl in flags.items():
                for rel in ("eq", "ne", "ge", "le", "gt", "lt"):
                    getattr(T, f"wait_{rel}")(fl[0], 1)
                    getattr(T, f"wait_{rel}")(fl[1], 2, peer=1, timeout_cycles=1 << 33)
            T.wait_ge(local[0], 3, timeout_cycles=100)
            for _d, a in acc.items():
                for sem in ("relaxed", "acquire", "release", "acq_rel"):
                    for scope in ("cta", "gpu", "sys"):
                        a[1] = T.atom_add(a[0], 1, scope=scope, sem=sem)
            T.atom_add(flags["int32"][3], 5, scope="sys", dst_pe=1)
    kernel = tsir.compile(f.func, target=target)
    src = kernel.cuda_source
    assert "tsir::wait<tsir::LT>(&F_uint64[0], 1ull)" in src
    assert (
        "tsir::wait<tsir::GE, tsir::GPU>(&L[0], 3ull, 100LL, -1, -1)" in src
    )  # non-symmetric: gpu scope, no rank
    assert (
        "tsir::wait<tsir::EQ>(tsir::remote_ptr(&F_int32[1], 1), 2, 8589934592LL, tsir::rank(), 1)"
        in src
    )


def one_of_each(n: int = 1000) -> tsir.PrimFunc:
    with T.prim_func("all_ops") as f:
        S = T.param("S", (n,), "bfloat16", scope="symmetric")
        D = T.param("D", (n,), "bfloat16", scope="symmetric")
        F = T.param("F", (64,), "int32", scope="symmetric")
        G = T.param("G", (n,), "bfloat16")
        with T.Kernel(4, threads=128) as bx:
            tx = T.get_thread_binding()
            peer = (T.get_rank() + 1) % T.get_num_ranks()
            sh = T.alloc_shared((256,), "bfloat16")
            T.put_block(S[bx * 7], D[3], 250, dst_pe=peer)
            T.put_warp(sh, D[1], 256, dst_pe=peer)
            T.get_block(S[1], sh, 256, src_pe=peer)
            T.get_warp(S, G[5], 33, src_pe=peer)
            T.put_block(G, G[500], 100)  # both local
            T.fence_cta()
            T.fence_gpu()
            T.fence_sys()
            with T.If(T.shuffle_elect(32)):
                T.st(F[tx // 32], bx, sem="release", scope="sys", dst_pe=peer)
                T.wait_ge(F[tx // 32], bx, timeout_cycles=1 << 30)
            with T.If(T.warp_all(tx < 64)):
                G[tx] = T.cast(T.ld(F[0], sem="acquire", scope="sys", src_pe=peer), "bfloat16")
            T.barrier_blocks(F)
            T.sync_blocks(F, timeout_cycles=1 << 30)
    return f.func


@pytest.mark.parametrize("target", TARGETS)
def test_every_op_compiles(target: str) -> None:
    kernel = tsir.compile(one_of_each(), target=target)
    assert kernel.cubin[:4] == b"\x7fELF"
    assert b"tsir_rank_table" in kernel.cubin


def test_generated_cuda() -> None:
    src = tsir.compile(one_of_each(), target="sm_90a").cuda_source
    # symmetric parameters: written by peers while the kernel runs, so neither const nor restrict
    assert (
        "__nv_bfloat16* S," in src and "int* F," in src and "__nv_bfloat16* __restrict__ G" in src
    )
    for line in (
        "tsir::copy_group(tsir::remote_ptr(&D[3], tsir::floormod(tsir::rank() + 1, tsir::num_ranks())), &S[bx * 7], 500LL, tx, 128);",
        "tsir::copy_group(&sh[0], tsir::remote_ptr(&S[1], tsir::floormod(tsir::rank() + 1, tsir::num_ranks())), 512LL, tx, 128);",
        "tsir::copy_group(&G[5], tsir::remote_ptr(&S[0], tsir::floormod(tsir::rank() + 1, tsir::num_ranks())), 66LL, tx % 32, 32);",
        "tsir::copy_group(&G[500], &G[0], 200LL, tx, 128);",
        "tsir::fence_sys();",
        "tsir::barrier_blocks<true>(&F[0]);",
        "tsir::barrier_blocks<false>(&F[0], 1073741824LL);",
    ):
        assert line in src, f"{line}\nnot in\n{src}"
    # a cooperative copy is fenced by the group's barrier on both sides
    assert re.search(r"__syncwarp\(\);\n\s*tsir::copy_group\(&G\[5\].*\n\s*__syncwarp\(\);", src)


def test_local_only_ops_need_no_rank_table() -> None:
    with T.prim_func("local_flags") as f:
        G = T.param("G", (8,), "int32")
        with T.Kernel(1, threads=32):
            T.st(G[0], 1, sem="release", scope="gpu")
            T.wait_eq(G[1], 1)
            G[2] = T.ld(G[3], sem="acquire", scope="gpu")
    kernel = tsir.compile(f.func, target="sm_90a")
    assert '#include "tsir/distributed.h"' not in kernel.cuda_source
    assert (
        '#include "tsir/ldst.h"' in kernel.cuda_source
        and '#include "tsir/sync.h"' in kernel.cuda_source
    )
    assert b"tsir_rank_table" not in kernel.cubin  # runs without dist.init()


def test_copy_sizes_are_clamped_only_where_not_provable() -> None:
    with T.prim_func("clamp") as f:
        n = T.dynamic("n")
        S = T.param("S", (n,), "float32", scope="symmetric")
        D = T.param("D", (4096,), "float32", scope="symmetric")
        with T.Kernel(T.ceildiv(n, 256), threads=128) as bx:
            T.put_block(S[bx * 256], S[bx * 256], 256, dst_pe=0)  # n unknown: cut at the end
            T.put_block(D[bx * 0], D[256], 256, dst_pe=0)  # provably inside
    src = tsir.compile(f.func, target="sm_90a").cuda_source
    # bx < ceil(n / 256) proves the remainder positive: no max(..., 0)
    assert (
        "tsir::copy_group(tsir::remote_ptr(&S[bx * 256], 0), &S[bx * 256], min(256LL, static_cast<long long>(n) - static_cast<long long>(bx * 256)) * 4LL, tx, 128);"
        in src
    )
    assert "tsir::copy_group(tsir::remote_ptr(&D[256], 0), &D[0], 1024LL, tx, 128);" in src


def test_rank_table_layout_matches_the_header() -> None:
    src = (
        '#include "tsir/distributed.h"\n'
        f'static_assert(sizeof(tsir::RankTable) == {table.TABLE_BYTES}, "size");\n'
        'static_assert(__builtin_offsetof(tsir::RankTable, heap_bytes) == 8, "heap_bytes");\n'
        'static_assert(__builtin_offsetof(tsir::RankTable, base) == 16, "base");\n'
        f'static_assert(TSIR_MAX_RANKS == {table.MAX_RANKS}, "max ranks");\n'
        'extern "C" __global__ void k(int* a) { a[0] = tsir::rank() + tsir::num_ranks(); }\n'
    )
    compile_cuda(src, "sm_90a", use_cache=False)
    packed = table.pack(table.RankTable(1, 2, 4096, (0x7000, 0x9000)))
    assert len(packed) == table.TABLE_BYTES
    assert packed[:24] == (1).to_bytes(4, "little") + (2).to_bytes(4, "little") + (4096).to_bytes(
        8, "little"
    ) + (0x7000).to_bytes(8, "little")


EXAMPLE_KERNELS = {
    "put_get": lambda m: m.remote_copy("float16", 777, 0, 1, "warp", True),
    "ring_shift": lambda m: m.ring_shift(),
    "collectives": lambda m: m.all_to_all(65541, 4, 8, dtype="int8"),
    "barrier_stress": lambda m: m.barrier_stress(8, fence=False),
}


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("example", sorted(EXAMPLE_KERNELS))
def test_examples_compile(example: str, target: str) -> None:
    import importlib

    module = importlib.import_module(example)
    kernel = tsir.compile(EXAMPLE_KERNELS[example](module), target=target)
    assert kernel.cubin[:4] == b"\x7fELF"


@pytest.mark.parametrize("target", ["sm_90a", "sm_100a"])
def test_benchmark_kernels_compile(target: str) -> None:
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "distributed" / "bench_dist.py"
    spec = importlib.util.spec_from_file_location("bench_dist", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    for f in (
        bench.one_block_copy(1 << 20, 1024, True),
        bench.one_block_copy(1 << 20, 128, False),
        bench.full_gpu_put(64 << 20, 264, 512),
    ):
        assert tsir.compile(f, target=target).cubin[:4] == b"\x7fELF"
