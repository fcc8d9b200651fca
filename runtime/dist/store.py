"""Key-value stores the ranks of a group exchange small messages through (IPC handles, allocation
records, host barriers), with a timeout on every wait so a dead peer is an error, not a hang.

A store is anything with `set(key, bytes)` and `get(key, timeout) -> bytes` that blocks until the
key exists. Provided: `FileStore` (a directory; CUDA IPC is single-node, so a shared directory is
enough and needs no torch), `TorchStore` (wraps torch.distributed's TCPStore / FileStore /
PrefixStore) and `LocalStore` (one process, world size 1). `all_gather` and `barrier` build the
group operations on top.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

from ...errors import TSIRError

__all__ = [
    "Store",
    "FileStore",
    "LocalStore",
    "TorchStore",
    "as_store",
    "all_gather",
    "barrier",
    "StoreTimeout",
]


class StoreTimeout(TSIRError):
    """A peer did not publish a key in time (it died, hangs, or took another code path)."""


class Store(Protocol):
    def set(self, key: str, value: bytes) -> None: ...

    def get(self, key: str, timeout: float) -> bytes: ...


class FileStore:
    """A store in a directory: one file per key, written atomically (temp file + rename)."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)

    def _file(self, key: str) -> Path:
        return self.path / key.replace("/", "%")

    def set(self, key: str, value: bytes) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.path, prefix=".tmp-")
        with os.fdopen(fd, "wb") as f:
            f.write(value)
        os.replace(tmp, self._file(key))

    def get(self, key: str, timeout: float) -> bytes:
        path = self._file(key)
        deadline = time.monotonic() + timeout
        pause = 0.0002
        while True:
            try:
                return path.read_bytes()
            except FileNotFoundError:
                pass
            if time.monotonic() > deadline:
                raise StoreTimeout(f"no value for {key!r} in {self.path} after {timeout:.0f} s")
            time.sleep(pause)
            pause = min(pause * 2, 0.01)

    def __repr__(self) -> str:
        return f"FileStore({str(self.path)!r})"


class LocalStore:
    """An in-process store (a world of one process, or threads standing in for ranks in tests)."""

    def __init__(self) -> None:
        self._data: dict[str, bytes] = {}
        self._cond = threading.Condition()

    def set(self, key: str, value: bytes) -> None:
        with self._cond:
            self._data[key] = bytes(value)
            self._cond.notify_all()

    def get(self, key: str, timeout: float) -> bytes:
        with self._cond:
            if not self._cond.wait_for(lambda: key in self._data, timeout):
                raise StoreTimeout(f"no value for {key!r} after {timeout:.0f} s")
            return self._data[key]


class TorchStore:
    """A torch.distributed Store (TCPStore, FileStore, PrefixStore) behind the interface above."""

    def __init__(self, store: Any):
        self.store = store

    def set(self, key: str, value: bytes) -> None:
        self.store.set(key, value)

    def get(self, key: str, timeout: float) -> bytes:
        try:
            self.store.wait([key], timedelta(seconds=timeout))
        except Exception as e:  # noqa: BLE001  (torch: DistStoreError / RuntimeError on timeout)
            raise StoreTimeout(
                f"no value for {key!r} after {timeout:.0f} s ({type(e).__name__}: {e})"
            ) from None
        return bytes(self.store.get(key))


def as_store(obj: Any) -> Store:
    """Accept our stores, torch stores and paths (a directory for a FileStore)."""
    if isinstance(obj, (FileStore, LocalStore, TorchStore)):
        return obj
    if isinstance(obj, (str, os.PathLike)):
        return FileStore(obj)
    if type(obj).__module__.startswith("torch"):
        return TorchStore(obj)
    if hasattr(obj, "set") and hasattr(obj, "get"):
        return obj
    raise TSIRError(
        f"store= must be a directory path, a tsir FileStore or a torch.distributed Store, got "
        f"{type(obj).__name__}"
    )


def all_gather(
    store: Store, key: str, rank: int, world: int, value: bytes, timeout: float
) -> list[bytes]:
    """Every rank's `value` under `key`, in rank order (each rank publishes `key/<rank>`)."""
    store.set(f"{key}/{rank}", value)
    out = []
    for r in range(world):
        if r == rank:
            out.append(value)
            continue
        try:
            out.append(store.get(f"{key}/{r}", timeout))
        except StoreTimeout:
            raise StoreTimeout(
                f"rank {rank}: rank {r} did not reach `{key}` within {timeout:.0f} s (did it exit, "
                f"fail, or take another path through the program?)"
            ) from None
    return out


def barrier(store: Store, key: str, rank: int, world: int, timeout: float) -> None:
    """Return once every rank has called `barrier` with this key."""
    all_gather(store, key, rank, world, b"", timeout)
