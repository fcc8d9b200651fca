"""T.im2col / T.c2d_im2col (tsir/tileop/im2col.py): tiles of a convolution's im2col matrix, an
implicit-GEMM convolution built on them checked at every stage against the interpreter and a
numpy convolution, NVRTC for sm_80/sm_90a, and the builder's errors."""

from __future__ import annotations

import numpy as np
import pytest

import tsir
from tsir import T
from tsir.errors import BuildError
from tsir.interpret import check_stages


def conv2d(N, C, H, W, F, K, S, D, P, bm, bn, bk, threads, stages=2):  # type: ignore[no-untyped-def]
    OH = (H + 2 * P - D * (K - 1) - 1) // S + 1
    OW = (W + 2 * P - D * (K - 1) - 1) // S + 1
    with T.prim_func("conv") as f:
        data = T.param("data", (N, H, W, C), "float16")
        kern = T.param("kern", (K, K, C, F), "float16")
        out = T.param("out", (N, OH, OW, F), "float16")
        with T.Kernel(T.ceildiv(F, bn), T.ceildiv(N * OH * OW, bm), threads=threads) as (bx, by):
            A_s = T.alloc_shared((bm, bk), "float16")
            B_s = T.alloc_shared((bk, bn), "float16")
            C_f = T.alloc_fragment((bm, bn), "float32")
            kflat = T.reshape(kern, (K * K * C, F))
            oflat = T.reshape(out, (N * OH * OW, F))
            T.clear(C_f)
            for ko in T.Pipelined(T.ceildiv(K * K * C, bk), num_stages=stages):
                T.im2col(data, A_s, by, ko, K, S, D, P)
                T.copy(kflat[ko * bk, bx * bn], B_s)
                T.gemm(A_s, B_s, C_f)
            T.copy(C_f, oflat[by * bm, bx * bn])
    return f.func, (N, OH, OW, F)


def numpy_conv(data: np.ndarray, kern: np.ndarray, S: int, D: int, P: int) -> np.ndarray:
    N, H, W, C = data.shape
    K = kern.shape[0]
    OH = (H + 2 * P - D * (K - 1) - 1) // S + 1
    OW = (W + 2 * P - D * (K - 1) - 1) // S + 1
    pad = np.pad(data.astype(np.float64), ((0, 0), (P, P), (P, P), (0, 0)))
    out = np.zeros((N, OH, OW, kern.shape[3]))
    for kh in range(K):
        for kw in range(K):
            win = pad[
                :, kh * D : kh * D + (OH - 1) * S + 1 : S, kw * D : kw * D + (OW - 1) * S + 1 : S
            ]
            out += np.einsum("nhwc,cf->nhwf", win, kern[kh, kw].astype(np.float64))
    return out


@pytest.mark.parametrize(
    "shape",
    [
        # N, C, H, W, F, K, S, D, P, bm, bn, bk, threads
        (2, 16, 6, 6, 32, 3, 1, 1, 1, 32, 32, 16, 64),  # channels in 16-byte runs
        (1, 8, 7, 5, 16, 3, 2, 2, 2, 16, 16, 32, 32),  # stride, dilation, ragged rows and K
        (1, 6, 5, 5, 16, 2, 1, 1, 0, 16, 16, 16, 32),  # C not a multiple of the vector
    ],
)
def test_implicit_gemm_convolution_matches_numpy_at_every_stage(shape: tuple[int, ...]) -> None:
    fn, out_shape = conv2d(*shape)
    N, C, H, W, F, K, S, D, P = shape[:9]
    rng = np.random.default_rng(0)
    data = rng.standard_normal((N, H, W, C)).astype(np.float16)
    kern = rng.standard_normal((K, K, C, F)).astype(np.float16)
    report = check_stages(fn, [data, kern, np.zeros(out_shape, np.float16)], target="sm_80")
    assert report.ok, str(report)
    np.testing.assert_allclose(
        report.reference[2], numpy_conv(data, kern, S, D, P), atol=0.05, rtol=0.01
    )


