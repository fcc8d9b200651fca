"""NVRTC's warm-up thread (runtime/warmup.py): it changes no result, surfaces no error of its own,
counts as no compile, runs only when `tsir.compile` lowers, and never holds up the interpreter."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from tsir.runtime import cache, nvrtc, program, warmup

import tsir
from tsir import T, knobs
from tsir.errors import CompileError
from tsir.target import Target

ROOT = Path(__file__).resolve().parents[2]


def half_scale() -> tsir.PrimFunc:
    """A small kernel whose CUDA includes cuda_fp16.h, like every fp16 kernel tsir generates."""
    with T.prim_func("half_scale") as f:
        A = T.param("A", (256,), "float16")
        with T.Kernel(1, threads=128):
            for i in T.Parallel(256):
                A[i] = A[i] * T.float16(2)
    return f.func


@pytest.fixture
def fresh_warmup(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The warm-up state of a process that has not compiled yet (restored afterwards)."""
    warmup.wait()  # a warm-up left by an earlier test finishes first
    monkeypatch.setattr(warmup, "_started", False)
    monkeypatch.setattr(warmup, "_thread", None)
    yield
    warmup.wait()


def _compile(warm: bool) -> tuple[bytes, bool]:
    """(cubin, whether a warm-up thread ran) of a first `tsir.compile` with the cache off."""
    warmup.wait()
    warmup._started = False
    warmup._thread = None
    with knobs.override(nvrtc_warmup=warm, disable_cache=True):
        kernel = tsir.compile(half_scale(), "sm_90a")
    return kernel.cubin, warmup._thread is not None


def test_the_warmup_leaves_the_cubin_unchanged(fresh_warmup: None) -> None:
    cold, ran_cold = _compile(warm=False)
    warm, ran_warm = _compile(warm=True)
    assert ran_warm and not ran_cold
    assert warm == cold


def test_the_warmup_runs_once_per_process_in_a_daemon_thread(fresh_warmup: None) -> None:
    warmup.start(Target.parse("sm_90a"))
    first = warmup._thread
    assert first is not None and first.daemon
    warmup.start(Target.parse("sm_80"))
    assert warmup._thread is first
    warmup.wait()
    assert not first.is_alive()
    warmup.start(Target.parse("sm_90a"))  # after `wait` NVRTC is set up: nothing to start
    assert warmup._thread is first


def test_the_knob_turns_the_warmup_off(fresh_warmup: None) -> None:
    with knobs.override(nvrtc_warmup=False):
        warmup.start(Target.parse("sm_90a"))
    assert warmup._thread is None


def test_the_warmup_is_no_compile_and_no_cache_entry(fresh_warmup: None, tsir_cache: Path) -> None:
    warmup.start(Target.parse("sm_90a"))
    warmup.wait()
    assert cache.stats().compiles == 0 and cache.stats().writes == 0
    assert not list(tsir_cache.glob("nvrtc/**/*.tsirc"))


def test_a_cached_lowering_starts_no_warmup(fresh_warmup: None, tsir_cache: Path) -> None:
    tsir.compile(half_scale(), "sm_90a")
    warmup._started = False
    warmup._thread = None
    kernel = tsir.compile(half_scale(), "sm_90a")
    assert kernel.binary.cache_hit
    assert warmup._thread is None


def test_compiles_beside_a_warmup_agree(fresh_warmup: None) -> None:
    """NVRTC runs the warm-up and several real compiles at once; every cubin is the same."""
    source = tsir.compile(half_scale(), "sm_90a").cuda_source
    expected = nvrtc.compile_cuda(source, "sm_90a", use_cache=False).cubin
    warmup._started = False
    results: list[bytes] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            results.append(nvrtc.compile_cuda(source, "sm_90a", use_cache=False).cubin)
        except BaseException as exc:  # reported below
            errors.append(exc)

    warmup.start(Target.parse("sm_90a"))
    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and results == [expected] * 3


def test_a_missing_nvrtc_is_reported_by_the_compile_not_the_warmup(
    fresh_warmup: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The warm-up swallows the failure (it prints nothing); the compile raises it, as it does
    without a warm-up."""

    def missing() -> None:
        raise CompileError("NVRTC is not available: the Python package cuda-bindings is missing")

    monkeypatch.setattr(program, "nvrtc_bindings", missing)
    monkeypatch.setattr(nvrtc, "_nvrtc", missing)
    nvrtc.nvrtc_version.cache_clear()
    try:
        with knobs.override(disable_cache=True):
            with pytest.raises(CompileError, match="cuda-bindings is missing"):
                tsir.compile(half_scale(), "sm_90a")
        assert warmup._thread is None  # it gave up before starting a thread
    finally:
        monkeypatch.undo()
        nvrtc.nvrtc_version.cache_clear()
    assert capsys.readouterr() == ("", "")


def test_errors_of_the_source_still_come_from_the_compile(fresh_warmup: None) -> None:
    warmup.start(Target.parse("sm_90a"))
    with pytest.raises(nvrtc.NvrtcError, match="bad.cu"):
        nvrtc.compile_cuda("this is not C++", "sm_90a", filename="bad.cu", use_cache=False)


def test_a_process_exits_while_the_warmup_runs() -> None:
    """Exit right after starting it: the interpreter waits for the compile in flight (atexit),
    then ends normally; nothing is printed."""
    code = (
        "from tsir.runtime import warmup\n"
        "from tsir.target import Target\n"
        "warmup.start(Target.parse('sm_90a'))\n"
        "assert warmup._thread.is_alive()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_the_first_hopper_gemm_cubin_is_the_same_with_and_without_the_warmup(
    tmp_path: Path,
) -> None:
    """The first compile of a fresh process (the case the warm-up is for), once warming NVRTC up
    and once not, of the Hopper GEMM: the same cubin."""
    code = (
        "import hashlib, sys\n"
        "sys.path.insert(0, 'examples')\n"
        "import tsir\n"
        "from gemm import matmul\n"
        "f = matmul(256, 512, 320, bm=128, bn=256, bk=64, threads=256, num_stages=3, persistent=True)\n"
        "kernel = tsir.compile(f, target='sm_90a')\n"
        "from tsir.runtime import warmup\n"
        "print(warmup._thread is not None, hashlib.sha256(kernel.cubin).hexdigest())\n"
    )
    outputs = []
    for warm in ("1", "0"):
        env = dict(
            os.environ, TSIR_NVRTC_WARMUP=warm, TSIR_DISABLE_CACHE="1", TSIR_CACHE_DIR=str(tmp_path)
        )
        done = subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout.split())
    (ran, with_warmup), (ran_without, without) = outputs
    assert (ran, ran_without) == ("True", "False")
    assert with_warmup == without and len(without) == len(hashlib.sha256().hexdigest())
