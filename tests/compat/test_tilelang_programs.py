"""The ten TileLang example programs (our transcriptions, tilelang_programs.py) through
tsir.compat.tilelang: compiled with NVRTC here; run against torch on a GPU (marked gpu).
Programs that need an op tsir lacks fail with a TSIRError naming it at the user's line."""

import pytest

import tilelang_programs as P
import tsir.compat.tilelang as tilelang
from tsir.errors import DTypeError, UnsupportedError

COMPILES = {
    "elementwise_add": lambda: tilelang.compile(P.elementwise_add(512, 1024, 32, 32, "float32", "float32", 128), out_idx=-1),
    "gemm": lambda: P.matmul.compile(M=1024, N=1024, K=1024, block_M=128, block_N=128, block_K=32),
    "gemm_splitk": lambda: P.matmul_splitk(1024, 1024, 1024, 128, 128, 32, 4),
    "gemv_naive": lambda: P.naive_gemv(1024, 1024, 128, 128),
    "gemv_splitk": lambda: P.splitk_gemv(1024, 1024, 32, 32, 32),
    "rms_norm": lambda: P.rms_norm(8192, 8192, 1),
    "topk": lambda: P.tl_topk(M=320, N=128, topk=6, blk_m=64),
    "convolution": lambda: tilelang.compile(P.convolution(128, 128, 64, 64, 128, 3, 1, 1, 1, 64, 128, 32, 3, 256), out_idx=[2]),
}

# program -> (error type, text, the user's line that needs the missing piece)
FAILS = {
    "online_softmax": (DTypeError, "mixes float32 (`lse[0]`) and float16", "lse[0] = max_x[0] * scale + T.log2("),
    # The register-A gemm, fragment slices and replicated fragments they use work (tests/tileop);
    # what is left is branch ops1's: clear=False on a gemm accumulator, TileLang's implicit dtype
    # promotion, reductions of annotated layouts.
    "flash_attention": (UnsupportedError, "clear=False on a gemm accumulator's rows", "T.reduce_max(acc_s, scores_max, dim=1, clear=False)"),
    "gqa_decode": (DTypeError, "mixes float16 (`po_local[i]`) and float32 (`scale_local[0]`)", "o_accum_local[i] += po_local[i] * scale_local[0]"),
}
FAILING = {
    "online_softmax": lambda: P.softmax_kernel(8192, 8192),
    "flash_attention": lambda: P.flashattn(8, 32, 4096, 128, False, block_M=128, block_N=128, num_stages=1, threads=128),
    "gqa_decode": lambda: tilelang.compile(P.gqa_decode(1, 32, 8, 8192, 128, 128, 64, 1, 2, 128), out_idx=[6]),
}


@pytest.mark.parametrize("name", sorted(COMPILES))
def test_program_compiles(name, cpu_target):
    k = COMPILES[name]()
    assert k.kernel.cubin[:4] == b"\x7fELF"
    assert 'extern "C" __global__' in k.get_kernel_source()


@pytest.mark.parametrize("name", sorted(FAILING))
def test_program_fails_naming_the_missing_piece(name, cpu_target):
    exc_type, text, line = FAILS[name]
    with pytest.raises(exc_type, match=text.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")) as e:
        FAILING[name]()
    assert e.value.loc is not None and e.value.loc.filename.endswith("tilelang_programs.py")
    assert line in e.value.loc.line


def test_gemv_tvm_allreduce_variant_names_the_tvm_intrinsic():
    from tsir.compat.tilelang import language as T
    from tsir.compat.tilelang.missing import MissingFeature

    with pytest.raises(MissingFeature, match="TVM TIR intrinsic"):
        T.tvm_thread_allreduce
