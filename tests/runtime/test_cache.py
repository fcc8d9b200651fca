"""The cache entry format and counters (runtime/cache.py), without NVRTC."""

from __future__ import annotations

from pathlib import Path

import pytest
from tsir.runtime import cache

from tsir import knobs


def test_store_then_load_round_trips(tsir_cache: Path) -> None:
    entry = cache.CacheEntry({"cubin": b"\x7fELF" + bytes(300), "empty": b""}, {"log": "ok"})
    path = cache.store("unit", "ab" * 32, entry)
    assert path == tsir_cache / "unit" / "ab" / ("ab" * 32 + ".tsirc")
    loaded = cache.load("unit", "ab" * 32)
    assert loaded is not None
    assert dict(loaded.blobs) == dict(entry.blobs) and dict(loaded.meta) == {"log": "ok"}
    assert cache.stats() == cache.CacheStats(hits=1, writes=1)


def test_absent_entry_is_a_plain_miss(tsir_cache: Path) -> None:
    assert cache.load("unit", "cd" * 32) is None
    assert cache.stats() == cache.CacheStats(misses=1)


def test_every_truncation_is_detected(tsir_cache: Path) -> None:
    """No prefix of a valid entry is accepted: the length and checksum catch all of them."""
    key = "ef" * 32
    path = cache.store("unit", key, cache.CacheEntry({"a": b"0123456789" * 10}, {"m": 1}))
    assert path is not None
    data = path.read_bytes()
    for cut in range(len(data)):
        path.write_bytes(data[:cut])
        assert cache.load("unit", key) is None, cut
    assert cache.stats().corrupt == len(data) and cache.stats().hits == 0


def test_a_single_flipped_bit_anywhere_is_detected(tsir_cache: Path) -> None:
    key = "01" * 32
    path = cache.store("unit", key, cache.CacheEntry({"a": b"payload" * 20}))
    assert path is not None
    data = path.read_bytes()
    for index in range(0, len(data), 7):
        damaged = bytearray(data)
        damaged[index] ^= 0x01
        path.write_bytes(bytes(damaged))
        assert cache.load("unit", key) is None, index


def test_keys_are_length_prefixed_and_cover_every_part() -> None:
    assert cache.make_key("k", ["ab", "c"]) != cache.make_key("k", ["a", "bc"])
    assert cache.make_key("k", ["x"]) != cache.make_key("other", ["x"])
    assert cache.make_key("k", [b"x"]) == cache.make_key("k", ["x"])
    assert len(cache.make_key("k", [])) == 64


def test_codegen_hash_covers_the_headers() -> None:
    root = cache.codegen_dir()
    assert (root / "include" / "tsir").is_dir()
    assert len(cache.tsir_source_hash()) == 64


def test_disable_cache_knob_turns_the_cache_off() -> None:
    with knobs.override(disable_cache=True):
        assert not cache.enabled()
    with knobs.override(disable_cache=False):
        assert cache.enabled()


@pytest.mark.parametrize(
    "name", ["hits", "misses", "corrupt", "writes", "write_errors", "compiles"]
)
def test_reset_stats_clears_every_counter(name: str) -> None:
    cache.record_compile()
    cache.reset_stats()
    assert getattr(cache.stats(), name) == 0
