"""The ordinary tile program (examples/gemm.py's `matmul`) on sm_90a: every stage of the pipeline
agrees with the tile-level program in the interpreter with no detector firing (TMA ring, wgmma,
warp specialization; ragged edges; K not a multiple of the tile; bf16 and float8), and the CUDA
compiles under NVRTC to the Hopper instructions (HGMMA / QGMMA, UTMALDG, USETMAXREG) with no
local memory (issue 11, deliverable 6 for the GEMM; the GPU run is tests/hopper/
test_gemm_wgmma_gpu.py)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from sass_tools import count, cuobjdump, opcodes, sass
from tsir.codegen.cuda import generate_cuda
from tsir.runtime.nvrtc import compile_cuda

import tsir

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))

from gemm import matmul  # noqa: E402

NP = {
    "float16": np.float16,
    "bfloat16": ml_dtypes.bfloat16,
    "float8_e4m3": ml_dtypes.float8_e4m3fn,
    "float8_e5m2": ml_dtypes.float8_e5m2,
    "float32": np.float32,
}


def _args(
    M: int, N: int, K: int, dtype: str, out: str, transpose_B: bool = False
) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    a = rng.standard_normal((M, K)).astype(NP[dtype])
    b = rng.standard_normal((N, K) if transpose_B else (K, N)).astype(NP[dtype])
    return [a, b, np.full((M, N), np.nan, NP[out])]


def _check(func: tsir.PrimFunc, args: list[np.ndarray], grid: object = None) -> tsir.Lowered:
    lowered = tsir.lower(func, "sm_90a")
    report = tsir.interpret.check_stages(lowered, args, target="sm_90a", grid=grid)
    report.raise_for_failure()
    return lowered


def _stage_text(lowered: tsir.Lowered, name: str) -> str:
    return str(lowered[name])


def test_the_example_is_a_warp_specialized_tma_wgmma_pipeline_at_every_stage() -> None:
    """threads=128: one consumer warpgroup, plus the producer (256 threads in all)."""
    lowered = _check(
        matmul(128, 128, 96, bm=128, bn=128, bk=32), _args(128, 128, 96, "float16", "float16")
    )
    assert not lowered.report
    final = _stage_text(lowered, "ThreadSync")
    assert "threads=256" in final
    for call in (
        "tma_load_2d",
        "wgmma_ss<tsir::kWgmmaF16, 128, 0, 1>",
        "setmaxnreg_dec<40>",
        "setmaxnreg_inc<240>",
        "wgmma_wait<1>",
        "mbarrier_arrive_expect_tx",
    ):
        assert call in final, call


def test_two_consumer_warpgroups_and_a_ring_no_deeper_than_the_loop() -> None:
    """bm=128 over 2 consumer warpgroups (384 threads); 4 stages asked, 2 k-blocks: a ring of 2."""
    f = matmul(128, 256, 128, bm=128, bn=256, bk=64, threads=256, num_stages=4)
    lowered = _check(f, _args(128, 256, 128, "float16", "float16"))
    final = _stage_text(lowered, "ThreadSync")
    assert "threads=384" in final and "setmaxnreg_inc<232>" in final
    assert "mbar_full = T.alloc_buffer((2,)" in final


def test_ragged_tiles_are_zero_filled_by_tma_and_guarded_in_the_epilogue() -> None:
    """M, N not multiples of the tile and K not a multiple of bk, strides still 16-byte multiples:
    TMA clips; the edge blocks' stores are guarded."""
    f = matmul(200, 136, 72, bm=128, bn=128, bk=32)
    lowered = _check(f, _args(200, 136, 72, "float16", "float16"), grid=[(1, 1), (0, 1)])
    assert not lowered.report
    assert "tma_load_2d" in _stage_text(lowered, "ThreadSync")


def test_an_odd_row_pitch_falls_back_to_cp_async_with_the_reason() -> None:
    """K = 100 halves: A's rows are 200 bytes apart, which TMA cannot describe."""
    f = matmul(200, 136, 100, bm=128, bn=128, bk=32)
    lowered = _check(f, _args(200, 136, 100, "float16", "float16"), grid=[(1, 1)])
    (line,) = [str(d) for d in lowered.report]
    assert "gemm.py" in line and "stays on cp.async: T.copy into `A_s` is not a TMA load" in line
    assert (
        "the stride of `A`'s dimension 0 (100 elements = 200 bytes) is not a multiple of 16" in line
    )
    final = _stage_text(lowered, "ThreadSync")
    assert (
        "cp_async_commit" in final and "wgmma_ss" in final and "fence_proxy_async_shared" in final
    )


def test_bf16_with_a_float32_output() -> None:
    f = matmul(128, 64, 128, bm=128, bn=64, bk=64, dtype="bfloat16", out_dtype="float32")
    _check(f, _args(128, 64, 128, "bfloat16", "float32"))


