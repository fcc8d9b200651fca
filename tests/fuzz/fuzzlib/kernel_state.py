"""What the generator knows while it writes a kernel: buffers, whether they hold data, and the
two source texts (builder and numpy) it appends to in step."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from .choose import Chooser
from .expr_gen import Ex
from .program import ParamSpec, Src

__all__ = ["Buf", "KernelState", "SCOPE_ALLOC"]

SCOPE_ALLOC = {"shared": "T.alloc_shared", "frag": "T.alloc_fragment"}


@dataclass
class Buf:
    name: str
    scope: str
    """'shared' or 'frag' (on-chip, per block)"""
    shape: tuple[str, ...]
    """extents as source text (names like `bm` or literals)"""
    dims: tuple[int, ...]
    """the same extents as numbers"""
    dtype: str
    init: bool = False
    exact: bool = True
    lo: float = 0.0
    hi: float = 0.0
    fb: int = 0

    @property
    def ndim(self) -> int:
        return len(self.dims)

    def shape_t(self) -> str:
        return "(" + ", ".join(self.shape) + ("," if len(self.shape) == 1 else "") + ")"


@dataclass
class KernelState:
    ch: Chooser
    k: Src
    """builder code, inside the T.Kernel block"""
    m: Src
    """numpy code, inside the per-block loop"""
    params: list[ParamSpec] = field(default_factory=list)
    bufs: dict[str, Buf] = field(default_factory=dict)
    features: set[str] = field(default_factory=set)
    counter: int = 0

    def fresh(self, stem: str) -> str:
        self.counter += 1
        return f"{stem}{self.counter}"

    def both(self, kernel_line: str, model_line: str | None) -> None:
        self.k(kernel_line)
        if model_line is not None:
            self.m(model_line)

    @contextlib.contextmanager
    def blocks(self, kernel_header: str, model_header: str | None) -> Iterator[None]:
        with self.k.block(kernel_header):
            if model_header is None:
                yield
            else:
                with self.m.block(model_header):
                    yield

    def alloc(
        self, scope: str, shape: tuple[str, ...], dims: tuple[int, ...], dtype: str, stem: str = ""
    ) -> Buf:
        name = self.fresh(stem or ("s" if scope == "shared" else "f"))
        b = Buf(name, scope, shape, dims, dtype)
        self.bufs[name] = b
        fill = "np.zeros({}, np.int64) - 77777" if dtype == "int32" else "np.full({}, np.nan)"
        self.k(f'{name} = {SCOPE_ALLOC[scope]}({b.shape_t()}, "{dtype}")')
        self.m(f"{name} = " + fill.format(b.shape_t()))
        self.features.add(f"alloc-{scope}-{dtype}")
        return b

    def written(self, b: Buf, value: Ex | None, *, whole: bool = True, keep: bool = False) -> None:
        """Record a write of `value`'s range into `b` (whole: every element; keep: merge ranges)."""
        if value is None:
            b.init = b.init or whole
            return
        if keep and b.init:
            b.lo, b.hi = min(b.lo, value.lo), max(b.hi, value.hi)
            b.exact = b.exact and value.exact
            b.fb = max(b.fb, value.fb)
        else:
            b.lo, b.hi, b.exact, b.fb = value.lo, value.hi, value.exact, value.fb
        if whole:
            b.init = True

    def tiles(self, ndim: int, *, init: bool = True, scope: str | None = None) -> list[Buf]:
        return [
            b
            for b in self.bufs.values()
            if b.ndim == ndim and (b.init or not init) and (scope is None or b.scope == scope)
        ]

    def as_leaf(self, b: Buf, t_index: str, n_view: str) -> Ex:
        return Ex(f"{b.name}[{t_index}]", n_view, b.dtype, b.lo, b.hi, b.exact, b.fb)


def clone_buf(b: Buf) -> Buf:
    return replace(b)