def test_channel_runs_load_as_guarded_vectors() -> None:
    """With C a multiple of 8 halves, each 8-column run of the tile shares its window position:
    one 16-byte guarded load per run (zeros in the padding), no per-element loads."""
    from tsir.expr import BufferLoad, Ramp
    from tsir.visitor import collect

    fn, _ = conv2d(2, 64, 8, 8, 64, 3, 1, 1, 1, 64, 64, 32, 128)
    final = tsir.lower(fn, "sm_80")["VectorizeLoop"]
    loads = [x for x in collect(final.body, BufferLoad) if x.buffer.name == "data"]
    assert loads and all(
        isinstance(x.indices[-1], Ramp) and x.indices[-1].lanes == 8 for x in loads
    )


@pytest.mark.parametrize("target", ["sm_80", "sm_90a"])
def test_convolution_compiles_with_nvrtc(target: str) -> None:
    fn, _ = conv2d(4, 64, 16, 16, 128, 3, 1, 1, 1, 64, 128, 32, 128, stages=3)
    assert tsir.compile(fn, target=target).cubin[:4] == b"\x7fELF"


def test_compat_c2d_im2col_is_im2col() -> None:
    """TileLang's deprecated spelling, with its eviction_policy (no cache hint is emitted, so only
    the default is accepted)."""
    from tsir.compat.tilelang import language as TL
    from tsir.errors import UnsupportedError

    def build(policy):  # type: ignore[no-untyped-def]
        with T.prim_func("c") as f:
            data = T.param("data", (1, 4, 4, 8), "float16")
            out = T.param("out", (16, 8), "float16")
            with T.Kernel(1, threads=32):
                s = T.alloc_shared((16, 8), "float16")
                TL.c2d_im2col(data, s, 0, 0, 1, 1, 1, 0, eviction_policy=policy)
                T.copy(s, out)
        return f.func

    d = np.random.default_rng(0).standard_normal((1, 4, 4, 8)).astype(np.float16)
    report = check_stages(build(None), [d, np.zeros((16, 8), np.float16)], target="sm_80")
    assert report.ok, str(report)
    np.testing.assert_array_equal(report.reference[1], d.reshape(16, 8))
    with pytest.raises(UnsupportedError, match="eviction_policy"):
        build("evict_first")


def test_im2col_errors_name_the_problem_and_the_line() -> None:
    def case(img_shape, tile_scope, kernel=3):  # type: ignore[no-untyped-def]
        with T.prim_func("e"):
            data = T.param("data", img_shape, "float16")
            with T.Kernel(1, threads=32):
                s = (T.alloc_shared if tile_scope == "shared" else T.alloc_fragment)(
                    (16, 16), "float16"
                )
                T.im2col(data, s, 0, 0, kernel)

    for args, text in [
        (((4, 4, 16), "shared"), "4-D \\(N, H, W, C\\) global buffer"),
        (((1, 4, 4, 16), "fragment"), "constant 2-D region of a shared buffer"),
        (((1, 4, 4, 16), "shared", 0), "kernel must be an int >= 1"),
    ]:
        with pytest.raises(BuildError, match=text) as e:
            case(*args)
        assert e.value.loc is not None and e.value.loc.filename == __file__


@pytest.mark.gpu
@pytest.mark.parametrize(
    "shape",
    [
        (8, 64, 32, 32, 128, 3, 1, 1, 1, 64, 128, 32, 128),
        (2, 16, 9, 7, 32, 3, 2, 2, 2, 32, 32, 16, 64),
    ],
)
def test_convolution_on_the_gpu(shape: tuple[int, ...]) -> None:
    torch = pytest.importorskip("torch")
    fn, out_shape = conv2d(*shape)
    N, C, H, W, F, K, S, D, P = shape[:9]
    k = tsir.compile(fn, target="cuda")
    a = torch.randn(N, H, W, C, device="cuda").half()
    b = torch.randn(K, K, C, F, device="cuda").half()
    out = torch.full(out_shape, float("nan"), device="cuda", dtype=torch.float16)
    k(a, b, out)
    ref = torch.conv2d(
        a.permute(0, 3, 1, 2), b.permute(3, 2, 0, 1), stride=S, padding=P, dilation=D
    ).permute(0, 2, 3, 1)
    torch.testing.assert_close(out, ref, rtol=1e-2, atol=1e-2)
