"""A seeded corpus of lemmas typical of tiled index arithmetic, true and false ones mixed.

Used by the differential test against TVM's analyzer and by `benchmarks/arith_vs_tvm.py`. Each lemma
is a condition over variables with ranges and optional assumptions; the generator is deterministic
for a seed, and `Lemma.points` samples assignments (satisfying the assumptions) for ground-truth
checks.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from tsir.arith.evaluate import evaluate
from tsir.dtype import DataType
from tsir.expr import EQ, FloorDiv, FloorMod, IntImm, Max, Min, PrimExpr, Select, Var

__all__ = ["Lemma", "generate", "CATEGORIES"]


@dataclass
class Lemma:
    category: str
    cond: PrimExpr
    ranges: list[tuple[Var, int | PrimExpr, int | PrimExpr]]
    assumptions: list[PrimExpr] = field(default_factory=list)

    def points(self, rng: random.Random, n: int, tries: int = 20000) -> list[dict[Var, int]]:
        """Up to n assignments inside the ranges that satisfy the assumptions (corners first)."""
        out: list[dict[Var, int]] = []
        residues = self._residues()
        for k in range(tries):
            env: dict[Var, int] = {}
            ok = True
            for v, lo, ext in self.ranges:
                lo_v = lo if isinstance(lo, int) else evaluate(lo, env)
                ext_v = ext if isinstance(ext, int) else evaluate(ext, env)
                if ext_v <= 0:
                    ok = False
                    break
                r = rng.random() if k >= 8 else (0.0 if k % 2 == 0 else 0.999999)
                if k >= 8 and r < 0.2:
                    env[v] = int(lo_v) if r < 0.1 else int(lo_v + ext_v - 1)
                else:
                    env[v] = int(lo_v + int(r * ext_v))
                if id(v) in residues:  # an assumed `v % m == r`: move to the next such value
                    m, want = residues[id(v)]
                    env[v] += (want - env[v]) % m
                    if env[v] > lo_v + ext_v - 1:
                        env[v] -= m
                    if env[v] < lo_v:
                        ok = False
                        break
            if ok and all(evaluate(a, env) == 1 for a in self.assumptions):
                out.append(env)
                if len(out) >= n:
                    break
        return out

    def _residues(self) -> dict[int, tuple[int, int]]:
        out = {}
        for a in self.assumptions:
            if isinstance(a, EQ) and isinstance(a.a, FloorMod) and isinstance(a.a.a, Var):
                m, r = a.a.b, a.b
                if isinstance(m, IntImm) and isinstance(r, IntImm) and m.value > 0:
                    out[id(a.a.a)] = (m.value, r.value % m.value)
        return out


I32 = DataType("int32")
TILES = [16, 32, 64, 128, 256]


def _v(name: str) -> Var:
    return Var(name, I32)


def _c(value: int) -> PrimExpr:
    return IntImm(value, I32)


def _ceildiv(a: PrimExpr | int, b: int) -> PrimExpr:
    return (a + (b - 1)) // b  # type: ignore[operator,return-value]


def _tile_div(r: random.Random) -> Lemma:
    t, g = r.choice(TILES), r.choice([4, 8, 32, 1024])
    bx, tx = _v("bx"), _v("tx")
    ext = t if r.random() < 0.7 else t + r.choice([1, t // 2])
    cond = (bx * t + tx) // t == bx if r.random() < 0.5 else (bx * t + tx) % t == tx
    return Lemma("tile_div", cond, [(bx, 0, g), (tx, 0, ext)])


def _thread_decomp(r: random.Random) -> Lemma:
    threads = r.choice([64, 128, 256, 512])
    w = r.choice([4, 8, 16, 32])
    a = r.choice([2, 4, 8])
    tx = _v("tx")
    k = r.randrange(6)
    if k == 0:
        cond = (tx // w) * w + tx % w == tx
    elif k == 1:
        cond = ((tx // a) % w) * a + tx % a == tx % (a * w)
    elif k == 2:
        cond = tx // w < threads // w - r.choice([0, 0, 1])
    elif k == 3:
        cond = (tx % w) // a < (w + a - 1) // a - r.choice([0, 1])
    elif k == 4:
        cond = (tx // w) % (threads // w) == tx // w
    else:
        cond = tx % (w * a) // w < a - r.choice([0, 0, 1])
    return Lemma("thread_decomp", cond, [(tx, 0, threads)])


def _guard_static(r: random.Random) -> Lemma:
    bm = r.choice(TILES)
    n = bm * r.choice([1, 3, 8, 32]) + r.choice([0, 0, 0, 1, bm // 2])
    by, i = _v("by"), _v("i")
    grid = n // bm if r.random() < 0.6 else (n + bm - 1) // bm
    cond = by * bm + i < n
    return Lemma("guard_static", cond, [(by, 0, max(grid, 1)), (i, 0, bm)])


def _guard_dynamic(r: random.Random) -> Lemma:
    bm = r.choice(TILES)
    m, by, i = _v("M"), _v("by"), _v("i")
    cond = by * bm + i < m
    k = r.randrange(4)
    ranges = [(m, 1, 1 << 20), (by, 0, _ceildiv(m, bm)), (i, 0, bm)]
    if k == 0:
        return Lemma("guard_dynamic", cond, ranges, [m % bm == 0])
    if k == 1:
        return Lemma("guard_dynamic", cond, ranges, [])
    if k == 2:
        return Lemma("guard_dynamic", cond, [(m, 1, 1 << 20), (by, 0, m // bm), (i, 0, bm)])
    j = _v("j")
    return Lemma("guard_dynamic", j < m, ranges + [(j, 0, bm)], [by * bm + j < m, by == 0])


def _vector_align(r: random.Random) -> Lemma:
    v = r.choice([2, 4, 8, 16])
    s = r.choice([8, 16, 32, 64, 128])
    tx, j, bx = _v("tx"), _v("j"), _v("bx")
    base = bx * s * r.choice([1, 2, 4]) + tx * r.choice([v, v * 2, v // 2 or 1]) + j * s
    mod = v if r.random() < 0.7 else v * 2
    return Lemma("vector_align", base % mod == 0, [(tx, 0, 128), (j, 0, 8), (bx, 0, 64)])


def _minmax(r: random.Random) -> Lemma:
    bm = r.choice(TILES)
    m, by, i = _v("M"), _v("by"), _v("i")
    ranges = [(m, 1, 1 << 16), (by, 0, _ceildiv(m, bm)), (i, 0, bm)]
    k = r.randrange(4)
    if k == 0:
        cond = Min(by * bm + i, m - 1) < m
    elif k == 1:
        cond = Max(by * bm + i - m, _c(0)) < bm
    elif k == 2:
        cond = Min(m - by * bm, _c(bm)) > r.choice([0, 1])
    else:
        cond = Max(i - r.choice([0, 8]), _c(0)) + by * bm < m + bm
    return Lemma("minmax", cond, ranges)


def _linear_bound(r: random.Random) -> Lemma:
    xs = [_v(f"x{k}") for k in range(r.choice([2, 3]))]
    exts = [r.choice([2, 4, 8, 16, 32, 128]) for _ in xs]
    coeffs = [r.choice([1, 2, 4, 8, 16, 32, 128, 3, 5]) for _ in xs]
    e: PrimExpr = xs[0] * coeffs[0]
    for x, c in zip(xs[1:], coeffs[1:]):
        e = e + x * c
    hi = sum(c * (n - 1) for c, n in zip(coeffs, exts))
    cond = e < hi + r.choice([1, 1, 0, 2])
    return Lemma("linear_bound", cond, [(x, 0, n) for x, n in zip(xs, exts)])


def _nested_tiles(r: random.Random) -> Lemma:
    outer, inner = r.choice([(128, 32), (256, 64), (64, 16), (128, 16)])
    bx, tx = _v("bx"), _v("tx")
    k = r.randrange(3)
    if k == 0:
        cond = ((bx * outer + tx) // inner) % (outer // inner) == tx // inner
    elif k == 1:
        cond = (bx * outer + tx) // inner == bx * (outer // inner) + tx // inner
    else:
        cond = ((bx * outer + tx) % outer) // inner < outer // inner - r.choice([0, 1])
    ext = outer if r.random() < 0.8 else outer * 2
    return Lemma("nested_tiles", cond, [(bx, 0, 64), (tx, 0, ext)])


def _pipeline(r: random.Random) -> Lemma:
    bk = r.choice([16, 32, 64])
    kk, ko, kv = _v("kk"), _v("ko"), _v("K")
    cond = ko * bk + kk < kv
    ranges = [(kv, 1, 1 << 16), (ko, 0, _ceildiv(kv, bk)), (kk, 0, bk)]
    assumptions = [kv % bk == 0] if r.random() < 0.5 else [kv % (bk // 2) == 0]
    return Lemma("pipeline", cond, ranges, assumptions)


def _symbolic_div(r: random.Random) -> Lemma:
    x, y, n = _v("x"), _v("y"), _v("N")
    k = r.randrange(3)
    ranges = [(n, 1, 64), (x, 0, 64), (y, 0, n if r.random() < 0.7 else n + 1)]
    if k == 0:
        cond = FloorDiv(x * n + y, n) == x
    elif k == 1:
        cond = FloorMod(x * n + y, n) == y
    else:
        cond = x * n + y < (x + 1) * n
    return Lemma("symbolic_div", cond, ranges)


def _transitive(r: random.Random) -> Lemma:
    i, j, k = _v("i"), _v("j"), _v("k")
    ranges = [(i, 0, 1024), (j, 0, 1024), (k, 0, 1024)]
    off = r.choice([0, 0, 1])
    return Lemma("transitive", i + off < j, ranges, [i < k, k <= j])


def _nonlinear(r: random.Random) -> Lemma:
    a, b = _v("a"), _v("b")
    n = r.choice([16, 64, 256])
    cond = a * b < n * n - r.choice([0, n, 2 * n - 1, 2 * n])
    if r.random() < 0.3:
        cond = a * n + b < n * n
    return Lemma("nonlinear", cond, [(a, 0, n), (b, 0, n)])


def _select(r: random.Random) -> Lemma:
    i, m = _v("i"), _v("M")
    bm = r.choice(TILES)
    e = Select(i < m, i, m - 1)
    cond = e < m if r.random() < 0.6 else e < m - 1
    return Lemma("select", cond, [(m, 1, 1 << 16), (i, 0, bm * 4)])


def _hard(r: random.Random) -> Lemma:
    """Identities that need more than rewriting: rounding, symbolic moduli, disjunctions."""
    a, b, c, m, i = _v("a"), _v("b"), _v("c"), _v("M"), _v("i")
    t = r.choice(TILES)
    k = r.randrange(7)
    off = r.choice([0, 0, 1])
    if k == 0:  # ((b - a) // c) * c + a <= b  for a <= b, c > 0
        cond = ((b - a) // c) * c + a <= b - off
        return Lemma("hard", cond, [(a, 0, 512), (b, 0, 512), (c, 1, 64)], [a <= b])
    if k == 1:
        cond = _ceildiv(m, t) * t >= m + off
        return Lemma("hard", cond, [(m, 1, 1 << 20)])
    if k == 2:
        cond = _ceildiv(m, t) * t - m < t - off
        return Lemma("hard", cond, [(m, 1, 1 << 20)])
    if k == 3:
        cond = FloorMod(i, m) < m - off
        return Lemma("hard", cond, [(m, 1, 4096), (i, 0, 1 << 16)])
    if k == 4:
        cond = (i // 4) // 8 == i // (32 + off)
        return Lemma("hard", cond, [(i, 0, 1 << 16)])
    if k == 5:
        e = i * 8 + a
        cond = (e // t) * t + e % t == e + off
        return Lemma("hard", cond, [(i, 0, 256), (a, 0, 8)])
    cond = (i < t) | (i >= t + off)
    return Lemma("hard", cond, [(i, 0, 4 * t)])


def _solver(r: random.Random) -> Lemma:
    """Lemmas where rounding or products need a solver: averages, monotonic products."""
    a, b, c, d, i = _v("a"), _v("b"), _v("c"), _v("d"), _v("i")
    k = r.randrange(5)
    off = r.choice([0, 0, 1])
    rng = [(a, 0, 1024), (b, 0, 1024)]
    if k == 0:
        cond = (a + b) // 2 >= Min(a, b) + off
        return Lemma("solver", cond, rng)
    if k == 1:
        cond = a * b <= a * c - off
        return Lemma("solver", cond, rng + [(c, 0, 1024)], [b <= c])
    if k == 2:
        cond = i - (i // d) * d < d - off
        return Lemma("solver", cond, [(i, 0, 1 << 16), (d, 1, 512)])
    if k == 3:
        cond = (i // d) * d + i % d == i + off
        return Lemma("solver", cond, [(i, 0, 1 << 16), (d, 1, 512)])
    cond = ((a + b) % d + d) % d == (a + b) % d + off
    return Lemma("solver", cond, rng + [(d, 1, 512)])


CATEGORIES: dict[str, Callable[[random.Random], Lemma]] = {
    "tile_div": _tile_div,
    "thread_decomp": _thread_decomp,
    "guard_static": _guard_static,
    "guard_dynamic": _guard_dynamic,
    "vector_align": _vector_align,
    "minmax": _minmax,
    "linear_bound": _linear_bound,
    "nested_tiles": _nested_tiles,
    "pipeline": _pipeline,
    "symbolic_div": _symbolic_div,
    "transitive": _transitive,
    "nonlinear": _nonlinear,
    "select": _select,
    "hard": _hard,
    "solver": _solver,
}


def generate(n: int = 1300, seed: int = 0) -> list[Lemma]:
    """n lemmas, the categories in turn, parameters drawn from a seeded generator."""
    r = random.Random(seed)
    gens = list(CATEGORIES.values())
    return [gens[k % len(gens)](r) for k in range(n)]
