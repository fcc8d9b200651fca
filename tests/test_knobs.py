"""Typed knobs (tsir/knobs.py): environment at call time, overrides, validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from tsir import knobs
from tsir.errors import TSIRError

_VARIABLES = [var for knob in knobs.KNOBS.values() for var in knob.env]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in _VARIABLES:
        monkeypatch.delenv(var, raising=False)


def test_defaults() -> None:
    assert knobs.cache_dir == Path.home() / ".cache" / "tsir"
    assert knobs.disable_cache is False
    assert knobs.dump_ir is None
    assert knobs.verify is False
    assert knobs.target == "cuda"
    assert knobs.cuda_home is None
    assert knobs.nvrtc_options == ()
    assert all(knobs.source(name) == "default" for name in knobs.KNOBS)


def test_environment_is_read_at_call_time(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TSIR_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("TSIR_DISABLE_CACHE", "1")
    monkeypatch.setenv("TSIR_DUMP_IR", str(tmp_path / "ir"))
    monkeypatch.setenv("TSIR_VERIFY", "yes")
    monkeypatch.setenv("TSIR_NVRTC_OPTIONS", "-lineinfo '-DNAME=a b'")
    assert knobs.cache_dir == tmp_path
    assert knobs.disable_cache is True
    assert knobs.dump_ir == tmp_path / "ir"
    assert knobs.verify is True
    assert knobs.nvrtc_options == ("-lineinfo", "-DNAME=a b")
    assert knobs.source("cache_dir") == "env:TSIR_CACHE_DIR"
    monkeypatch.setenv("TSIR_DISABLE_CACHE", "off")
    assert knobs.disable_cache is False


def test_paths_expand_the_home_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TSIR_CACHE_DIR", "~/somewhere")
    assert knobs.cache_dir == Path.home() / "somewhere"


def test_empty_dump_ir_means_no_dump(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TSIR_DUMP_IR", "")
    assert knobs.dump_ir is None


@pytest.mark.parametrize(
    ("text", "value"),
    [("1", True), ("TRUE", True), ("on", True), ("0", False), ("no", False), ("", False)],
)
def test_boolean_spellings(monkeypatch: pytest.MonkeyPatch, text: str, value: bool) -> None:
    monkeypatch.setenv("TSIR_VERIFY", text)
    assert knobs.verify is value


def test_bad_boolean_in_the_environment_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TSIR_DISABLE_CACHE", "maybe")
    with pytest.raises(TSIRError, match=r"TSIR_DISABLE_CACHE='maybe'.*disable_cache.*expected"):
        _ = knobs.disable_cache


def test_cuda_home_falls_back_to_cuda_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_PATH", "/opt/cuda-path")
    assert knobs.cuda_home == Path("/opt/cuda-path")
    monkeypatch.setenv("CUDA_HOME", "/opt/cuda-home")
    assert knobs.cuda_home == Path("/opt/cuda-home")
    assert knobs.source("cuda_home") == "env:CUDA_HOME"


def test_override_wins_over_the_environment_and_is_restored(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TSIR_CACHE_DIR", "/from/env")
    with knobs.override(cache_dir=tmp_path, verify=True):
        assert knobs.cache_dir == tmp_path and knobs.verify is True
        assert knobs.source("cache_dir") == "override"
    assert knobs.cache_dir == Path("/from/env") and knobs.verify is False


def test_nested_overrides_restore_in_order(tmp_path: Path) -> None:
    with knobs.override(cache_dir=tmp_path / "outer"):
        with knobs.override(cache_dir=tmp_path / "inner"):
            assert knobs.cache_dir == tmp_path / "inner"
        assert knobs.cache_dir == tmp_path / "outer"
    assert knobs.source("cache_dir") == "default"


def test_override_is_restored_after_an_exception(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError):
        with knobs.override(cache_dir=tmp_path):
            raise RuntimeError("boom")
    assert knobs.source("cache_dir") == "default"


def test_override_coerces_strings_and_none() -> None:
    with knobs.override(
        cache_dir="/tmp/x", disable_cache="1", dump_ir=None, nvrtc_options="-G -lineinfo"
    ):
        assert knobs.cache_dir == Path("/tmp/x")
        assert knobs.disable_cache is True
        assert knobs.dump_ir is None
        assert knobs.nvrtc_options == ("-G", "-lineinfo")
    with knobs.override(nvrtc_options=["-lineinfo"]):
        assert knobs.nvrtc_options == ("-lineinfo",)


def test_override_rejects_unknown_names_and_bad_values() -> None:
    with pytest.raises(TSIRError, match=r"unknown knob 'cache_directory'.*cache_dir"):
        with knobs.override(cache_directory="/tmp"):
            pass
    with pytest.raises(TSIRError, match="bad value 3 for knob 'disable_cache'"):
        with knobs.override(disable_cache=3):
            pass
    with pytest.raises(TSIRError, match="knob 'cache_dir'"):
        with knobs.override(cache_dir=42):
            pass
    assert all(knobs.source(name) == "default" for name in knobs.KNOBS)


def test_assignment_is_a_lasting_override_and_del_resets(tmp_path: Path) -> None:
    knobs.cache_dir = tmp_path  # type: ignore[misc]  # routed to set_value by the module class
    try:
        assert knobs.cache_dir == tmp_path and knobs.source("cache_dir") == "override"
    finally:
        del knobs.cache_dir
    assert knobs.source("cache_dir") == "default"


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError):
        _ = knobs.no_such_knob  # type: ignore[attr-defined]  # checking the failure


def test_describe_and_snapshot_list_every_knob() -> None:
    text = knobs.describe()
    snapshot = knobs.snapshot()
    for name, knob in knobs.KNOBS.items():
        assert name in text and all(var in text for var in knob.env)
        assert name in snapshot
    assert set(knobs.KNOBS) <= set(dir(knobs))