@pytest.mark.parametrize("dtype", ["float8_e4m3", "float8_e5m2"])
def test_float8_with_k_major_b(dtype: str) -> None:
    f = matmul(
        128, 128, 256, bm=128, bn=128, bk=128, dtype=dtype, out_dtype="float16", transpose_B=True
    )
    lowered = _check(f, _args(128, 128, 256, dtype, "float16", transpose_B=True))
    kind = "E4M3E4M3" if dtype == "float8_e4m3" else "E5M2E5M2"
    assert f"wgmma_ss<tsir::kWgmma{kind}, 128, 0, 0>" in _stage_text(lowered, "ThreadSync")


def test_a_dynamic_m() -> None:
    f = matmul(None, 128, 128, bm=128, bn=128, bk=64)
    _check(f, _args(130, 128, 128, "float16", "float16"), grid=[(0, 1)])


# -- NVRTC and SASS --------------------------------------------------------------------------------


def _res_usage(cubin: bytes, tmp: Path) -> str:
    path = tmp / "k.cubin"
    path.write_bytes(cubin)
    return subprocess.run(
        [str(cuobjdump()), "-res-usage", str(path)], capture_output=True, text=True, check=True
    ).stdout


@pytest.mark.parametrize(
    "name, func, mma",
    [
        (
            "fp16 4096^3",
            lambda: matmul(
                4096, 4096, 4096, bm=128, bn=256, bk=64, threads=256, num_stages=4, swizzle=8
            ),
            "HGMMA.64x256x16.F32",
        ),
        (
            "bf16 M=1000",
            lambda: matmul(
                1000, 4096, 4096, bm=128, bn=128, bk=64, threads=256, dtype="bfloat16", num_stages=4
            ),
            "HGMMA.64x128x16.F32.BF16",
        ),
        (
            "fp8 e4m3",
            lambda: matmul(
                8192,
                8192,
                8192,
                bm=128,
                bn=256,
                bk=128,
                threads=256,
                dtype="float8_e4m3",
                out_dtype="float16",
                transpose_B=True,
                num_stages=4,
            ),
            "QGMMA.64x256x32.F32.E4M3.E4M3",
        ),
    ],
)
def test_sass_is_the_hopper_path_without_local_memory(
    name: str, func, mma: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    kernel = tsir.compile(func(), target="sm_90a")
    ops = opcodes(sass(kernel.cubin, tmp_path))
    assert ops[mma] > 0, (name, {k: v for k, v in ops.items() if "GMMA" in k})
    assert count(ops, "UTMALDG") > 0, name
    assert count(ops, "USETMAXREG") == 2, name
    assert count(ops, "LDL") == 0 and count(ops, "STL") == 0, name
    assert "STACK:0" in _res_usage(kernel.cubin, tmp_path), name


def test_an_odd_pitch_gemm_still_takes_wgmma_on_cp_async(tmp_path: Path) -> None:
    kernel = tsir.compile(
        matmul(4095, 4097, 4096, bm=128, bn=128, bk=64, threads=256, num_stages=3), target="sm_90a"
    )
    ops = opcodes(sass(kernel.cubin, tmp_path))
    assert count(ops, "HGMMA") > 0 and count(ops, "UTMALDG") == 0
    assert count(ops, "LDL") == 0 and count(ops, "STL") == 0


def test_the_generated_cuda_passes_tensor_maps_as_grid_constants() -> None:
    src = generate_cuda(tsir.lower(matmul(256, 256, 256, bm=128, bn=128, bk=64), "sm_90a").module)
    assert "__launch_bounds__(256, 1)" in src
    assert "const __grid_constant__ tsir::TmaDescriptor A_tmap" in src
    assert "const __grid_constant__ tsir::TmaDescriptor B_tmap" in src
    compile_cuda(src, "sm_90a", use_cache=False)


def test_persistent_blocks_walk_the_tiles_in_panels_and_continue_the_ring(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two blocks over 3 x 2 tiles (panels of 2 block columns): each block runs three tiles, its
    ring carrying over from one tile to the next."""
    import tsir.passes.warp_specialize as ws

    monkeypatch.setattr(ws, "PERSISTENT_CTAS", 2)
    f = matmul(384, 256, 192, bm=128, bn=128, bk=64, num_stages=3, swizzle=2, persistent=True)
    lowered = _check(f, _args(384, 256, 192, "float16", "float16"))
    final = lowered["ThreadSync"]
    (kernel,) = [s for s in tsir.visitor.collect(final, tsir.stmt.KernelLaunch)]
    assert [int(g.value) for g in kernel.grid] == [2] and kernel.threads == (256,)
    assert not lowered.report


@pytest.mark.parametrize("epilogue", ["none", "shared"])
def test_persistent_consumers_meet_at_no_block_barrier_between_tiles(
    monkeypatch: pytest.MonkeyPatch, epilogue: str
) -> None:
    """Two consumer warpgroups, three tiles each: the consumers write no stage of the ring (the
    producer's TMA fills it, the mbarriers order both), so nothing joins them at a tile's start.
    The shared epilogue tile still needs its barriers, but each warpgroup's own: warpgroup w
    writes rows 64w.. of the tile and its first thread stores just those rows, so one barrier
    before the store (the warpgroup wrote them) and one before the rewrite (its store has read
    them) order everything, and neither warpgroup waits for the other's epilogue."""
    lowered = _persistent_384x256x192(monkeypatch, threads=256, epilogue=epilogue)
    src = generate_cuda(lowered.module)
    assert "named_barrier(1, 256)" not in src, src
    own = re.findall(r"named_barrier\(\(tx - 128\) / 128 \+ (\d+), 128\)", src)
    assert len(own) == (2 if epilogue == "shared" else 0), src
    if epilogue == "shared":
        assert len(set(own)) == 1 and int(own[0]) >= 2  # ids 0 and 1 are the block's and the role's
        first = src.index(f"named_barrier((tx - 128) / 128 + {own[0]}, 128)")
        # Each warpgroup's first thread stores its rows and waits for its stores before the next
        # tile's rewrite of the staging tile, and once after the last tile; not right after
        # issuing them.
        assert "if ((tx - 128) % 128 == 0)" in src
        waits = [m.start() for m in re.finditer(r"tma_store_wait_read<0>\(\);", src)]
        assert len(waits) == 2, src
        assert waits[0] < first < src.index("tma_store_commit")
        assert waits[1] > src.index("tma_store_commit")


def test_persistent_blocks_in_column_panels_agree_at_every_stage(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """T.use_swizzle(2, order="col") on a persistent kernel: panels of two block rows, by fastest;
    two blocks over 2 x 3 tiles, each ring continuing across its tiles."""
    lowered = _persistent_384x256x192(monkeypatch, swizzle_order="col")
    assert not lowered.report


def _persistent_384x256x192(monkeypatch: pytest.MonkeyPatch, **kw: object) -> tsir.Lowered:
    """The example GEMM, 128 x 128 x 64 tiles, 3 stages, persistent on two blocks (3 tiles each),
    panels of 2; checked at every stage against the tile-level program."""
    import tsir.passes.warp_specialize as ws

    monkeypatch.setattr(ws, "PERSISTENT_CTAS", 2)
    f = matmul(384, 256, 192, bm=128, bn=128, bk=64, num_stages=3, swizzle=2, persistent=True, **kw)  # type: ignore[arg-type]
    return _check(f, _args(384, 256, 192, "float16", "float16"))


def test_persistent_without_a_tma_pipeline_says_it_runs_as_a_plain_grid() -> None:
    f = matmul(200, 136, 100, bm=128, bn=128, bk=32, persistent=True)
    report = [d.message for d in tsir.lower(f, "sm_90a").report]
    assert any("T.Kernel(persistent=True) runs as a plain grid" in r for r in report), report


def test_a_forced_mma_sync_gemm_on_a_tma_ring_stays_in_the_kernels_own_threads() -> None:
    """mma.sync's header computes its warp from threadIdx: its threads cannot become consumers
    128 threads later, so the ring is not warp-specialized (and the report says why)."""
    f = matmul(128, 128, 128, bm=128, bn=128, bk=32, num_stages=3)
    f = _with_policy(f, "mma")
    lowered = _check(f, _args(128, 128, 128, "float16", "float16"))
    (line,) = [d.message for d in lowered.report]
    assert (
        "not warp-specialized: `tsir.gemm_sm80.gemm_ss` computes its warp from the hardware thread index"
        in line
    )
    final = _stage_text(lowered, "ThreadSync")
    assert "tma_load_2d" in final and "gemm_ss<" in final and "threads=128" in final


def _with_policy(func: tsir.PrimFunc, policy: str) -> tsir.PrimFunc:
    from tsir.stmt import TileOpStmt
    from tsir.tileop import Gemm
    from tsir.visitor import Mutator

    class Force(Mutator):
        def visit_TileOpStmt(self, s: TileOpStmt):  # type: ignore[no-untyped-def]
            return s.replace(op=s.op.replace(policy=policy)) if isinstance(s.op, Gemm) else s

    return Force().visit(func)  # type: ignore[no-any-return]


def test_two_warpgroups_reading_tiles_written_by_ordinary_copies_agree_at_every_stage() -> None:
    """No pipeline: both warpgroups copy their halves of the operands into shared memory, then
    read all of it. Before ThreadSync the interpreter runs the warpgroups as strands that meet at
    the end of each tile op (the barriers are implicit there)."""
    f = matmul(128, 64, 32, bm=128, bn=64, bk=32, threads=256, num_stages=0)
    _check(f, _args(128, 64, 32, "float16", "float16"))
