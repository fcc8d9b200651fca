"""Typed knobs: every setting tsir reads from the environment, in one place.

Each knob is an environment variable with a default and a type. The value is read when it is asked
for (`tsir.knobs.cache_dir`), never frozen at import, so a process can change the environment and
tests can override it::

    from tsir import knobs
    with knobs.override(cache_dir=tmp_path, disable_cache=False):
        ...
    knobs.cache_dir = "/scratch/tsir"   # a lasting override for this process

Precedence: an override, then the first variable set in `Knob.env`, then the default.
"""

from __future__ import annotations

import os
import shlex
import sys
import threading
import types
from collections.abc import Callable, Generator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .errors import TSIRError

__all__ = ["KNOBS", "Knob", "describe", "get", "override", "snapshot", "source"]

T = TypeVar("T")

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})


def _parse_bool(text: str) -> bool:
    word = text.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError(f"expected one of {sorted(_TRUE | _FALSE - {''})}")


def _parse_path(text: str) -> Path:
    return Path(text).expanduser()


def _parse_optional_path(text: str) -> Path | None:
    return Path(text).expanduser() if text.strip() else None


def _parse_options(text: str) -> tuple[str, ...]:
    return tuple(shlex.split(text))


def _coerce_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return _parse_bool(value)
    raise TypeError("expected a bool")


def _coerce_path(value: object) -> Path:
    if isinstance(value, str):
        return Path(value).expanduser()
    if isinstance(value, Path):
        return value.expanduser()
    raise TypeError("expected a path (str or pathlib.Path)")


def _coerce_optional_path(value: object) -> Path | None:
    if value is None or value == "":
        return None
    return _coerce_path(value)


