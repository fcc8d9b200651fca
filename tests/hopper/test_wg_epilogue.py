"""Several consumer warpgroups stage an output tile in shared memory and TMA-store it (sm_90a):
`T.copy(C_f, C_t); T.copy(C_t, C[...])` and the forms around it. Whatever barriers the compiler
chooses (across all consumer threads, or per warpgroup where the accesses are partitioned by
warpgroup), every stage must agree with the tile-level program in the interpreter with no detector
firing (races between warps, a tile rewritten while a TMA store still reads it, generic writes not
fenced for the async proxy), the tile-level result must match numpy, and the CUDA must build under
NVRTC. No test asserts which barriers are used.

The programs come in pairs: forms where each warpgroup writes only the rows it would store, and
forms where that subtly fails -- the tile written shifted or transposed, read across warpgroups
before the store or before the next tile's rewrite, one warp role storing what another wrote. A
tile loop (a persistent kernel walking several tiles, or a `T.serial` over tiles) rewrites the
tile after the previous tile's store."""

from __future__ import annotations

import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from tsir.codegen.cuda import generate_cuda
from tsir.runtime.nvrtc import compile_cuda

import tsir
from tsir import T

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))

from gemm import matmul  # noqa: E402

NP = {"float16": np.float16, "bfloat16": ml_dtypes.bfloat16}
# numpy against the tile-level result: float64 sums against fp32 accumulation, then one rounding
# to the output type; the absolute part is relative to the output's largest magnitude.
RTOL = {"float16": 1e-2, "bfloat16": 3e-2}


def _check(func: tsir.PrimFunc, args: list[np.ndarray]) -> tuple[tsir.Lowered, list[np.ndarray]]:
    """Every stage against the tile-level program, detectors on; returns the lowering and the
    tile-level program's arguments after the run."""
    lowered = tsir.lower(func, "sm_90a")
    report = tsir.interpret.check_stages(lowered, args, target="sm_90a")
    report.raise_for_failure()
    return lowered, report.reference


def _built(lowered: tsir.Lowered) -> str:
    """The CUDA, which stores by TMA and compiles under NVRTC."""
    src = str(generate_cuda(lowered.module))
    assert "tsir::tma_store_2d(" in src and "tsir::tma_store_commit();" in src
    compile_cuda(src, "sm_90a", use_cache=False)
    return src


def _assert_close(got: np.ndarray, want: np.ndarray, dtype: str) -> None:
    got = got.astype(np.float64)
    assert not np.isnan(got).any(), f"{int(np.isnan(got).sum())} elements left unwritten"
    scale = float(np.abs(want).max())
    np.testing.assert_allclose(got, want, rtol=RTOL[dtype], atol=RTOL[dtype] * 0.1 * scale)


def _persistent_blocks(monkeypatch: pytest.MonkeyPatch, blocks: int) -> None:
    """A persistent kernel runs min(tiles, PERSISTENT_CTAS) blocks: fewer blocks than tiles makes
    each block walk several tiles, rewriting its staging tile after each store."""
    import tsir.passes.warp_specialize as ws

    monkeypatch.setattr(ws, "PERSISTENT_CTAS", blocks)


