"""The symmetric heap: one device allocation per rank, mapped by every other rank of the node, with
bump allocation that gives each tensor the same offset on every rank.

Formation (collective, with a timeout on every exchange): each rank allocates `nbytes`, zeroes it,
exports an IPC handle and publishes (node, device UUID, size, handle); every rank checks that all
ranks share one node and one heap size, enables peer access to the peer devices it can see, and
maps every peer's heap. `bases[r]` is rank r's heap in *this* process's address space (ours is the
allocation itself); the device rank table holds exactly these.

Allocation is collective too: every rank allocates the same sizes in the same order, so an offset
names the same tensor everywhere. Each allocation publishes a record (sequence number, dtype,
shape, bytes, alignment) and compares it with every other rank's, so an allocation made in a
different order (or with another shape) on some rank is an error on every rank, naming both; a
rank that never makes it is a timeout error naming that rank.

Teardown: synchronize, wait for every rank (nobody may still be writing into our heap), close the
peer mappings, wait again (an exporter must not free before importers closed), free.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from ...errors import TSIRError
from . import store as _store

__all__ = ["SymmetricHeap", "HeapGroup", "AllocationOrderError", "DEFAULT_ALIGN"]

DEFAULT_ALIGN = 256


class AllocationOrderError(TSIRError):
    """Ranks allocated symmetric tensors in a different order or with different shapes."""


class IpcBackend(Protocol):
    device: int

    def alloc(self, nbytes: int) -> int: ...
    def free(self, ptr: int) -> None: ...
    def export(self, ptr: int) -> bytes: ...
    def open(self, handle: bytes) -> int: ...
    def close(self, ptr: int) -> None: ...
    def memset_zero(self, ptr: int, nbytes: int) -> None: ...
    def synchronize(self) -> None: ...
    def uuid(self) -> bytes: ...
    def enable_peer_access(self, peer_uuids: list[bytes]) -> list[int]: ...


@dataclass(frozen=True)
class HeapGroup:
    """What the heap needs of a group: who we are, and how to exchange messages."""

    rank: int
    world_size: int
    store: Any
    prefix: str  # unique per group formation: keys never collide with an earlier group's
    timeout: float

    def all_gather(self, tag: str, value: bytes) -> list[bytes]:
        if self.world_size == 1:
            return [value]
        return _store.all_gather(
            self.store, f"{self.prefix}/{tag}", self.rank, self.world_size, value, self.timeout
        )

    def barrier(self, tag: str, timeout: float | None = None) -> None:
        if self.world_size > 1:
            t = self.timeout if timeout is None else timeout
            _store.barrier(self.store, f"{self.prefix}/{tag}", self.rank, self.world_size, t)


def _sep(*parts: Any) -> bytes:
    return "\x1f".join(str(p) for p in parts).encode()


def _unsep(record: bytes) -> list[str]:
    return record.decode().split("\x1f")


class SymmetricHeap:
    def __init__(self, group: HeapGroup, nbytes: int, backend: IpcBackend, node: str):
        if nbytes <= 0 or nbytes % DEFAULT_ALIGN:
            raise TSIRError(
                f"the symmetric heap size must be a positive multiple of {DEFAULT_ALIGN} bytes, "
                f"got {nbytes}"
            )
        self.group = group
        self.backend = backend
        self.nbytes = nbytes
        self.rank = group.rank
        self.world_size = group.world_size
        self.local_base = backend.alloc(nbytes)
        self._opened: list[int] = []
        self.closed = False
        try:
            backend.memset_zero(self.local_base, nbytes)
            handle = backend.export(self.local_base) if self.world_size > 1 else b""
            mine = _sep(node, backend.uuid().hex(), nbytes) + b"\x1e" + handle
            records = group.all_gather("heap", mine)
            self.bases = self._map_peers(records, node)
            group.barrier("heap-mapped")
        except BaseException:
            self._release_mappings()
            backend.free(self.local_base)
            raise
        self.offset = 0  # next free byte
        self.high_water = 0  # bytes below this may have been written; above, still zero from init
        self.count = 0  # allocations made

    def _map_peers(self, records: list[bytes], node: str) -> list[int]:
        infos = []
        for r, rec in enumerate(records):
            head, _, handle = rec.partition(b"\x1e")
            r_node, r_uuid, r_bytes = _unsep(head)
            infos.append((r_node, bytes.fromhex(r_uuid), int(r_bytes), handle))
        for r, (r_node, _, r_bytes, _) in enumerate(infos):
            if r_node != node:
                raise TSIRError(
                    f"rank {r} runs on {r_node.split('/')[0]} but rank {self.rank} on "
                    f"{node.split('/')[0]}: the CUDA IPC symmetric heap spans one node"
                )
            if r_bytes != self.nbytes:
                raise TSIRError(
                    f"rank {r} asked for a {r_bytes}-byte symmetric heap but rank {self.rank} for "
                    f"{self.nbytes}; pass the same heap_bytes on every rank"
                )
        self.backend.enable_peer_access(
            [u for r, (_, u, _, _) in enumerate(infos) if r != self.rank]
        )
        bases = []
        for r, (_, _, _, handle) in enumerate(infos):
            if r == self.rank:
                bases.append(self.local_base)
            else:
                ptr = self.backend.open(handle)
                self._opened.append(ptr)
                bases.append(ptr)
        return bases

    # -- allocation ---------------------------------------------------------------------------
    def allocate(
        self, nbytes: int, what: str, align: int = DEFAULT_ALIGN, zero: bool = False
    ) -> int:
        """Collectively allocate `nbytes` (described by `what`, e.g. `float32[1024]`); returns the
        local address. With `zero`, the bytes are zero on every rank when this returns."""
        self._check_open()
        if align <= 0 or align & (align - 1):
            raise TSIRError(f"alignment must be a power of two, got {align}")
        if nbytes < 0:
            raise TSIRError(f"cannot allocate {nbytes} bytes")
        offset = -(-self.offset // align) * align
        end = offset + nbytes
        fits = end <= self.nbytes
        if zero and fits and offset < self.high_water:
            self.backend.memset_zero(self.local_base + offset, min(end, self.high_water) - offset)
        record = _sep(self.count, what, nbytes, align)
        records = self.group.all_gather(f"alloc/{self.count}", record)
        if any(r != record for r in records):
            lines = "\n".join(
                f"  rank {r}: {what_r} ({bytes_r} bytes, align {align_r})"
                for r, (_, what_r, bytes_r, align_r) in enumerate(_unsep(rec) for rec in records)
            )
            raise AllocationOrderError(
                f"symmetric allocation #{self.count} differs between ranks (every rank must "
                f"allocate "
                f"the same tensors in the same order):\n{lines}"
            )
        if not fits:
            raise TSIRError(
                f"the symmetric heap is full: {what} needs {nbytes} bytes at offset {offset}, "
                f"but the "
                f"heap has {self.nbytes} bytes ({self.nbytes - self.offset} free); pass a larger "
                f"heap_bytes to dist.init() (or set TSIR_SYMMETRIC_HEAP_BYTES)"
            )
        self.offset = end
        self.high_water = max(self.high_water, end)
        self.count += 1
        return self.local_base + offset

    def mark(self) -> tuple[int, int]:
        return self.offset, self.count

    def release(self, mark: tuple[int, int]) -> None:
        """Free every allocation made since `mark` (collectively: checked like an allocation).
        Tensors allocated since then must no longer be used."""
        self._check_open()
        offset, count = mark
        record = _sep("release", offset, count)
        records = self.group.all_gather(f"release/{self.count}", record)
        if any(r != record for r in records):
            raise AllocationOrderError(
                f"dist.scope released different allocations on different ranks: "
                f"{[r.decode() for r in records]}"
            )
        self.offset = offset

    # -- addresses ----------------------------------------------------------------------------
    def contains(self, ptr: int, nbytes: int = 0) -> bool:
        return (
            not self.closed
            and self.local_base <= ptr
            and ptr + nbytes <= self.local_base + self.nbytes
        )

    def peer_address(self, ptr: int, pe: int) -> int:
        """The address, in this process, of `ptr`'s counterpart on rank `pe`."""
        if not 0 <= pe < self.world_size:
            raise TSIRError(f"rank {pe} is out of range: the group has {self.world_size} ranks")
        if not self.contains(ptr):
            raise TSIRError(f"0x{ptr:x} is not in this rank's symmetric heap")
        return self.bases[pe] + (ptr - self.local_base)

    # -- teardown -----------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self.closed:
            raise TSIRError(
                "the symmetric heap was freed by dist.finalize(); call dist.init() again"
            )

    def _release_mappings(self) -> None:
        while self._opened:
            ptr = self._opened.pop()
            try:
                self.backend.close(ptr)
            except TSIRError:
                pass

    def close(self, timeout: float | None = None) -> None:
        """Free the heap. Waits (up to `timeout`) for every rank so no mapping outlives its memory;
        when a peer is gone, the local memory is freed anyway (the peer's process has exited)."""
        if self.closed:
            return
        self.closed = True
        try:
            self.backend.synchronize()
        except TSIRError:
            pass  # a faulted context: still unmap and free what we can
        try:
            self.group.barrier("heap-close", timeout)
        except _store.StoreTimeout:
            pass
        self._release_mappings()
        try:
            self.group.barrier("heap-unmapped", timeout)
        except _store.StoreTimeout:
            pass
        try:
            self.backend.free(self.local_base)
        except TSIRError:
            pass
