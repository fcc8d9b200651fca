"""tsir.compat.tilelang without a GPU: calling conventions, reports, missing names, autotune."""

import subprocess
import sys

import numpy as np
import pytest

import tsir.compat.tilelang as tilelang
from tsir.compat.tilelang import language as T
from tsir.compat.tilelang.autotuner import tune
from tsir.compat.tilelang.missing import MissingFeature
from tsir.errors import TSIRError, UnsupportedError


@tilelang.jit(out_idx=[-1])
def add_factory(M, N, block=32, dtype="float32"):
    @T.prim_func
    def add(A: T.Tensor((M, N), dtype), B: T.Tensor((M, N), dtype), C: T.Tensor((M, N), dtype)):
        with T.Kernel(T.ceildiv(N, block), T.ceildiv(M, block), threads=128) as (bx, by):
            for i, j in T.Parallel(block, block):
                C[by * block + i, bx * block + j] = (
                    A[by * block + i, bx * block + j] + B[by * block + i, bx * block + j]
                )

    return add


@tilelang.jit
def scale_rows(X, block_M, factor=2.0, dtype=T.float32):
    M, N = T.const("M, N")
    X: T.Tensor((M, N), dtype)
    Y = T.empty((M, N), dtype)
    S = T.empty((M,), dtype)
    with T.Kernel(T.ceildiv(M, block_M), threads=128) as bx:
        for i, j in T.Parallel(block_M, N):
            Y[bx * block_M + i, j] = X[bx * block_M + i, j] * factor
        for i in T.Parallel(block_M):
            S[bx * block_M + i] = X[bx * block_M + i, 0]
    return Y, S


def test_factory_form_compiles_once_per_arguments(cpu_target):
    k1 = add_factory(256, 512)
    assert add_factory(256, 512) is k1
    assert add_factory(256, 1024) is not k1
    assert k1.out_idx == [2] and k1.in_idx == [0, 1]
    src = k1.get_kernel_source()
    assert 'extern "C" __global__' in src and "add_kernel" in src
    assert k1.output_shapes(np.zeros((256, 512)), np.zeros((256, 512))) == [(256, 512)]


def test_body_form_outputs_are_the_returned_empties(cpu_target):
    k = scale_rows.compile(M=128, N=64, block_M=16)
    names = [k.params[i].name for i in k.out_idx]
    assert names == ["Y", "S"] and [k.params[i].name for i in k.in_idx] == ["X"]
    assert k.output_shapes(np.zeros((128, 64))) == [(128, 64), (128,)]
    # a direct call binds M, N from the tensor and compiles for that shape (no GPU: the launch
    # is what fails, after the build, so only the build is checked here)
    build = tilelang.jit(scale_rows.fn).compile(np.zeros((64, 32), np.float32), 16)
    assert build.output_shapes(np.zeros((64, 32))) == [(64, 32), (64,)]


def test_body_form_rejects_a_tensor_of_the_wrong_dtype(cpu_target):
    with pytest.raises(TSIRError, match="`X` is declared float32 but the tensor passed is float16"):
        scale_rows.compile(np.zeros((64, 32), np.float16), 16)


def test_pass_configs_without_effect_are_reported_and_unknown_ones_raise(cpu_target):
    k = tilelang.compile(
        add_factory.fn(64, 64),
        out_idx=[-1],
        pass_configs={tilelang.PassConfigKey.TL_DISABLE_TMA_LOWER: True},
    )
    assert any(
        "tl.disable_tma_lower=True: T.Pipelined loops copy with cp.async" in line
        for line in k.report
    )
    with pytest.raises(UnsupportedError, match="'tl.config_index_bitwidth'=64 is not supported"):
        tilelang.compile(
            add_factory.fn(64, 64), out_idx=[-1], pass_configs={"tl.config_index_bitwidth": 64}
        )


def test_explain_prints_the_report(cpu_target, monkeypatch, capsys):
    monkeypatch.setenv("TSIR_EXPLAIN", "1")
    tilelang.compile(
        add_factory.fn(64, 128), out_idx=[-1], pass_configs={"tl.enable_fast_math": True}
    )
    assert (
        "[tsir explain] add: pass config tl.enable_fast_math=True: compiled with NVRTC's --use_fast_math"
        in capsys.readouterr().err
    )


def test_missing_tilelang_names_raise_naming_the_feature():
    with pytest.raises(MissingFeature, match="TileLang's `T.rng_init`"):
        T.rng_init
    with pytest.raises(MissingFeature, match="Hopper work"):
        T.warpgroup_wait
    with pytest.raises(MissingFeature, match="Hopper work"):
        T.tma_store_wait
    assert not hasattr(T, "alloc_tmem")
    with pytest.raises(AttributeError):
        T.not_a_tilelang_name


def test_unsupported_arguments_raise(cpu_target):
    def clustered(A: T.Tensor((64,), "float32")):
        with T.Kernel(1, threads=64, cluster_dims=(2, 1, 1)):
            A[0] = 0.0

    with pytest.raises(UnsupportedError, match="cluster_dims"):
        T.prim_func(clustered)
    with pytest.raises(UnsupportedError, match="target 'hip'"):
        tilelang.compile(add_factory.fn(64, 64), target="hip")


def test_dtype_spellings():
    assert T.float == "float32" and T.half == "float16" and T.float16.bits == 16
    assert str(T.bfloat16) == "bfloat16" and T.float8_e4m3fn == "float8_e4m3"
    assert tilelang.next_power_of_2(1000) == 1024 and tilelang.cdiv(10, 4) == 3


def test_autotune_compiles_in_parallel_and_caches_the_winner(cpu_target, tmp_path, monkeypatch):
    from tsir import knobs

    monkeypatch.setenv("TSIR_AUTOTUNE_WORKERS", "2")
    configs = [{"block": b} for b in (16, 32, 64)]
    timed = []

    def make(c):
        return add_factory.compile(128, 128, **c)

    def bench(k):
        timed.append(k)
        return 1.0 / len(timed)  # each config faster than the last: the last one wins

    with knobs.override(cache_dir=tmp_path):
        r = tune(
            make, lambda c: add_factory.fn(128, 128, **c), configs, key_parts=["t"], bench=bench
        )
        assert r.config == configs[-1] and not r.from_cache and len(timed) == 3
        again = tune(
            make, lambda c: add_factory.fn(128, 128, **c), configs, key_parts=["t"], bench=bench
        )
        assert again.from_cache and again.config == configs[-1] and len(timed) == 3
        assert list(tmp_path.glob("autotune/*.json"))


def test_run_aliases_tilelang_modules(tmp_path):
    prog = tmp_path / "prog.py"
    prog.write_text(
        "import tilelang\nimport tilelang.language as T\nfrom tilelang.autotuner import autotune\n"
        "assert T.Kernel is not None and tilelang.jit is not None\n"
        "try:\n    import tilelang.carver.template\nexcept Exception as e:\n    print('ERR', type(e).__name__, e)\n"
        "print('OK')\n"
    )
    out = subprocess.run(
        [sys.executable, "-m", "tsir.compat.tilelang", "run", str(prog)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert (
        "OK" in out.stdout and "UnsupportedError" in out.stdout and "tilelang.carver" in out.stdout
    )
