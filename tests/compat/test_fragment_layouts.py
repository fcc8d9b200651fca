"""TileLang's `T.Fragment` / `T.Layout` (tsir/compat/tilelang/layout.py) as tsir layouts, and the
GQA decode combine kernel's use of them: annotated fragments, an annotation on a T.alloc_local
buffer (reported, no effect), and a fragment read outside T.Parallel by every thread (mirrored)."""

from __future__ import annotations

import numpy as np
import pytest

import tsir
from tsir.compat.tilelang import language as T
from tsir.errors import BuildError
from tsir.interpret import check_stages


def _owner(frag, *idx, rep=0):  # type: ignore[no-untyped-def]
    from tsir.expr import const_value

    return const_value(frag.thread_of(idx, rep)), tuple(const_value(x) for x in frag.forward(idx))


def test_fragment_forms_map_onto_tsir_fragments() -> None:
    by_fn = T.Fragment((16, 128), forward_fn=lambda i, j: (j, i))  # (thread, index)
    assert _owner(by_fn, 3, 77) == (77, (3,))
    thread_only = T.Fragment((128,), forward_thread_fn=lambda i: i)
    assert _owner(thread_only, 5) == (5, (0,))  # one element per thread: register 0
    numbered = T.Fragment((16, 128), forward_thread_fn=lambda i, j: j)
    assert _owner(numbered, 9, 4) == (4, (9,))
    both = T.Fragment((8, 8), forward_thread_fn=lambda i, j: i, forward_index_fn=lambda i, j: 7 - j)
    assert _owner(both, 2, 1) == (2, (6,))
    rep = T.Fragment((4, 32), forward_thread_fn=lambda i, j, r: j + 32 * r, replicate=2)
    assert rep.replicate_size == 2 and _owner(rep, 1, 3, rep=1)[0] == 35
    lay = T.Layout((4, 8), lambda i, j: (j, i))
    assert tuple(int(x.value) for x in lay.forward((1, 2))) == (2, 1)


def test_fragment_misuse_is_refused_at_the_users_line() -> None:
    cases = [
        (lambda: T.Fragment((8,)), "give forward_fn, or forward_thread_fn"),
        (
            lambda: T.Fragment((8,), forward_fn=lambda i: (i, 0), forward_index_fn=lambda i: i),
            "drop forward_index_fn",
        ),
        (
            lambda: T.Fragment((8,), forward_thread_fn=lambda i: 0, forward_index_fn=lambda i: 0),
            "share a register",
        ),
        (
            lambda: T.Fragment((8,), forward_thread_fn=lambda i: 0, replicate=0),
            "replicate must be an int >= 1",
        ),
    ]
    for build, text in cases:
        with pytest.raises(BuildError, match=text) as e:
            build()
        assert e.value.loc is not None and e.value.loc.filename == __file__


def combine_like(heads: int, num_split: int, dim: int, threads: int):  # type: ignore[no-untyped-def]
    """The GQA decode combine kernel with its max taken in a T.Parallel nest (the split path's
    column reduction of an annotated layout belongs to the reductions work)."""

    @T.prim_func
    def combine(
        glse: T.Tensor([heads, num_split], "float32"),
        part: T.Tensor([heads, num_split, dim], "float32"),
        out: T.Tensor([heads, dim], "float32"),
    ):
        with T.Kernel(heads, threads=threads) as by:
            o_accum = T.alloc_fragment([dim], "float32")
            lse_logsum = T.alloc_local([1], "float32")
            lse_max = T.alloc_fragment([threads], "float32")
            scale = T.alloc_local([1], "float32")
            T.annotate_layout(
                {
                    lse_logsum: T.Fragment(lse_logsum.shape, forward_thread_fn=lambda i: i),
                    lse_max: T.Fragment(lse_max.shape, forward_thread_fn=lambda i: i),
                }
            )
            T.clear(lse_logsum)
            T.clear(o_accum)
            for j in T.Parallel(threads):
                lse_max[j] = glse[by, 0]
                for k in T.serial(num_split - 1):
                    lse_max[j] = T.max(lse_max[j], glse[by, k + 1])
            for k in T.Pipelined(num_split, num_stages=1):
                lse_logsum[0] += T.exp2(glse[by, k] - lse_max[0])
            lse_logsum[0] = T.log2(lse_logsum[0]) + lse_max[0]
            for k in T.serial(num_split):
                scale[0] = T.exp2(glse[by, k] - lse_logsum[0])
                for i in T.Parallel(dim):
                    o_accum[i] += part[by, k, i] * scale[0]
            for i in T.Parallel(dim):
                out[by, i] = o_accum[i]

    return combine


@pytest.mark.parametrize("threads", [64, 128])
def test_combine_kernel_reads_its_annotated_maximum_outside_t_parallel(threads: int) -> None:
    heads, num_split, dim = 3, 5, 64
    func = combine_like(heads, num_split, dim, threads)
    rng = np.random.default_rng(0)
    glse = rng.standard_normal((heads, num_split)).astype(np.float32)
    part = rng.standard_normal((heads, num_split, dim)).astype(np.float32)
    report = check_stages(func, [glse, part, np.zeros((heads, dim), np.float32)], target="sm_80")
    assert report.ok, str(report)
    lse = np.log2(np.exp2(glse - glse.max(1, keepdims=True)).sum(1)) + glse.max(1)
    want = (part * np.exp2(glse - lse[:, None])[:, :, None]).sum(1)
    np.testing.assert_allclose(report.reference[2], want, rtol=1e-5, atol=1e-5)
    notes = [d.message for d in tsir.lower(func, "sm_80").report]
    assert any("T.annotate_layout of `lse_logsum` has no effect" in n for n in notes)
    assert any("`lse_max` is read outside T.Parallel" in n for n in notes)


@pytest.mark.gpu
def test_combine_kernel_on_the_gpu() -> None:
    torch = pytest.importorskip("torch")
    import tsir.compat.tilelang as tilelang

    heads, num_split, dim = 32, 16, 128
    k = tilelang.compile(combine_like(heads, num_split, dim, 128), out_idx=[2])
    glse = torch.randn(heads, num_split, device="cuda")
    part = torch.randn(heads, num_split, dim, device="cuda")
    out = k(glse, part)
    lse = torch.logsumexp(glse * 0.6931471805599453, dim=1) / 0.6931471805599453  # log2-sum-exp2
    want = (part * torch.exp2(glse - lse[:, None])[:, :, None]).sum(1)
    torch.testing.assert_close(out, want, rtol=1e-4, atol=1e-4)
