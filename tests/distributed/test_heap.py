"""The symmetric heap's logic on CPU: ranks are threads sharing an in-process store, the CUDA side is
a fake IPC backend (addresses only). Formation, bump allocation with alignment, the same-order
check, zeroing, peer addresses, scopes and teardown."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fakes import FakeIpc
from tsir.runtime.dist.heap import AllocationOrderError, HeapGroup, SymmetricHeap
from tsir.runtime.dist.store import FileStore, LocalStore, StoreTimeout, all_gather, barrier

from tsir.errors import TSIRError

MiB = 1 << 20


def run_ranks(
    world: int,
    body: Callable[[int, SymmetricHeap], Any],
    nbytes: int = 4 * MiB,
    timeout: float = 5.0,
    store: Any = None,
) -> list[Any]:
    """Form a heap in `world` threads and run `body(rank, heap)` in each; returns results or the
    exceptions raised, in rank order."""
    store = store if store is not None else LocalStore()

    def one(rank: int) -> Any:
        try:
            heap = SymmetricHeap(
                HeapGroup(rank, world, store, "t", timeout), nbytes, FakeIpc(rank=rank), "node"
            )
            return body(rank, heap)
        except Exception as e:  # noqa: BLE001
            return e

    with ThreadPoolExecutor(world) as pool:
        return list(pool.map(one, range(world)))


def test_formation_maps_every_peer() -> None:
    def body(rank: int, h: SymmetricHeap) -> Any:
        assert h.bases[rank] == h.local_base
        assert len(set(h.bases)) == 3
        assert h.backend.memsets == [(h.local_base, 4 * MiB)]  # zeroed at formation
        assert len(h.backend.opened) == 2 and len(h.backend.peer_uuids) == 2
        return h

    heaps = run_ranks(3, body)
    assert all(isinstance(h, SymmetricHeap) for h in heaps), heaps


def test_bump_allocation_aligns_and_is_symmetric() -> None:
    def body(rank: int, h: SymmetricHeap) -> list[int]:
        offsets = []
        for nbytes, align in ((10, 256), (4096, 256), (3, 16), (1, 1024), (0, 256)):
            offsets.append(h.allocate(nbytes, f"uint8[{nbytes}]", align) - h.local_base)
        return offsets

    results = run_ranks(2, body)
    assert results[0] == results[1] == [0, 256, 4352, 5120, 5376]


def test_allocations_in_a_different_order_are_reported_on_every_rank() -> None:
    def body(rank: int, h: SymmetricHeap) -> None:
        h.allocate(64, "float32[16]")
        if rank == 0:
            h.allocate(4096, "float32[1024]")
        else:
            h.allocate(32, "int32[8]")

    errors = run_ranks(2, body)
    for e in errors:
        assert isinstance(e, AllocationOrderError)
        text = str(e)
        assert "symmetric allocation #1 differs between ranks" in text
        assert "rank 0: float32[1024] (4096 bytes, align 256)" in text
        assert "rank 1: int32[8] (32 bytes, align 256)" in text


def test_a_rank_that_never_allocates_is_a_timeout_naming_it() -> None:
    def body(rank: int, h: SymmetricHeap) -> None:
        if rank == 0:
            h.allocate(64, "float32[16]")

    errors = run_ranks(2, body, timeout=0.3)
    assert isinstance(errors[0], StoreTimeout)
    assert "rank 1 did not reach" in str(errors[0]) and "alloc/0" in str(errors[0])


def test_heap_full_is_an_error_on_every_rank() -> None:
    def body(rank: int, h: SymmetricHeap) -> None:
        h.allocate(3 * MiB, "uint8[big]")
        h.allocate(2 * MiB, "uint8[too big]")

    for e in run_ranks(2, body):
        assert isinstance(e, TSIRError) and "symmetric heap is full" in str(e)
        assert "heap_bytes" in str(e)


def test_zeros_reuse_clears_only_memory_that_was_used() -> None:
    def body(rank: int, h: SymmetricHeap) -> list[tuple[int, int]]:
        m = h.mark()
        h.allocate(1000, "a", zero=True)  # fresh memory: still zero from formation
        h.release(m)
        h.allocate(2000, "b", zero=True)  # overlaps the first 1024 bytes
        return [(p - h.local_base, n) for p, n in h.backend.memsets[1:]]

    assert run_ranks(2, body) == [[(0, 1000)], [(0, 1000)]]


def test_peer_addresses_and_containment() -> None:
    def body(rank: int, h: SymmetricHeap) -> None:
        p = h.allocate(128, "x")
        assert (
            h.contains(p, 128)
            and not h.contains(h.local_base - 1)
            and not h.contains(p, 4 * MiB + 1)
        )
        for pe in range(2):
            assert h.peer_address(p, pe) == h.bases[pe] + (p - h.local_base)
        with pytest.raises(TSIRError, match="out of range"):
            h.peer_address(p, 2)
        with pytest.raises(TSIRError, match="not in this rank's symmetric heap"):
            h.peer_address(h.local_base + 8 * MiB, 0)

    assert run_ranks(2, body) == [None, None]


def test_close_unmaps_before_freeing_and_waits_for_peers() -> None:
    order: list[str] = []
    lock = threading.Lock()

    def body(rank: int, h: SymmetricHeap) -> None:
        h.close()
        with lock:
            order.append(f"closed{len(h.backend.closed)} freed{len(h.backend.freed)}")
        assert h.closed and not h.contains(h.local_base)
        with pytest.raises(TSIRError, match="freed by dist.finalize"):
            h.allocate(8, "x")

    run_ranks(3, body)
    assert order == ["closed2 freed1"] * 3


def test_close_with_a_dead_peer_still_frees() -> None:
    def body(rank: int, h: SymmetricHeap) -> int:
        if rank == 1:
            return -1  # "dies": never closes
        h.close(timeout=0.2)
        return len(h.backend.freed)

    assert run_ranks(2, body) == [1, -1]


def test_ranks_on_different_nodes_or_heap_sizes_are_refused() -> None:
    store = LocalStore()

    def one(rank: int) -> Any:
        try:
            return SymmetricHeap(
                HeapGroup(rank, 2, store, "n", 2.0), MiB * (1 + rank), FakeIpc(rank=rank), "node"
            )
        except TSIRError as e:
            return e

    with ThreadPoolExecutor(2) as pool:
        a, b = pool.map(one, range(2))
    assert "same heap_bytes" in str(a) and "same heap_bytes" in str(b)

    def other(rank: int) -> Any:
        try:
            return SymmetricHeap(
                HeapGroup(rank, 2, store, "m", 2.0), MiB, FakeIpc(rank=rank), f"host{rank}/x"
            )
        except TSIRError as e:
            return e

    with ThreadPoolExecutor(2) as pool:
        a, b = pool.map(other, range(2))
    assert "spans one node" in str(a)


def test_bad_sizes() -> None:
    with pytest.raises(TSIRError, match="multiple of 256"):
        SymmetricHeap(HeapGroup(0, 1, LocalStore(), "s", 1.0), 1000, FakeIpc(), "node")
    h = SymmetricHeap(HeapGroup(0, 1, LocalStore(), "s", 1.0), MiB, FakeIpc(), "node")
    with pytest.raises(TSIRError, match="power of two"):
        h.allocate(8, "x", align=24)


def test_file_store_exchange(tmp_path) -> None:
    store = FileStore(tmp_path / "s")
    with ThreadPoolExecutor(3) as pool:
        got = list(pool.map(lambda r: all_gather(store, "k", r, 3, bytes([r]), 5.0), range(3)))
    assert got == [[b"\0", b"\1", b"\2"]] * 3
    with pytest.raises(StoreTimeout, match="rank 1 did not reach `b`"):
        barrier(store, "b", 0, 2, 0.1)
