"""The on-disk compile cache: complete keys, atomic writes, entries that are checked, not trusted.

An entry is one file `<cache_dir>/<namespace>/<key[:2]>/<key>.tsirc`:

    MAGIC (8 bytes) | sha256 of the body (32 bytes) | body
    body = header length (4 bytes, little endian) | header (JSON) | blob bytes, concatenated

The header names the key, the blobs with their sizes, and free-form metadata. A file whose magic,
checksum, key or sizes do not match is a miss (counted as `corrupt`): the caller compiles again and
the new entry replaces it. Writes go to a temporary file in the same directory and are published
with `os.replace`, so readers see either the old entry or the complete new one; a crash leaves at
worst a stray temporary file, never a half-written entry under the real name. There is no fsync: a
power cut may lose an entry or leave a truncated one, which the checksum turns into a miss.

Counters (`stats()`) let tests prove hits and misses; `record_compile()` is called by every real
compilation, cached or not.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import struct
import tempfile
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Final

from tsir import knobs
from tsir.errors import CompileError

__all__ = [
    "CacheEntry",
    "CacheStats",
    "cache_root",
    "codegen_dir",
    "enabled",
    "entry_path",
    "load",
    "make_key",
    "record_compile",
    "reset_stats",
    "stats",
    "store",
    "tsir_source_hash",
]

_log = logging.getLogger("tsir.cache")

MAGIC: Final = b"TSIRC\x00\x01\n"
_DIGEST_SIZE: Final = 32
_LEN: Final = struct.Struct("<I")
_SUFFIX: Final = ".tsirc"
# Bump when the meaning of a key or the entry format changes, so old entries stop matching.
_FORMAT_VERSION: Final = "1"


@dataclass(frozen=True, slots=True)
class CacheStats:
    """Process-wide counters since the last `reset_stats()`."""

    hits: int = 0
    misses: int = 0
    corrupt: int = 0
    """Entries found but rejected (bad magic/checksum/key/sizes, unreadable); also misses."""
    writes: int = 0
    write_errors: int = 0
    compiles: int = 0
    """Real compilations (NVRTC runs), whether their result was cached or not."""


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """What a cache file holds: named binary blobs plus JSON-able metadata."""

    blobs: Mapping[str, bytes]
    meta: Mapping[str, Any] = field(default_factory=lambda: dict[str, Any]())


_counter_lock = threading.Lock()
_counters: dict[str, int] = {}


def _bump(name: str) -> None:
    with _counter_lock:
        _counters[name] = _counters.get(name, 0) + 1


def stats() -> CacheStats:
    with _counter_lock:
        return CacheStats(**_counters)


def reset_stats() -> None:
    with _counter_lock:
        _counters.clear()


def record_compile() -> None:
    _bump("compiles")


def enabled() -> bool:
    """False when TSIR_DISABLE_CACHE (knobs.disable_cache) asks to bypass the cache."""
    return not knobs.disable_cache


def cache_root() -> Path:
    return knobs.cache_dir


# -- keys -----------------------------------------------------------------------------------------


def codegen_dir() -> Path:
    """The directory of the `tsir.codegen` package (found without importing it)."""
    spec = importlib.util.find_spec("tsir.codegen")
    if spec is None or not spec.submodule_search_locations:
        raise CompileError(
            "cannot locate the tsir.codegen package (its device headers live there); "
            "the tsir installation is incomplete: reinstall it with `pip install -e .`"
        )
    return Path(next(iter(spec.submodule_search_locations)))


@cache
def tsir_source_hash() -> str:
    """sha256 over tsir's code generator and device headers, computed once per process.

    A change to the printer or a header changes every key, so no stale binary outlives the code
    that produced it. Paths are relative, so two checkouts of the same code share entries.
    """
    root = codegen_dir()
    files = [p for p in root.rglob("*.py") if "__pycache__" not in p.parts]
    include = root / "include"
    if include.is_dir():
        files += [p for p in include.rglob("*") if p.suffix in (".h", ".cuh", ".hpp")]
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def make_key(kind: str, parts: Iterable[str | bytes]) -> str:
    """sha256 hex of `kind`, the parts, the tsir version and the codegen hash."""
    from tsir import __version__

    digest = hashlib.sha256()
    for part in (_FORMAT_VERSION, kind, __version__, tsir_source_hash(), *parts):
        data = part.encode() if isinstance(part, str) else part
        digest.update(struct.pack("<Q", len(data)))  # length-prefixed: parts cannot run together
        digest.update(data)
    return digest.hexdigest()


# -- entries --------------------------------------------------------------------------------------


def entry_path(namespace: str, key: str) -> Path:
    return cache_root() / namespace / key[:2] / (key + _SUFFIX)


def _encode(key: str, entry: CacheEntry) -> bytes:
    names = list(entry.blobs)
    header = json.dumps(
        {"key": key, "blobs": [[n, len(entry.blobs[n])] for n in names], "meta": dict(entry.meta)},
        sort_keys=True,
    ).encode()
    body = b"".join([_LEN.pack(len(header)), header, *(entry.blobs[n] for n in names)])
    return MAGIC + hashlib.sha256(body).digest() + body


def _decode(key: str, data: bytes) -> CacheEntry:
    """The entry in `data`, or ValueError naming what is wrong with it."""
    start = len(MAGIC) + _DIGEST_SIZE
    if len(data) < start + _LEN.size or not data.startswith(MAGIC):
        raise ValueError("bad magic or truncated")
    body = memoryview(data)[start:]
    if hashlib.sha256(body).digest() != data[len(MAGIC) : start]:
        raise ValueError("checksum mismatch")
    (header_len,) = _LEN.unpack_from(body)
    header = json.loads(bytes(body[_LEN.size : _LEN.size + header_len]))
    if header.get("key") != key:
        raise ValueError("entry belongs to another key")
    offset = _LEN.size + header_len
    blobs: dict[str, bytes] = {}
    for name, size in header["blobs"]:
        blobs[name] = bytes(body[offset : offset + size])
        offset += size
    if offset != len(body):
        raise ValueError("blob sizes do not add up")
    return CacheEntry(blobs=blobs, meta=header.get("meta", {}))


def load(namespace: str, key: str) -> CacheEntry | None:
    """The entry for `key`, or None on a miss (absent, unreadable or corrupt)."""
    path = entry_path(namespace, key)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        _bump("misses")
        return None
    except OSError as exc:
        _log.warning("tsir cache: cannot read %s (%s); recompiling", path, exc)
        _bump("corrupt")
        _bump("misses")
        return None
    try:
        entry = _decode(key, data)
    except (ValueError, KeyError, TypeError, struct.error) as exc:
        _log.warning("tsir cache: ignoring corrupt entry %s (%s); recompiling", path, exc)
        _bump("corrupt")
        _bump("misses")
        return None
    _bump("hits")
    return entry


def store(namespace: str, key: str, entry: CacheEntry) -> Path | None:
    """Write `entry` under `key` atomically; returns its path, or None if it could not be written.

    A failed write (read-only or full disk) costs a recompile next time, never a failed compile now.
    """
    path = entry_path(namespace, key)
    data = _encode(key, entry)
    tmp_name: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", suffix=_SUFFIX, dir=path.parent)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp_name, path)
        tmp_name = None
    except OSError as exc:
        _log.warning("tsir cache: cannot write %s (%s)", path, exc)
        _bump("write_errors")
        return None
    finally:
        if tmp_name is not None:
            try:
                os.unlink(tmp_name)
            except OSError:
                pass
    _bump("writes")
    return path
