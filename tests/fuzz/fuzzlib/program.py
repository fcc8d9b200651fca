"""A generated program: builder source, numpy reference, parameters and how to check it.

The generator writes two pieces of Python side by side, `kernel()` (tsir builder code, the way a
TileLang user writes it) and `reference(...)` (numpy, from the API's documented semantics). Both
live in one module text, so a failing program is stored and read as ordinary code.
"""

from __future__ import annotations

import contextlib
import hashlib
import linecache
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .numerics import np_dtype, rnd, storage

__all__ = ["Src", "ParamSpec", "Program", "HEADER"]

HEADER = """import numpy as np

import tsir
from tsir import T
from fuzzlib.numerics import atomic_tile, cast, fdiv, fmod, load_tile, rnd, store_tile
"""


class Src:
    """Indented lines of Python source."""

    def __init__(self, indent: int = 0) -> None:
        self.lines: list[str] = []
        self.depth = indent

    def __call__(self, text: str) -> None:
        for part in text.split("\n"):
            self.lines.append("    " * self.depth + part)

    @contextlib.contextmanager
    def block(self, header: str) -> Iterator[None]:
        self(header)
        self.depth += 1
        mark = len(self.lines)
        yield
        if len(self.lines) == mark:
            self("pass")
        self.depth -= 1

    def extend(self, other: Src) -> None:
        """Append `other`'s lines at this writer's indentation."""
        for line in other.lines:
            self.lines.append("    " * self.depth + line)

    def text(self) -> str:
        return "\n".join(self.lines)


@dataclass(frozen=True)
class ParamSpec:
    """One parameter of the kernel, with the concrete shape and contents the test gives it."""

    name: str
    dtype: str
    shape: tuple[int, ...] = ()
    """() for a scalar parameter."""
    lo: int = -4
    hi: int = 4
    """Tensors start as random integers in [lo, hi] (exact in every dtype); scalars as lo."""
    output: bool = False

    def make(self, rng: np.random.Generator) -> Any:
        if not self.shape:
            return self.lo
        vals = rng.integers(self.lo, self.hi + 1, size=self.shape)
        if self.dtype.startswith("int"):
            return vals.astype(np.int64)
        return rnd(vals.astype(np.float64), self.dtype)


@dataclass
class Program:
    family: str
    seed: int
    kernel_src: str
    """The body of `def kernel():` (builder code that returns `f.func`)."""
    reference_src: str
    """The body of `def reference(<params>):` (numpy; updates the output arrays in place)."""
    params: list[ParamSpec]
    tol: dict[str, tuple[float, float]] = field(default_factory=dict)
    """(rtol, atol) per output, relative to the largest magnitude of the expected result."""
    features: set[str] = field(default_factory=set)
    expect_error: str | None = None
    """For programs that must be refused: the TSIRError subclass name expected from the builder."""
    _ns: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def outputs(self) -> list[str]:
        return [p.name for p in self.params if p.output]

    def module_source(self) -> str:
        names = ", ".join(p.name for p in self.params)
        feats = ", ".join(sorted(self.features))
        return (
            f'"""fuzz program: family {self.family}, seed {self.seed}; features: {feats}"""\n\n'
            f"{HEADER}\n\ndef kernel():\n{_indent(self.kernel_src)}\n\n\n"
            f"def reference({names}):\n{_indent(self.reference_src)}\n"
        )

    def namespace(self) -> dict[str, Any]:
        """The module executed from a real file (so tsir's errors can quote the user's line)."""
        if self._ns is None:
            src = self.module_source()
            digest = hashlib.sha1(src.encode()).hexdigest()[:16]
            folder = os.path.join(tempfile.gettempdir(), "tsir-fuzz-programs")
            os.makedirs(folder, exist_ok=True)
            path = os.path.join(folder, f"fz_{digest}.py")
            if not os.path.exists(path):
                with open(path, "w") as fh:
                    fh.write(src)
            linecache.checkcache(path)
            ns: dict[str, Any] = {"__name__": f"fz_{digest}", "__file__": path}
            exec(compile(src, path, "exec"), ns)
            self._ns = ns
        return self._ns

    def build(self) -> Any:
        return self.namespace()["kernel"]()

    def make_inputs(self) -> dict[str, Any]:
        rng = np.random.default_rng(self.seed)
        return {p.name: p.make(rng) for p in self.params}

    def expected(self, inputs: dict[str, Any]) -> dict[str, np.ndarray]:
        """The reference's outputs for these inputs (the inputs are not modified)."""
        work = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in inputs.items()}
        self.namespace()["reference"](**work)
        return {name: work[name] for name in self.outputs}

    def device_args(self, inputs: dict[str, Any]) -> list[Any]:
        """The arguments in parameter order, as the arrays a kernel is called with."""
        out = []
        for p in self.params:
            v = inputs[p.name]
            out.append(v if not p.shape else np.asarray(v).astype(storage(p.dtype)))
        return out


def model_array(values: np.ndarray, dtype: str) -> np.ndarray:
    return np.asarray(values).astype(np_dtype(dtype))


def _indent(text: str) -> str:
    return "\n".join(("    " + line) if line.strip() else "" for line in text.split("\n"))
