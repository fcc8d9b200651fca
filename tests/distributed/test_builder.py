"""The distributed names of `tsir.T`: the IR they build, their printed builder form, and every
error they raise (with the user's line as its location)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import tsir
from tsir import T
from tsir.builder import dist_lang
from tsir.errors import BuildError
from tsir.stmt import TileOpStmt
from tsir.tileop import BarrierBlocksOp, GetOp, LdOp, PutOp, StOp, WaitOp
from tsir.visitor import collect


def build(body: Callable[..., None], threads: int = 128) -> tsir.PrimFunc:
    with T.prim_func("k") as f:
        S = T.param("S", (1024,), "float32", scope="symmetric")
        D = T.param("D", (1024,), "float32", scope="symmetric")
        G = T.param("G", (1024,), "float32")
        F = T.param("F", (8,), "int32", scope="symmetric")
        with T.Kernel(2, threads=threads):
            body(S, D, G, F)
    return f.func


def ops(f: tsir.PrimFunc) -> list[Any]:
    return [s.op for s in collect(f.body, TileOpStmt)]


def error_of(body: Callable[..., None]) -> BuildError:
    with pytest.raises(BuildError) as info:
        build(body)
    e = info.value
    assert e.loc is not None and e.loc.filename == __file__, (
        "the error must point at the test's line"
    )
    return e


@pytest.fixture(autouse=True)
def no_group(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dist_lang, "world_size_hint", None)


def test_ops_and_their_fields() -> None:
    def body(S, D, G, F):
        peer = (T.get_rank() + 1) % T.get_num_ranks()
        T.put_block(S, D[8], 100, dst_pe=peer)
        T.get_warp(S[4], G, 7, src_pe=1)
        T.st(F[1], 3, scope="sys", sem="release", dst_pe=peer)
        v = T.ld(F[2], sem="acquire", scope="gpu")
        G[0] = T.cast(v, "float32")
        T.wait_ge(F[0], 2, timeout_cycles=1000)
        T.barrier_blocks(F)
        T.sync_blocks(F[0])

    put, get, st, ld, wait, bar, sync = ops(build(body))
    assert isinstance(put, PutOp) and put.scope == "block" and put.dst.indices[0].value == 8
    assert (
        isinstance(get, GetOp)
        and get.scope == "warp"
        and get.pe.value == 1
        and get.src.indices[0].value == 4
    )
    assert isinstance(st, StOp) and (st.sem, st.scope, st.na) == ("release", "sys", False)
    assert st.value.dtype == tsir.dtype("int32")
    assert (
        isinstance(ld, LdOp)
        and (ld.sem, ld.scope) == ("acquire", "gpu")
        and ld.value.buffer.scope == "local.var"
    )
    assert (
        isinstance(wait, WaitOp) and wait.scope == "sys" and wait.timeout_cycles == 1000
    )  # symmetric flag
    assert isinstance(bar, BarrierBlocksOp) and bar.fence and not sync.fence


def test_printed_builder_form() -> None:
    def body(S, D, G, F):
        peer = (T.get_rank() + 1) % T.get_num_ranks()
        T.put_warp(S[1], D[2], 30, dst_pe=peer)
        T.get_block(S, G, 1024, src_pe=0)
        T.st(D[0], 1.5, na=True)
        T.st(F[0], 1, scope="sys", sem="relaxed")
        T.wait_eq(F[1], 7, peer=peer, timeout_cycles=5)
        T.wait_ne(F[1], 0, scope="gpu")
        T.fence_sys()
        T.barrier_blocks(F, timeout_cycles=9)

    text = str(build(body))
    for line in (
        "T.put_warp(S[1], D[2], 30, dst_pe=(T.get_rank() + 1) % T.get_num_ranks())",
        "T.get_block(S[0], G[0], 1024, src_pe=0)",
        "T.st(D[0], 1.5, na=True)",
        'T.st(F[0], 1, scope="sys", sem="relaxed")',
        "T.wait_eq(F[1], 7, peer=(T.get_rank() + 1) % T.get_num_ranks(), timeout_cycles=5)",
        'T.wait_ne(F[1], 0, scope="gpu")',
        "T.fence_sys()",
        "T.barrier_blocks(F[0], timeout_cycles=9)",
    ):
        assert line in text, f"{line!r} not in\n{text}"


def test_shuffle_elect_and_votes() -> None:
    def body(S, D, G, F):
        with T.If(T.shuffle_elect(64)):
            G[0] = 1.0
        with T.If(T.warp_any(T.get_thread_binding() > 3)):
            G[1] = 2.0

    f = build(body)
    text = str(f)
    assert "tx % 64 == 0" in text and "__any_sync" in text


@pytest.mark.parametrize(
    "body, message",
    [
        (
            lambda S, D, G, F: T.put_block(S, G, 4, dst_pe=1),
            "`G` is in global memory, but the remote side (dst) must be symmetric",
        ),
        (
            lambda S, D, G, F: T.get_warp(G, D, 4, src_pe=1),
            "`G` is in global memory, but the remote side (src) must be symmetric",
        ),
        (lambda S, D, G, F: T.put_block(S, F, 4, dst_pe=1), "needs one dtype"),
        (lambda S, D, G, F: T.put_block(S, D, 4, dst_pe=-1), "dst_pe=-1 is not a rank"),
        (lambda S, D, G, F: T.put_block(S, D, 4, dst_pe=64), "dst_pe=64 is out of range"),
        (lambda S, D, G, F: T.put_block(S, D, -1, dst_pe=0), "size -1 is negative"),
        (
            lambda S, D, G, F: T.put_block(S[1000], D, 100, dst_pe=0),
            "runs past its end (1024 elements)",
        ),
        (lambda S, D, G, F: T.put_block(S, D, 4.5, dst_pe=0), "size must be a number of elements"),
        (lambda S, D, G, F: T.put_block(S, D, 4, dst_pe=1.0), "must be an integer rank"),
        (
            lambda S, D, G, F: T.put_block(T.alloc_var("float32"), D, 1, dst_pe=0),
            "in local.var memory",
        ),
        (lambda S, D, G, F: T.st(F[0], 1, sem="acquire"), 'did you mean sem="release"'),
        (lambda S, D, G, F: T.ld(F[0], sem="release"), 'did you mean sem="acquire"'),
        (lambda S, D, G, F: T.st(F[0], 1, scope="sys"), "sem='weak' takes no scope"),
        (
            lambda S, D, G, F: T.ld(F[0], sem="volatile", scope="cta"),
            "sem='volatile' takes no scope",
        ),
        (
            lambda S, D, G, F: T.st(F[0], 1, sem="relaxed", scope="device"),
            "scope must be one of cta, gpu, sys",
        ),
        (
            lambda S, D, G, F: T.ld(F[0], sem="relaxed", scope="gpu", nc=True),
            "nc=True (the non-coherent",
        ),
        (
            lambda S, D, G, F: T.ld(F[0], sem="volatile", na=True),
            'cannot be combined with sem="volatile"',
        ),
        (
            lambda S, D, G, F: T.ld(T.alloc_shared((4,), "int32")[0], na=True),
            "apply to global memory",
        ),
        (lambda S, D, G, F: T.st(G[0], 1.0, dst_pe=1), "the remote destination must be symmetric"),
        (lambda S, D, G, F: T.wait_eq(S[0], 1.0), "flags are int32, uint32, int64, uint64"),
        (
            lambda S, D, G, F: T.wait_eq(F[0], 1, timeout_cycles=0),
            "timeout_cycles must be a positive int",
        ),
        (lambda S, D, G, F: T.wait_eq(G[0], 1, peer=1), "must be symmetric"),
        (lambda S, D, G, F: T.barrier_blocks(D), "must be int32"),
        (
            lambda S, D, G, F: T.barrier_blocks(T.alloc_shared((4,), "int32")),
            "the barrier buffer must be symmetric",
        ),
        (
            lambda S, D, G, F: T.atom_add(T.alloc_shared((4,), "int32")[0], 1),
            "atom_add works on global memory",
        ),
        (lambda S, D, G, F: T.atom_add(F[0], 1, sem="weak"), "sem must be one of relaxed"),
        (lambda S, D, G, F: T.shuffle_elect(-1), "thread_extent must be an int >= 0"),
    ],
)
def test_errors(body: Callable[..., None], message: str) -> None:
    assert message in str(error_of(body))


def test_constant_peers_are_checked_against_the_group(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dist_lang, "world_size_hint", 2)
    e = error_of(lambda S, D, G, F: T.put_block(S, D, 4, dst_pe=2))
    assert "dst_pe=2 is out of range: the group has 2 ranks (0..1)" in str(e)
    e = error_of(lambda S, D, G, F: T.barrier_blocks(F[7]))
    assert "needs 2 int32 slots (one per rank) from element 7, but has 1" in str(e)
    build(lambda S, D, G, F: T.put_block(S, D, 4, dst_pe=1))


def test_outside_a_kernel() -> None:
    with pytest.raises(BuildError, match="must be inside a `with T.Kernel"):
        with T.prim_func("k"):
            F = T.param("F", (8,), "int32", scope="symmetric")
            T.barrier_blocks(F)


def test_alloc_symmetric_is_a_symmetric_parameter() -> None:
    with T.prim_func("k") as f:
        A = T.alloc_symmetric("A", (4,), "int32")
        with T.Kernel(1, threads=32):
            T.st(A[0], 1)
    assert f.func.params[0].scope == "symmetric" and A.scope == "symmetric"


def test_print_rebuild_round_trip() -> None:
    """The printed builder form of every distributed op rebuilds a structurally equal function."""
    from tsir.printer import print_func, rebuild
    from tsir.structural import assert_structural_equal

    def body(S, D, G, F):
        tx = T.get_thread_binding()
        peer = (T.get_rank() + 1) % T.get_num_ranks()
        T.put_block(S[1], D[2], 30, dst_pe=peer)
        T.get_warp(S, G[4], 7, src_pe=0)
        T.put_warp(G, G[100], 5)
        T.st(F[1], 3, scope="sys", sem="release", dst_pe=peer)
        T.st(D[0], 1.5, sem="volatile")
        v = T.alloc_var("int32")
        T.ld(F[2], v[0], scope="gpu", sem="acquire", na=True, src_pe=1)
        T.ld(G[3], G[5], nc=True)
        T.wait_le(F[0], 2, peer=peer, timeout_cycles=99)
        T.wait_gt(F[0], v[0], scope="gpu")
        T.fence_gpu()
        with T.If(T.shuffle_elect(32)):
            T.st(F[tx // 32], 1, sem="relaxed", scope="gpu")
        T.barrier_blocks(F)
        T.sync_blocks(F[0], timeout_cycles=7)

    func = build(body)
    text = print_func(func)
    again = rebuild(text)
    assert_structural_equal(func, again)
    assert print_func(again) == text
