"""T.alloc_global (tsir/builder/views.py): scratch global memory the launcher allocates for each
call and passes to the kernels as a hidden argument. The IR at every stage against the
interpreter, the host program and the generated launcher (workspace code only where a function
has one), NVRTC, and a GPU run against torch (marked gpu)."""

from __future__ import annotations

import numpy as np
import pytest
from tsir.runtime.host_program import WorkspaceParam
from tsir.runtime.launch_codegen import generate

import tsir
from tsir import T
from tsir.errors import BuildError
from tsir.interpret import check_stages


def two_pass_sum(B: int = 64, threads: int = 64, dynamic: bool = False) -> tsir.PrimFunc:
    """Per-block partial sums into scratch, then a second kernel adds them up."""
    with T.prim_func("two_pass") as f:
        n = T.dynamic("n") if dynamic else 1000
        X = T.param("X", (n,), "float32")
        Y = T.param("Y", (1,), "float32")
        nb = T.ceildiv(n, B)
        with T.Kernel(nb, threads=threads) as bx:
            part = T.alloc_global((nb,) if not dynamic else (n,), "float32")
            S = T.alloc_shared((B,), "float32")
            T.copy(X[bx * B], S)
            tx = T.get_thread_binding(0)
            with T.If(tx == 0):
                acc = T.alloc_local((1,), "float32")
                acc[0] = 0.0
                for i in T.serial(B):
                    acc[0] = acc[0] + S[i]
                part[bx] = acc[0]
        with T.Kernel(1, threads=32):
            tx = T.get_thread_binding(0)
            with T.If(tx == 0):
                acc = T.alloc_local((1,), "float32")
                acc[0] = 0.0
                for i in T.serial(nb):
                    acc[0] = acc[0] + part[i]
                Y[0] = acc[0]
    return f.func


@pytest.mark.parametrize("dynamic", [False, True])
def test_scratch_shared_by_two_kernels_matches_at_every_stage(dynamic: bool) -> None:
    x = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
    report = check_stages(
        two_pass_sum(dynamic=dynamic), [x, np.zeros(1, np.float32)], target="sm_80"
    )
    assert report.ok, str(report)
    np.testing.assert_allclose(report.reference[1], [x.sum()], rtol=1e-4)


def test_the_launcher_allocates_scratch_only_for_functions_that_have_some() -> None:
    k = tsir.compile(two_pass_sum(dynamic=True), target="sm_80")
    assert k.program.workspaces == (WorkspaceParam("part", "float32", ("n",)),)
    assert [a.name for a in k.program.steps[0].args][:2] == ["X", "part"]
    fast = generate(k.program).source
    assert "_ws_alloc(4 * s_n, cs)" in fast and "_ws_free(w0, cs)" in fast
    with T.prim_func("plain") as f:
        A = T.param("A", (64,), "float32")
        with T.Kernel(1, threads=64):
            for i in T.Parallel(64):
                A[i] = A[i] + 1.0
    assert "_ws_" not in generate(tsir.compile(f.func, target="sm_80").program).source


@pytest.mark.parametrize("target", ["sm_80", "sm_90a"])
def test_alloc_global_compiles(target: str) -> None:
    k = tsir.compile(two_pass_sum(), target=target)
    assert "float* __restrict__ part" in k.cuda_source and k.cubin[:4] == b"\x7fELF"


def test_alloc_global_rebuilds_from_its_printed_form() -> None:
    func = two_pass_sum()
    ns = {"T": T, "tsir": tsir}
    exec(str(func), ns)  # noqa: S102  (the printer's own output)
    assert tsir.structural_equal(ns["f"].func, func)


def test_alloc_global_in_another_scope_is_refused() -> None:
    with pytest.raises(BuildError, match="scope must be 'global'") as e:
        with T.prim_func("f"):
            with T.Kernel(1, threads=32):
                T.alloc_global((4,), "float32", scope="shared")
    assert e.value.loc is not None and e.value.loc.filename == __file__


@pytest.mark.gpu
def test_alloc_global_on_the_gpu() -> None:
    torch = pytest.importorskip("torch")
    k = tsir.compile(two_pass_sum(dynamic=True), target="cuda")
    for n in (1000, 4096, 77):
        x = torch.randn(n, device="cuda")
        y = torch.zeros(1, device="cuda")
        for _ in range(3):  # fresh scratch each call
            k(x, y)
        torch.testing.assert_close(y, x.sum().reshape(1), rtol=1e-4, atol=1e-3)