def _ceil(a: int, b: int) -> int:
    return -(-a // b) * b


def _padded(x: np.ndarray, rows: int, cols: int) -> np.ndarray:
    out = np.zeros((rows, cols), np.float64)
    out[: x.shape[0], : x.shape[1]] = x.astype(np.float64)
    return out


def _round(x: np.ndarray, dtype: str) -> np.ndarray:
    return x.astype(NP[dtype]).astype(np.float64)


# -- epilogue forms -------------------------------------------------------------------------------

# The partition by warpgroup holds: each thread writes the tile's elements it holds, nothing reads
# the tile but the store.
PARTITIONED = ["natural"]
# The tile is written where another warpgroup's rows are (the store reads across warpgroups);
# `mirror` moves only columns: partitioned where the warpgroups split the rows (bm >= 128), not
# where they split the columns (bm = 64).
MOVED = ["shift", "transpose", "mirror"]
# The tile is read across warpgroups between two writes of it (then rewritten, and stored).
REWRITTEN = ["reverse", "row0", "colsum"]
# The tile is read across warpgroups before or after the store and not rewritten: only the next
# tile's rewrite orders after those reads. These write a second output `D`.
READ = ["read_before_store", "read_after_store", "colsum_out"]
FORMS = PARTITIONED + MOVED + REWRITTEN + READ


def _side_shape(form: str, M: int, N: int, bm: int) -> tuple[int, int] | None:
    """The shape of the second output `D` a form writes, or None."""
    if form == "colsum_out":
        return (_ceil(M, bm) // bm, N)  # one row of column sums per tile row
    if form in READ:
        return (M, N)
    return None


def _epilogue(
    form: str,
    C_f: tsir.Buffer,
    C_t: tsir.Buffer,
    C: tsir.Buffer,
    D: tsir.Buffer | None,
    ty: object,
    row: object,
    col: object,
) -> None:
    """From the float32 fragment `C_f` (bm x bn) through the shared tile `C_t` to `C[row, col]`
    (TMA-stored) in one of FORMS; `ty` is the tile's row index (for colsum_out's `D`).

    - natural: T.copy(C_f, C_t).
    - shift: row i goes to row (i + bm / 2) % bm: one warpgroup's rows land in another's.
    - transpose: C_t[j, i] = C_f[i, j] (square tile): columns become rows.
    - mirror: C_t[i, bn - 1 - j] = C_f[i, j]: the rows stay, the columns are reversed.
    - reverse: the tile, then C_f[i] = C_t[bm - 1 - i] read back, and the tile rewritten.
    - row0: the tile, then every row minus the tile's row 0 (the first warpgroup's), rewritten.
    - colsum: the tile, then every row minus the column sums (T.reduce_sum over the shared tile's
      rows), rewritten.
    - read_before_store / read_after_store: the tile stored as is, and D[row + i] = C_t[bm-1-i]
      read from the shared tile before / after the store.
    - colsum_out: the tile stored as is, and the column sums of the shared tile in D[ty].
    """
    bm, bn = C_f.shape
    if form == "shift":
        for i, j in T.Parallel(bm, bn):
            C_t[(i + bm // 2) % bm, j] = C_f[i, j]
    elif form == "transpose":
        for i, j in T.Parallel(bm, bn):
            C_t[j, i] = C_f[i, j]
    elif form == "mirror":
        for i, j in T.Parallel(bm, bn):
            C_t[i, bn - 1 - j] = C_f[i, j]
    else:
        T.copy(C_f, C_t)
    if form in ("reverse", "read_before_store"):
        for i, j in T.Parallel(bm, bn):
            C_f[i, j] = T.cast(C_t[bm - 1 - i, j], "float32")
    elif form == "row0":
        for i, j in T.Parallel(bm, bn):
            C_f[i, j] = C_f[i, j] - T.cast(C_t[0, j], "float32")
    elif form in ("colsum", "colsum_out"):
        S = T.alloc_fragment((bn,), "float32")
        T.reduce_sum(C_t, S, dim=0)
        if form == "colsum":
            for i, j in T.Parallel(bm, bn):
                C_f[i, j] = C_f[i, j] - S[j]
        else:
            assert D is not None
            for j in T.Parallel(bn):
                D[ty, col + j] = S[j]
    if form in REWRITTEN:
        T.copy(C_f, C_t)
    T.copy(C_t, C[row, col])
    if form == "read_after_store":
        for i, j in T.Parallel(bm, bn):
            C_f[i, j] = T.cast(C_t[bm - 1 - i, j], "float32")
    if form in ("read_before_store", "read_after_store"):
        assert D is not None
        T.copy(C_f, D[row, col])


def _tile_reference(
    tile: np.ndarray, form: str, dtype: str
) -> tuple[np.ndarray, np.ndarray | None]:
    """What `_epilogue(form)` stores for one accumulated tile, and its `D` part (or None)."""
    bm = tile.shape[0]
    t = _round(tile, dtype)
    if form == "shift":
        return np.roll(tile, bm // 2, axis=0), None
    if form == "transpose":
        return tile.T, None
    if form == "mirror":
        return tile[:, ::-1], None
    if form == "reverse":
        return t[::-1], None
    if form == "row0":
        return tile - t[0], None
    if form == "colsum":
        return tile - t.sum(axis=0), None
    if form in ("read_before_store", "read_after_store"):
        return tile, t[::-1]
    if form == "colsum_out":
        return tile, t.sum(axis=0)[None, :]
    assert form == "natural"
    return tile, None


def _tiled_reference(
    full: np.ndarray, M: int, N: int, bm: int, bn: int, form: str, dtype: str
) -> tuple[np.ndarray, np.ndarray | None]:
    """`full`: the fragment over whole tiles (from zero-padded inputs past M and N, as TMA loads
    and tile-level copies fill them); each tile through the form; C and D clipped to their
    tensors."""
    out = np.empty_like(full)
    side_rows = full.shape[0] // bm if form == "colsum_out" else full.shape[0]
    side = np.empty((side_rows, full.shape[1]))
    for r in range(0, full.shape[0], bm):
        for c in range(0, full.shape[1], bn):
            o, d = _tile_reference(full[r : r + bm, c : c + bn], form, dtype)
            out[r : r + bm, c : c + bn] = o
            if d is not None:
                dr = r // bm if form == "colsum_out" else r
                side[dr : dr + d.shape[0], c : c + bn] = d
    shape = _side_shape(form, M, N, bm)
    return out[:M, :N], None if shape is None else side[: shape[0], : shape[1]]


def _with_side(args: list[np.ndarray], form: str, M: int, N: int, bm: int, dtype: str) -> None:
    shape = _side_shape(form, M, N, bm)
    if shape is not None:
        args.append(np.full(shape, np.nan, NP[dtype]))


def _assert_outputs(
    ref: list[np.ndarray],
    full: np.ndarray,
    M: int,
    N: int,
    bm: int,
    bn: int,
    form: str,
    dtype: str,
    first_output: int,
) -> None:
    want_c, want_d = _tiled_reference(full, M, N, bm, bn, form, dtype)
    _assert_close(ref[first_output], want_c, dtype)
    if want_d is not None:
        _assert_close(ref[first_output + 1], want_d, dtype)


# -- 1. examples/gemm.py, epilogue="shared" -------------------------------------------------------


def _gemm_args(M: int, N: int, K: int, dtype: str) -> list[np.ndarray]:
    rng = np.random.default_rng(M * 7 + N * 3 + K)
    a = rng.standard_normal((M, K)).astype(NP[dtype])
    b = rng.standard_normal((K, N)).astype(NP[dtype])
    return [a, b, np.full((M, N), np.nan, NP[dtype])]


@pytest.mark.parametrize(
    "M,N,K,bm,bn,bk,threads,dtype,persistent,blocks",
    [
        (256, 256, 128, 128, 128, 64, 256, "float16", False, 0),  # 2 warpgroups, a tile a block
        (256, 256, 128, 128, 128, 64, 256, "bfloat16", True, 2),  # 2 tiles per block
        (256, 256, 128, 128, 64, 32, 256, "float16", True, 1),  # one block walks 8 tiles
        (384, 128, 128, 192, 64, 32, 384, "bfloat16", False, 0),  # 3 warpgroups
        (384, 256, 128, 192, 128, 64, 384, "float16", True, 2),  # 3 warpgroups, 2 tiles a block
        (256, 128, 64, 64, 128, 32, 256, "float16", False, 0),  # 64 rows over 2 warpgroups
        (200, 136, 96, 128, 64, 32, 256, "float16", True, 2),  # ragged: 3 tiles per block
        (200, 136, 96, 128, 128, 64, 256, "bfloat16", False, 0),  # ragged
        (133, 64, 64, 128, 64, 32, 256, "float16", True, 1),  # last tile: 5 rows
    ],
)
def test_the_example_gemm_with_a_shared_epilogue_over_several_warpgroups(
    monkeypatch: pytest.MonkeyPatch,
    M: int,
    N: int,
    K: int,
    bm: int,
    bn: int,
    bk: int,
    threads: int,
    dtype: str,
    persistent: bool,
    blocks: int,
) -> None:
    if persistent:
        _persistent_blocks(monkeypatch, blocks)
    func = matmul(
        M, N, K, bm=bm, bn=bn, bk=bk, threads=threads, dtype=dtype, num_stages=2,
        epilogue="shared", persistent=persistent,
    )  # fmt: skip
    args = _gemm_args(M, N, K, dtype)
    lowered, ref = _check(func, args)
    assert not lowered.report, [str(d) for d in lowered.report]  # persistent and TMA as asked
    want = args[0].astype(np.float64) @ args[1].astype(np.float64)
    _assert_close(ref[2], want, dtype)
    _built(lowered)


@pytest.mark.parametrize("threads", [384, 192])
def test_a_gemm_tile_the_consumer_warps_cannot_split_is_refused_with_the_fix(threads: int) -> None:
    """wgmma gives each warpgroup 64-row slices: 128 x 128 over 3 warpgroups (or 6 warps) has no
    such split, and the refusal says which tile shapes would."""
    func = matmul(256, 128, 64, bm=128, bn=128, bk=32, threads=threads, epilogue="shared")
    warps = threads // 32
    with pytest.raises(tsir.TSIRError, match=f"cannot be split over {warps} warps") as e:
        tsir.lower(func, "sm_90a")
    assert f"multiples of 16 x (a factor of {warps})" in str(e.value)


# -- 2. a warp-specialized GEMM (tsir adds the producer) with each epilogue form ------------------


def _ws_gemm(
    M: int,
    N: int,
    K: int,
    bm: int,
    bn: int,
    threads: int,
    form: str,
    persistent: bool,
    dtype: str = "float16",
) -> tsir.PrimFunc:
    """C = A @ B per tile through `_epilogue(form)`: a TMA ring into wgmma, warp-specialized
    (`threads` consumer threads; wgmma gives each warpgroup 64 rows of the accumulator)."""
    bk = 32
    side = _side_shape(form, M, N, bm)
    with T.prim_func("wg_gemm") as f:
        A = T.param("A", (M, K), dtype)
        B = T.param("B", (K, N), dtype)
        C = T.param("C", (M, N), dtype)
        D = None if side is None else T.param("D", side, dtype)
        grid = (T.ceildiv(N, bn), T.ceildiv(M, bm))
        with T.Kernel(*grid, threads=threads, persistent=persistent) as (bx, by):
            A_s = T.alloc_shared((bm, bk), dtype)
            B_s = T.alloc_shared((bk, bn), dtype)
            C_f = T.alloc_fragment((bm, bn), "float32")
            C_t = T.alloc_shared((bm, bn), dtype)
            T.clear(C_f)
            for ko in T.Pipelined(T.ceildiv(K, bk), num_stages=2):
                T.copy(A[by * bm, ko * bk], A_s)
                T.copy(B[ko * bk, bx * bn], B_s)
                T.gemm(A_s, B_s, C_f)
            _epilogue(form, C_f, C_t, C, D, by, by * bm, bx * bn)
    return f.func


def _run_ws_gemm(
    M: int,
    N: int,
    K: int,
    bm: int,
    bn: int,
    threads: int,
    form: str,
    persistent: bool,
    dtype: str = "float16",
) -> str:
    args = _gemm_args(M, N, K, dtype)
    _with_side(args, form, M, N, bm, dtype)
    lowered, ref = _check(_ws_gemm(M, N, K, bm, bn, threads, form, persistent, dtype), args)
    reasons = [str(d) for d in lowered.report]
    assert not [r for r in reasons if "persistent" in r or "tma store" in r], reasons
    full = _padded(args[0], _ceil(M, bm), K) @ _padded(args[1], K, _ceil(N, bn))
    _assert_outputs(ref, full, M, N, bm, bn, form, dtype, first_output=2)
    src = _built(lowered)
    assert "wgmma" in src and "setmaxnreg" in src  # warp-specialized consumers
    return src


@pytest.mark.parametrize("form", FORMS)
def test_a_persistent_gemm_walking_two_tiles_with_each_epilogue_form(
    monkeypatch: pytest.MonkeyPatch, form: str
) -> None:
    """One block, two tiles: the consumers rewrite the staging tile for the second tile after the
    first tile's TMA store (and, but for `natural`, each warpgroup writes or reads rows another
    warpgroup stores or rewrites)."""
    _persistent_blocks(monkeypatch, 1)
    _run_ws_gemm(256, 128, 64, 128, 128, 256, form, persistent=True)


@pytest.mark.parametrize(
    "form,M,N,bm,bn,threads,blocks",
    [
        ("natural", 384, 64, 192, 64, 384, 1),  # 3 warpgroups
        ("shift", 384, 64, 192, 64, 384, 1),  # 3 warpgroups, rows moved by 96
        ("row0", 384, 64, 192, 64, 384, 1),
        ("read_after_store", 384, 64, 192, 64, 384, 1),
        ("natural", 200, 136, 128, 64, 256, 2),  # ragged, 3 tiles per block
        ("shift", 200, 136, 128, 64, 256, 2),  # shifted rows meet the clipped edge
        ("transpose", 200, 200, 128, 128, 256, 1),
        ("reverse", 133, 64, 128, 64, 256, 1),  # 5 rows left: the reversed padding is stored
        ("read_before_store", 133, 64, 128, 64, 256, 1),
        ("colsum_out", 200, 136, 128, 64, 256, 2),
        ("natural", 256, 128, 64, 128, 256, 1),  # 64 rows over 2 warpgroups: split by columns
        ("mirror", 256, 128, 64, 128, 256, 1),  # each warpgroup's columns land in the other's
        ("read_after_store", 256, 128, 64, 128, 256, 1),
    ],
)
def test_a_persistent_gemm_with_other_warpgroup_counts_and_ragged_edges(
    monkeypatch: pytest.MonkeyPatch,
    form: str,
    M: int,
    N: int,
    bm: int,
    bn: int,
    threads: int,
    blocks: int,
) -> None:
    _persistent_blocks(monkeypatch, blocks)
    _run_ws_gemm(M, N, 64, bm, bn, threads, form, persistent=True)


@pytest.mark.parametrize("form", ["natural", "shift", "transpose", "read_before_store"])
def test_a_plain_grid_bf16_gemm_with_each_epilogue_form(form: str) -> None:
    """One tile per block (no tile loop), bf16."""
    _run_ws_gemm(256, 256, 96, 128, 128, 256, form, persistent=False, dtype="bfloat16")


def test_a_fragment_read_at_another_warpgroups_row_is_refused_with_the_reason() -> None:
    """`C_t[i, j] = C_f[(i + 64) % bm, j]` (the shift written from the reading side): no thread
    holds the fragment element its iteration reads, and the refusal says so (the `shift` form
    writes the shared tile at the moved row instead)."""
    M, N, K, bm, bn = 256, 128, 64, 128, 128
    with T.prim_func("gather") as f:
        A = T.param("A", (M, K), "float16")
        B = T.param("B", (K, N), "float16")
        C = T.param("C", (M, N), "float16")
        with T.Kernel(T.ceildiv(N, bn), T.ceildiv(M, bm), threads=256) as (bx, by):
            A_s = T.alloc_shared((bm, K), "float16")
            B_s = T.alloc_shared((K, bn), "float16")
            C_f = T.alloc_fragment((bm, bn), "float32")
            C_t = T.alloc_shared((bm, bn), "float16")
            T.copy(A[by * bm, 0], A_s)
            T.copy(B[0, bx * bn], B_s)
            T.gemm(A_s, B_s, C_f, clear_accum=True)
            for i, j in T.Parallel(bm, bn):
                C_t[i, j] = C_f[(i + 64) % bm, j]
            T.copy(C_t, C[by * bm, bx * bn])
    with pytest.raises(tsir.TSIRError, match="indexes none of them with exactly its loop") as e:
        tsir.lower(f.func, "sm_90a")
    assert "no thread mapping follows from them" in str(e.value)


# -- 3. an element-wise tile loop: nothing in shared memory but the staging tile ------------------


def _staged_loop(
    M: int, N: int, bm: int, bn: int, threads: int, tiles: int, form: str, dtype: str
) -> tsir.PrimFunc:
    """Y = epilogue(2 X + 1) per tile, each block walking `tiles` tile rows with a `T.serial`
    loop; the only shared memory is the staging tile, so its own barriers are the only ones."""
    side = _side_shape(form, M, N, bm)
    with T.prim_func("staged_loop") as f:
        X = T.param("X", (M, N), dtype)
        Y = T.param("Y", (M, N), dtype)
        D = None if side is None else T.param("D", side, dtype)
        grid = (T.ceildiv(N, bn), T.ceildiv(T.ceildiv(M, bm), tiles))
        with T.Kernel(*grid, threads=threads) as (bx, by):
            r = T.alloc_fragment((bm, bn), "float32")
            t = T.alloc_shared((bm, bn), dtype)
            for k in T.serial(tiles):
                ty = by * tiles + k
                T.copy(X[ty * bm, bx * bn], r)
                for i, j in T.Parallel(bm, bn):
                    r[i, j] = r[i, j] * 2.0 + 1.0
                _epilogue(form, r, t, Y, D, ty, ty * bm, bx * bn)
    return f.func


def _run_staged_loop(
    M: int, N: int, bm: int, bn: int, threads: int, tiles: int, form: str, dtype: str = "float16"
) -> None:
    x = np.random.default_rng(M + N + threads).standard_normal((M, N)).astype(NP[dtype])
    args = [x, np.full((M, N), np.nan, NP[dtype])]
    _with_side(args, form, M, N, bm, dtype)
    lowered, ref = _check(_staged_loop(M, N, bm, bn, threads, tiles, form, dtype), args)
    rows = _ceil(_ceil(M, bm) // bm, tiles) * bm
    full = 2.0 * _padded(x, rows, _ceil(N, bn)) + 1.0  # past the edge X reads 0
    _assert_outputs(ref, full, M, N, bm, bn, form, dtype, first_output=1)
    _built(lowered)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("threads,bm", [(256, 128), (384, 192)])
def test_an_elementwise_tile_loop_with_each_epilogue_form(threads: int, bm: int, form: str) -> None:
    """Two tile rows per block, two blocks; 64 columns (bm x 64 for the transpose: square)."""
    bn = bm if form == "transpose" else 64
    _run_staged_loop(4 * bm, bn, bm, bn, threads, 2, form)


@pytest.mark.parametrize(
    "M,N,bm,bn,threads,tiles,form",
    [
        (256, 64, 128, 64, 192, 2, "natural"),  # a warpgroup and a half
        (256, 64, 128, 64, 192, 2, "shift"),
        (256, 64, 128, 64, 192, 2, "read_after_store"),
        (256, 128, 64, 128, 256, 2, "natural"),  # 64 rows over 2 warpgroups
        (256, 128, 64, 128, 256, 2, "shift"),
        (128, 64, 64, 64, 256, 2, "transpose"),
        (256, 128, 64, 128, 256, 2, "mirror"),
        (256, 128, 64, 128, 256, 2, "colsum_out"),
        (133, 64, 64, 64, 256, 4, "natural"),  # tile 3: 5 rows; tile 4: past the end
        (133, 64, 64, 64, 256, 4, "reverse"),
        (133, 72, 128, 64, 256, 2, "shift"),  # ragged rows and columns
        (5, 64, 128, 64, 256, 1, "natural"),  # M < 8
        (5, 64, 128, 64, 256, 1, "read_before_store"),
        (5, 40, 128, 64, 384, 1, "shift"),
    ],
)
def test_an_elementwise_tile_loop_with_odd_thread_counts_and_clipped_tiles(
    M: int, N: int, bm: int, bn: int, threads: int, tiles: int, form: str
) -> None:
    _run_staged_loop(M, N, bm, bn, threads, tiles, form)


def test_an_elementwise_tile_loop_in_bf16() -> None:
    _run_staged_loop(512, 64, 128, 64, 256, 2, "shift", dtype="bfloat16")


# -- 4. explicit warp roles (T.ws) ------------------------------------------------------------------


def _roles_rows(M: int, N: int, bn: int, tiles: int, form: str) -> tsir.PrimFunc:
    """Role g computes rows [64 g, 64 g + 64) of each 128-row tile of Y = 2 X + 1 and writes them
    into the shared tile: at its own rows (`own_rows`), at the other role's (`swapped_rows`), or
    into a 64-row tile of its own that it stores itself (`own_tiles`). Otherwise the whole block
    stores the tile."""
    bm, h = 128, 64
    with T.prim_func("roles_rows") as f:
        X = T.param("X", (M, N), "float16")
        Y = T.param("Y", (M, N), "float16")
        grid = (T.ceildiv(N, bn), T.ceildiv(T.ceildiv(M, bm), tiles))
        with T.Kernel(*grid, threads=256) as (bx, by):
            t = T.alloc_shared((bm, bn), "float16")
            halves = [T.alloc_shared((h, bn), "float16") for _ in range(2)]
            r = [T.alloc_fragment((h, bn), "float32") for _ in range(2)]
            for k in T.serial(tiles):
                row = (by * tiles + k) * bm
                for g in range(2):
                    dst = h * (1 - g) if form == "swapped_rows" else h * g
                    with T.ws(g):
                        T.copy(X[row + h * g, bx * bn], r[g])
                        if form == "own_tiles":
                            for i, j in T.Parallel(h, bn):
                                halves[g][i, j] = r[g][i, j] * 2.0 + 1.0
                            T.copy(halves[g], Y[row + h * g, bx * bn])
                        else:
                            for i, j in T.Parallel(h, bn):
                                t[dst + i, j] = r[g][i, j] * 2.0 + 1.0
                if form != "own_tiles":
                    T.copy(t, Y[row, bx * bn])
    return f.func


@pytest.mark.parametrize("form", ["own_rows", "swapped_rows", "own_tiles"])
@pytest.mark.parametrize("M,N,tiles", [(512, 64, 2), (133, 72, 2)])
def test_warp_roles_that_each_write_half_the_rows_of_the_tile(
    M: int, N: int, tiles: int, form: str
) -> None:
    x = np.random.default_rng(M).standard_normal((M, N)).astype(np.float16)
    lowered, ref = _check(_roles_rows(M, N, 64, tiles, form), [x, np.full((M, N), np.nan, x.dtype)])
    full = 2.0 * _padded(x, _ceil(M, 128 * tiles), _ceil(N, 64)) + 1.0
    if form == "swapped_rows":  # each 128-row tile with its two halves exchanged
        full = full.reshape(-1, 2, 64, full.shape[1])[:, ::-1].reshape(full.shape)
    _assert_close(ref[1], full[:M, :N], "float16")
    _built(lowered)


def _roles_split_n(M: int, N: int, K: int, tiles: int, swapped: bool) -> tsir.PrimFunc:
    """examples/hopper_ws_gemm.py's ws_gemm_split_n with a shared epilogue, `tiles` tile rows per
    block: role g multiplies the column half g and writes it into the shared tile's column half
    g (or 1 - g when `swapped`); the whole block stores the tile."""
    bm, bn, bk = 128, 128, 64
    half = bn // 2
    with T.prim_func("roles_split_n") as f:
        A = T.param("A", (M, K), "float16")
        B = T.param("B", (K, N), "float16")
        C = T.param("C", (M, N), "float16")
        grid = (T.ceildiv(N, bn), T.ceildiv(T.ceildiv(M, bm), tiles))
        with T.Kernel(*grid, threads=256) as (bx, by):
            A_s = T.alloc_shared((bm, bk), "float16")
            B_s = [T.alloc_shared((bk, half), "float16") for _ in range(2)]
            C_f = [T.alloc_fragment((bm, half), "float32") for _ in range(2)]
            C_t = T.alloc_shared((bm, bn), "float16")
            for t in T.serial(tiles):
                row = (by * tiles + t) * bm
                for g in range(2):
                    with T.ws(g):
                        T.clear(C_f[g])
                for ko in T.serial(T.ceildiv(K, bk)):
                    T.copy(A[row, ko * bk], A_s)
                    for g in range(2):
                        with T.ws(g):
                            T.copy(B[ko * bk, bx * bn + g * half], B_s[g])
                            T.gemm(A_s, B_s[g], C_f[g])
                for g in range(2):
                    c0 = (1 - g if swapped else g) * half
                    with T.ws(g):
                        T.copy(C_f[g], C_t[0:bm, c0 : c0 + half])
                T.copy(C_t, C[row, bx * bn])
    return f.func


@pytest.mark.parametrize("swapped", [False, True], ids=["own_half", "other_half"])
def test_warp_roles_that_each_write_a_column_half_of_a_gemm_tile(swapped: bool) -> None:
    M, N, K = 256, 128, 128
    args = _gemm_args(M, N, K, "float16")
    lowered, ref = _check(_roles_split_n(M, N, K, 2, swapped), args)
    want = args[0].astype(np.float64) @ args[1].astype(np.float64)
    if swapped:
        want = np.concatenate([want[:, 64:], want[:, :64]], axis=1)
    _assert_close(ref[2], want, "float16")
    _built(lowered)


def _handoff(M: int, N: int, bm: int) -> tsir.PrimFunc:
    """Each role computes Y = 2 X + 1 for one column half of a tile into a shared tile of its
    own, then the OTHER role TMA-stores it: the writer hands the tile over on `full[g]`, the
    storer hands it back on `empty[g]` once stored, for every tile of a `T.serial` loop."""
    half = N // 2
    with T.prim_func("handoff") as f:
        X = T.param("X", (M, N), "float16")
        Y = T.param("Y", (M, N), "float16")
        with T.Kernel(1, threads=256):
            t = [T.alloc_shared((bm, half), "float16") for _ in range(2)]
            r = [T.alloc_fragment((bm, half), "float32") for _ in range(2)]
            full = T.alloc_barrier([128, 128])
            empty = T.alloc_barrier([128, 128])
            for k in T.serial(T.ceildiv(M, bm)):
                for g in range(2):
                    with T.ws(g):
                        T.barrier_wait(empty[g], (k + 1) % 2)
                        T.copy(X[k * bm, g * half], r[g])
                        for i, j in T.Parallel(bm, half):
                            r[g][i, j] = r[g][i, j] * 2.0 + 1.0
                        T.copy(r[g], t[g])
                        T.barrier_arrive(full[g])
                for g in range(2):
                    with T.ws(1 - g):
                        T.barrier_wait(full[g], k % 2)
                        T.copy(t[g], Y[k * bm, g * half])
                        T.barrier_arrive(empty[g])
    return f.func


@pytest.mark.parametrize("M,bm", [(48, 16), (69, 32)])
def test_a_warp_role_stores_the_tile_the_other_role_wrote(M: int, bm: int) -> None:
    """The store reads only what another warpgroup wrote: the mbarrier orders the writes, and
    the writers' proxy fence must come before their arrival."""
    N = 128
    x = np.random.default_rng(M).standard_normal((M, N)).astype(np.float16)
    lowered, ref = _check(_handoff(M, N, bm), [x, np.full((M, N), np.nan, x.dtype)])
    _assert_close(ref[1], 2.0 * x.astype(np.float64) + 1.0, "float16")
    assert "tsir::mbarrier_arrive(" in _built(lowered)
