"""The escape hatch (T.import_source, T.call_extern, T.address_of) and T.print: what the CUDA
holds, the conservative memory effects of an extern call, the interpreter's refusal to run
hand-written CUDA and its printing, the printer round trip, misuse, and GPU runs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import tsir
from tsir import T
from tsir.errors import BuildError
from tsir.interpret import ExternCallError, interpret
from tsir.printer import print_func, rebuild

SOURCE = """
__device__ __forceinline__ float scaled(float x, float s) { return x * s; }
__device__ void bump(float* p, int n) { for (int i = 0; i < n; ++i) p[i] += 1.0f; }
"""


def extern_kernel(n: int = 128, threads: int = 128) -> tsir.PrimFunc:
    with T.prim_func("ext") as f:
        X = T.param("X", (n,), "float32")
        Y = T.param("Y", (n,), "float32")
        with T.Kernel(1, threads=threads):
            T.import_source(SOURCE)
            tx = T.get_thread_binding()
            S = T.alloc_shared((n,), "float32")
            for i in T.Parallel(n):
                S[i] = X[i]
            with T.If(tx == 0):
                T.call_extern("handle", "bump", T.address_of(S[0]), n)
            for i in T.Parallel(n):
                v = T.call_extern("float32", "scaled", S[i], 2.0)
                Y[i] = v + v
    return f.func


def test_the_source_precedes_the_kernels_and_the_calls_are_made() -> None:
    for target in ("sm_80", "sm_90a"):
        k = tsir.compile(extern_kernel(), target=target)
        src = k.cuda_source
        assert k.cubin[:4] == b"\x7fELF"
        assert src.index("__device__ void bump") < src.index('extern "C" __global__')
        assert "bump(&S[0], 128);" in src
        # A value call runs once, into a variable, however often the value is used.
        assert src.count("scaled(") == 2  # the definition and one call
        assert "v[0] = scaled(S[tx], 2.0f);" in src and "Y[tx] = v[0] + v[0];" in src


def test_an_extern_call_is_fenced_by_barriers_around_the_memory_it_gets() -> None:
    """Conservatively, `bump` reads and writes all of S: a barrier before it (after the
    parallel writes of S) and one after it (before S is read again)."""
    src = tsir.compile(extern_kernel(), target="sm_80").cuda_source
    body = src[src.index('extern "C" __global__') :]
    first_store = body.index("S[tx] = X[tx]")
    call = body.index("bump(&S[0]")
    read = body.index("scaled(S[")
    assert "__syncthreads();" in body[first_store:call]
    assert "__syncthreads();" in body[call:read]


def test_the_interpreter_names_the_extern_function() -> None:
    x = np.ones(128, np.float32)
    with pytest.raises(ExternCallError, match="`bump` is hand-written CUDA .* checked on the GPU"):
        interpret(extern_kernel(), x, np.zeros_like(x))


def test_imports_and_extern_calls_print_and_rebuild() -> None:
    func = extern_kernel()
    text = print_func(func)
    assert '"tsir.import_source"' in text and '"extern:bump"' in text
    tsir.assert_structural_equal(rebuild(text), func)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda X: T.call_extern("float32", "not a name", X[0]), r"must be a C identifier"),
        (lambda X: T.import_source("   "), r"takes CUDA source text"),
        (lambda X: T.address_of(X), r"takes one element of a buffer"),
        (lambda X: T.print(), r"needs something to print"),
        (lambda X: T.print(X[0], msg=3), r"msg must be a string"),
    ],
)
def test_misuse_names_the_line(build, message) -> None:  # type: ignore[no-untyped-def]
    with T.prim_func("f"):
        X = T.param("X", (4,), "float32")
        with T.Kernel(1, threads=32):
            with pytest.raises(BuildError, match=message) as e:
                build(X)
    assert e.value.loc is not None and "lambda X:" in e.value.loc.line


def test_extern_calls_need_a_kernel() -> None:
    with T.prim_func("f"):
        T.param("X", (4,), "float32")
        with pytest.raises(BuildError, match=r"T.call_extern\(`foo`\) must be inside a T.Kernel"):
            T.call_extern("handle", "foo", 1)


def print_kernel(threads: int = 64) -> tsir.PrimFunc:
    with T.prim_func("pr") as f:
        X = T.param("X", (2, 3), "float16")
        N = T.param("N", (2,), "int32")
        with T.Kernel(2, threads=threads) as bx:
            tx = T.get_thread_binding()
            F = T.alloc_fragment((2, 3), "float16")
            T.copy(X, F)
            T.print(F, msg="frag")
            with T.If(tx < 2):
                T.print(N[tx] * 3)
            with T.If(tx == 33):
                T.print(msg="hello")
            L = T.alloc_local((2,), "int32")
            L[0] = tx
            L[1] = bx
            with T.If(tx == 5):
                T.print(L)
    return f.func


EXPECTED = [
    *(
        f"msg='frag' BlockIdx=({b}, 0, 0), ThreadIdx=(0, 0, 0): buffer=F, index={i}, "
        f"dtype=float16 value={float(i):f}"
        for b in range(2)
        for i in range(6)
    ),
    *(
        f"msg='expr<N[tx] * 3>' BlockIdx=({b}, 0, 0), ThreadIdx=({t}, 0, 0): dtype=int32 "
        f"value={(7 + t) * 3}"
        for b in range(2)
        for t in range(2)
    ),
    *(f"msg='hello' BlockIdx=({b}, 0, 0), ThreadIdx=(33, 0, 0)" for b in range(2)),
    *(
        f"msg='buffer<L, int32>' BlockIdx=({b}, 0, 0), ThreadIdx=(5, 0, 0): buffer=L, "
        f"index={i}, dtype=int32 value={(5, b)[i]}"
        for b in range(2)
        for i in range(2)
    ),
]


@pytest.mark.parametrize("stage", ["input", "final"])
def test_the_interpreter_prints_what_the_device_prints(stage: str, capsys: Any) -> None:
    func = print_kernel()
    if stage == "final":
        func = tsir.lower(func, "sm_80").stages[-1][1]
    interpret(func, np.arange(6, dtype=np.float16).reshape(2, 3), np.array([7, 8], np.int32))
    lines = capsys.readouterr().out.splitlines()
    assert sorted(lines) == sorted(EXPECTED)


def test_print_compiles() -> None:
    for target in ("sm_80", "sm_90a"):
        src = tsir.compile(print_kernel(96), target=target).cuda_source
        assert 'tsir::print_buffer_value("frag", "F", ' in src


@pytest.mark.gpu
def test_extern_calls_on_the_gpu() -> None:
    torch = pytest.importorskip("torch")
    k = tsir.compile(extern_kernel())
    x = torch.randn(128, device="cuda")
    y = torch.full_like(x, float("nan"))
    k(x, y)
    torch.testing.assert_close(y, 4 * (x + 1))


@pytest.mark.gpu
def test_print_on_the_gpu(capfd) -> None:  # type: ignore[no-untyped-def]
    torch = pytest.importorskip("torch")
    k = tsir.compile(print_kernel())
    k(
        torch.arange(6, device="cuda", dtype=torch.float16).reshape(2, 3),
        torch.tensor([7, 8], device="cuda", dtype=torch.int32),
    )
    torch.cuda.synchronize()
    lines = capfd.readouterr().out.splitlines()
    assert sorted(x for x in lines if x.startswith("msg=")) == sorted(EXPECTED)