def _coerce_options(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return _parse_options(value)
    if isinstance(value, (list, tuple)):
        items: list[object] = list(value)
        if all(isinstance(item, str) for item in items):
            return tuple(str(item) for item in items)
    raise TypeError("expected a string of options or a sequence of strings")


def _coerce_target(value: object) -> str:
    # A tsir.Target is accepted by its architecture name (this module sits below tsir.target).
    arch = getattr(value, "arch", value)
    if isinstance(arch, str) and arch.strip():
        return arch.strip()
    raise TypeError("expected a target such as 'sm_90a' or 'cuda', or a tsir.Target")


@dataclass(frozen=True, slots=True)
class Knob(Generic[T]):
    """One setting: its environment variables, how to parse them, and its default."""

    name: str
    env: tuple[str, ...]
    parse: Callable[[str], T]
    """Turns the environment variable's text into the value."""
    coerce: Callable[[object], T]
    """Turns a Python value given to `override` into the value (raises TypeError/ValueError)."""
    default: Callable[[], T]
    doc: str

    def from_env(self) -> tuple[T, str] | None:
        for var in self.env:
            text = os.environ.get(var)
            if text is None:
                continue
            try:
                return self.parse(text), var
            except ValueError as exc:
                raise TSIRError(
                    f"environment variable {var}={text!r} is not a valid value for knob "
                    f"{self.name!r}: {exc}"
                ) from None
        return None


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "tsir"


KNOBS: dict[str, Knob[Any]] = {
    knob.name: knob
    for knob in (
        Knob(
            "cache_dir",
            ("TSIR_CACHE_DIR",),
            _parse_path,
            _coerce_path,
            _default_cache_dir,
            "Directory of the on-disk compile cache and of NVRTC's extracted headers.",
        ),
        Knob(
            "disable_cache",
            ("TSIR_DISABLE_CACHE",),
            _parse_bool,
            _coerce_bool,
            lambda: False,
            "Bypass the compile cache: neither read nor write entries.",
        ),
        Knob(
            "dump_ir",
            ("TSIR_DUMP_IR",),
            _parse_optional_path,
            _coerce_optional_path,
            lambda: None,
            "Directory to write the IR after every pass into; unset or empty: no dump.",
        ),
        Knob(
            "verify",
            ("TSIR_VERIFY",),
            _parse_bool,
            _coerce_bool,
            lambda: False,
            "Run tsir.verify after every pass of the pipeline.",
        ),
        Knob(
            "target",
            ("TSIR_TARGET",),
            str.strip,
            _coerce_target,
            lambda: "cuda",
            "The target of tsir.lower / tsir.compile when none is given: an architecture such as "
            "'sm_90a', or 'cuda' (the present GPU).",
        ),
        Knob(
            "explain",
            ("TSIR_EXPLAIN",),
            _parse_bool,
            _coerce_bool,
            lambda: False,
            "Print, once per kernel, every decision made against what the program asked for (a "
            "loop left unpipelined, a fallback, an option with no effect), with the user's line.",
        ),
        Knob(
            "debug",
            ("TSIR_DEBUG",),
            _parse_bool,
            _coerce_bool,
            lambda: False,
            "Let an internal error (a tsir bug) propagate as the original exception with its full "
            "traceback, instead of a one-paragraph tsir.InternalError naming the pass and your line.",
        ),
        Knob(
            "cuda_home",
            ("CUDA_HOME", "CUDA_PATH"),
            _parse_optional_path,
            _coerce_optional_path,
            lambda: None,
            "A CUDA toolkit whose include/ NVRTC may use when it has no bundled headers (< 13.4).",
        ),
        Knob(
            "nvrtc_options",
            ("TSIR_NVRTC_OPTIONS",),
            _parse_options,
            _coerce_options,
            lambda: (),
            "Extra NVRTC options appended to every compile, shell-quoted (e.g. '-lineinfo').",
        ),
        Knob(
            "nvrtc_warmup",
            ("TSIR_NVRTC_WARMUP",),
            _parse_bool,
            _coerce_bool,
            lambda: True,
            "Let the first tsir.compile of a process that lowers run NVRTC's one-time set-up in a "
            "background thread while it lowers (runtime/warmup.py); 0 runs everything in order.",
        ),
    )
}

_UNSET = object()
_lock = threading.Lock()
_overrides: dict[str, object] = {}


def _knob(name: str) -> Knob[Any]:
    try:
        return KNOBS[name]
    except KeyError:
        raise TSIRError(f"unknown knob {name!r}; known: {', '.join(KNOBS)}") from None


def _coerced(knob: Knob[Any], value: object) -> object:
    try:
        return knob.coerce(value)
    except (TypeError, ValueError) as exc:
        raise TSIRError(f"bad value {value!r} for knob {knob.name!r}: {exc}") from None


def get(name: str) -> Any:
    """The current value of knob `name` (override, else environment, else default)."""
    knob = _knob(name)
    value = _overrides.get(name, _UNSET)
    if value is not _UNSET:
        return value
    found = knob.from_env()
    return found[0] if found is not None else knob.default()


def source(name: str) -> str:
    """Where the value of `name` comes from: "override", "env:VAR" or "default"."""
    knob = _knob(name)
    if name in _overrides:
        return "override"
    found = knob.from_env()
    return f"env:{found[1]}" if found is not None else "default"


def snapshot() -> dict[str, Any]:
    """Every knob's current value."""
    return {name: get(name) for name in KNOBS}


def describe() -> str:
    """A table of every knob: name, variables, value, where the value comes from, and its doc."""
    lines: list[str] = []
    for name, knob in KNOBS.items():
        lines.append(f"{name} = {get(name)!r}  [{source(name)}; env {', '.join(knob.env)}]")
        lines.append(f"    {knob.doc}")
    return "\n".join(lines)


def set_value(name: str, value: object) -> None:
    """Override `name` for the rest of the process (what `knobs.NAME = value` does)."""
    knob = _knob(name)
    coerced = _coerced(knob, value)
    with _lock:
        _overrides[name] = coerced


def reset(name: str) -> None:
    """Drop a lasting override of `name`: the environment or the default applies again."""
    _knob(name)
    with _lock:
        _overrides.pop(name, None)


@contextmanager
def override(**values: object) -> Generator[None, None, None]:
    """Set knobs for the duration of a `with` block, then restore what was there before."""
    coerced = {name: _coerced(_knob(name), value) for name, value in values.items()}
    with _lock:
        saved = {name: _overrides.get(name, _UNSET) for name in coerced}
        _overrides.update(coerced)
    try:
        yield
    finally:
        with _lock:
            for name, old in saved.items():
                if old is _UNSET:
                    _overrides.pop(name, None)
                else:
                    _overrides[name] = old


if TYPE_CHECKING:
    # Module attributes served by __getattr__ below, declared here for type checkers.
    cache_dir: Path
    disable_cache: bool
    dump_ir: Path | None
    verify: bool
    target: str
    explain: bool
    cuda_home: Path | None
    nvrtc_options: tuple[str, ...]
    nvrtc_warmup: bool


def __getattr__(name: str) -> Any:
    if name in KNOBS:
        return get(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(KNOBS))


class _KnobsModule(types.ModuleType):
    """Routes `knobs.NAME = value` to a lasting override instead of a shadowing attribute."""

    def __setattr__(self, name: str, value: object) -> None:
        if name in KNOBS:
            set_value(name, value)
        else:
            super().__setattr__(name, value)

    def __delattr__(self, name: str) -> None:
        if name in KNOBS:
            reset(name)
        else:
            super().__delattr__(name)


sys.modules[__name__].__class__ = _KnobsModule
