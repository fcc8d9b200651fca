"""`python -m tsir.compat.tilelang run file.py [args...]`: run a TileLang program unchanged.

`tilelang`, `tilelang.language` and the other `tilelang.*` modules such programs import are made
to resolve to `tsir.compat.tilelang`; a `tilelang` module tsir does not provide raises a TSIRError
naming it when imported.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import runpy
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from ...errors import UnsupportedError

_ALIASES = {
    "tilelang": "tsir.compat.tilelang",
    "tilelang.language": "tsir.compat.tilelang.language",
    "tilelang.autotuner": "tsir.compat.tilelang.autotuner",
    "tilelang.profiler": "tsir.compat.tilelang.profiler",
    "tilelang.layout": "tsir.compat.tilelang.layout",
    "tilelang.jit": "tsir.compat.tilelang.jit",
}


class _Missing(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Any other `tilelang.*` import: a clear error instead of ModuleNotFoundError."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname.startswith("tilelang.") and fullname not in _ALIASES:
            return importlib.machinery.ModuleSpec(fullname, self)
        return None

    def create_module(self, spec: Any) -> ModuleType:
        raise UnsupportedError(
            f"`import {spec.name}`: TileLang's module {spec.name} is not provided by tsir.compat.tilelang"
        )

    def exec_module(self, module: ModuleType) -> None:  # pragma: no cover - create_module raises
        pass


def install_aliases() -> None:
    import importlib

    for alias, real in _ALIASES.items():
        sys.modules[alias] = importlib.import_module(real)
    if not any(isinstance(f, _Missing) for f in sys.meta_path):
        sys.meta_path.insert(0, _Missing())


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 2 or args[0] != "run":
        print("usage: python -m tsir.compat.tilelang run file.py [args...]", file=sys.stderr)
        return 2
    path = args[1]
    install_aliases()
    sys.argv = [path, *args[2:]]
    runpy.run_path(path, run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
