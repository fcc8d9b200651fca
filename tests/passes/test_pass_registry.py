"""Passes are registered by their own name, callable through apache-tvm-ffi, and pure."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import tvm_ffi
from tsir.passes import default_pipeline, registered

import tsir
from tsir import T
from tsir.visitor import collect

EXPECTED_ORDER = [
    "Verify",
    "InjectSoftwarePipeline",
    "LayoutInference",
    "LowerTileOp",
    "LowerCPEngineIntrin",
    "LegalizeSafeMemoryAccess",
    "VectorizeLoop",
    "LowerSharedLayout",
    "InjectAsyncCopy",
    "Simplify",
    "WarpSpecialize",
    "InjectWgmmaSync",
    "ThreadSync",
    "InjectPingPong",
    "PlanSharedMemory",
    "SplitHostDevice",
]


def small() -> tsir.PrimFunc:
    with T.prim_func("small") as f:
        A = T.param("A", (256,), "float32")
        with T.Kernel(1, threads=64):
            S = T.alloc_shared((256,), "float32")
            T.copy(A, S)
            for i in T.Parallel(256):
                A[i] = S[255 - i]
    return f.func


def test_registered_names_match_the_pass_names() -> None:
    for name, p in registered().items():
        assert p.name == name
        assert p.doc, f"pass {name} has no docstring"


def test_pipeline_order() -> None:
    assert [p.name for p in default_pipeline()] == EXPECTED_ORDER


def test_every_pass_is_a_tvm_ffi_global_function() -> None:
    f = small()
    fn = tvm_ffi.get_global_func("tsir.transform.LowerTileOp")
    out = fn(f, "sm_90a")
    assert isinstance(out, tsir.PrimFunc)
    assert not any(x.kind is tsir.ForKind.PARALLEL for x in collect(out, tsir.For))
    assert not collect(out, tsir.TileOpStmt)
    for name in registered():
        assert tvm_ffi.get_global_func(f"tsir.transform.{name}") is not None


def test_lower_returns_every_stage_and_leaves_the_input_alone() -> None:
    f = small()
    text = str(f)
    lowered = tsir.lower(f, "sm_90a")
    assert [n for n, _ in lowered.stages] == ["input", *EXPECTED_ORDER]
    assert isinstance(lowered.module, tsir.Module)
    assert str(f) == text


def test_dump_ir_writes_one_file_per_pass(tmp_path: os.PathLike, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TSIR_DUMP_IR", str(tmp_path))
    tsir.lower(small(), "sm_90a")
    names = sorted(os.listdir(tmp_path))
    assert len(names) == len(EXPECTED_ORDER)
    assert names[0] == "small.00.Verify.txt" and names[-1] == "small.15.SplitHostDevice.txt"


def test_verify_after_every_pass(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Every pass leaves well-formed IR, on kernels with fragments, gemm, pipelines, reductions."""
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "examples"))
    from gemm import matmul
    from softmax import column_sum_atomic, prefix_sum_rows, softmax

    monkeypatch.setenv("TSIR_VERIFY", "1")
    for f in (
        small(),
        matmul(256, 256, 256),
        matmul(None, 256, 512, epilogue="bias_relu", out_dtype="float32"),
        softmax(1024, 2),
        column_sum_atomic(1024),
        prefix_sum_rows(256),
    ):
        tsir.lower(f, "sm_90a")


def test_every_registered_pass_has_its_own_test_file() -> None:
    """CONVENTIONS 1: `passes/<module>.py` defining a pass is tested in
    `tests/passes/test_<module>.py`."""
    import inspect
    from pathlib import Path

    here = Path(__file__).resolve().parent
    missing = []
    for name, p in registered().items():
        module = Path(inspect.getfile(p.fn)).stem
        if not (here / f"test_{module}.py").exists():
            missing.append(f"{name} (passes/{module}.py): tests/passes/test_{module}.py")
    assert not missing, f"passes without their own test file: {missing}"


def _python(code: str) -> None:
    """Run `code` in a fresh interpreter (this one imported tvm_ffi long ago), cache off."""
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, TSIR_DISABLE_CACHE="1")
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_passes_register_with_tvm_ffi_whichever_is_imported_first() -> None:
    """Importing the passes does not import tvm_ffi (which imports torch when it is installed);
    the passes register as soon as tvm_ffi loads, and after that tvm_ffi is an ordinary module."""
    check = (
        "from tsir.passes import registered\n"
        "assert registered()\n"
        "for name in registered():\n"
        "    assert tvm_ffi.get_global_func(f'tsir.transform.{name}') is not None, name\n"
    )
    _python(
        "import sys, importlib.machinery\n"
        "import tsir.passes\n"
        "assert 'tvm_ffi' not in sys.modules\n"
        "import tvm_ffi\n"
        "assert isinstance(tvm_ffi.__loader__, importlib.machinery.SourceFileLoader)\n"
        "assert tvm_ffi.__spec__.loader is tvm_ffi.__loader__\n"
        "assert not [f for f in sys.meta_path if type(f).__module__ == 'tsir.passes.infra']\n"
        "import tvm_ffi.registry\n" + check
    )
    _python("import tvm_ffi\nimport tsir.passes\n" + check)


def test_lowering_and_compiling_leave_tvm_ffi_unimported() -> None:
    """The first tsir.compile (the Hopper GEMM) imports neither tvm_ffi nor, through it, torch."""
    _python(
        "import sys\n"
        "sys.path.insert(0, 'examples')\n"
        "import tsir\n"
        "from gemm import matmul\n"
        "f = matmul(256, 512, 320, bm=128, bn=256, bk=64, threads=256, num_stages=3, persistent=True)\n"
        "tsir.lower(f, 'sm_90a')\n"
        "tsir.compile(f, 'sm_90a')\n"
        "assert 'tvm_ffi' not in sys.modules and 'torch' not in sys.modules\n"
    )
