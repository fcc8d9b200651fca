"""Layouts for fragments read where another fragment decides which thread runs: replication.

A `T.Parallel` nest runs each iteration in the thread that holds its anchor element. A fragment `B`
it reads with fewer indices than the nest has loop variables (`mask[j]` in a nest over `i, j`), or
with indices that are not loop variables at all (a `T.serial` variable outside the nest), must then
be held by every thread that runs an iteration reading it: B is replicated.

`projected_fragment` builds the cheapest such layout tsir knows, from the anchor's thread map,
digit by digit (the mixed-radix digits of the prime factors of each extent):
- B's dimensions indexed by a loop variable keep the digits of that variable the anchor's thread
  depends on as the thread, the others become B's registers;
- the loop variables B does not index, and the anchor's replicas, contribute their thread digits as
  B's replicas (one replica per distinct thread, never two copies in one thread);
- B's dimensions indexed by anything else (a serial variable) are held whole by every holder.

The result is checked by enumeration (no two replicas in one slot, every thread running an
iteration holds what it reads) and refused (None) otherwise: the caller then falls back to
`Fragment.fully_replicated`, every thread holding all of B, which always works.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..expr import IntImm, PrimExpr, Var
from ..layout import Fragment
from ..layout.layout import simplify_over
from ..layout.numeric import MAX_POINTS, const_shape, evaluate_grid, grid
from ..visitor import collect, substitute

__all__ = ["projected_fragment", "register_digits", "replication_cost"]


@dataclass(frozen=True)
class _Digit:
    dim: int  # which input (a loop dimension, or the anchor's replica: len(loop extents))
    place: int
    radix: int


def _primes(n: int) -> list[int]:
    out, p = [], 2
    while n > 1 and p * p <= n:
        while n % p == 0:
            out.append(p)
            n //= p
        p += 1
    if n > 1:
        out.append(n)
    return out


def _digits(dim: int, extent: int) -> list[_Digit]:
    out, place = [], 1
    for r in _primes(extent):
        out.append(_Digit(dim, place, r))
        place *= r
    return out


def projected_fragment(
    anchor: Fragment, loop_vars: Sequence[Var], shape: Sequence[Any], indices: Sequence[PrimExpr]
) -> Fragment | None:
    """A layout for a buffer of `shape` read at `indices` in the nest over `loop_vars` whose
    iterations run where `anchor` puts them (see the module docstring), or None."""
    extents, bshape = const_shape(anchor.input_shape), const_shape(shape)
    if extents is None or bshape is None or len(extents) != len(loop_vars):
        return None
    # Which loop dimension each buffer dimension follows (None: an index free of loop variables).
    follows: list[int | None] = []
    for idx, size in zip(indices, bshape):
        pos = next((k for k, v in enumerate(loop_vars) if idx is v), None)
        if pos is None:
            if any(v is lv for v in collect(idx, Var) for lv in loop_vars):
                return None  # an expression of loop variables: no digit structure to follow
            follows.append(None)
        elif pos in follows or size != extents[pos]:
            return None
        else:
            follows.append(pos)
    n = len(extents)
    total = int(np.prod(extents)) * anchor.replicate_size
    if total > MAX_POINTS:
        return None
    pts = grid((*extents, anchor.replicate_size), "fragment")
    thread_of = _thread_table(anchor, pts)

    def matters(d: _Digit) -> bool:
        x = pts[d.dim]
        cleared = [
            p if k != d.dim else x - (x // d.place % d.radix) * d.place for k, p in enumerate(pts)
        ]
        return bool(np.any(_thread_table(anchor, cleared) != thread_of))

    used = {p for p in follows if p is not None}
    sizes = (*extents, anchor.replicate_size)
    rep_digits = [
        d for k in range(n + 1) if k not in used for d in _digits(k, sizes[k]) if matters(d)
    ]
    bvars = tuple(Var(name) for name in "ijklmn"[: len(bshape)])
    rep = Var("rep")
    # The anchor's inputs, in terms of B's variables and B's replica.
    mapping: dict[Var, PrimExpr] = {}
    stride = 1
    spread: dict[int, PrimExpr] = {}
    for d in rep_digits:
        term = (rep // stride) % d.radix * d.place if stride > 1 else rep % d.radix * d.place
        spread[d.dim] = spread[d.dim] + term if d.dim in spread else term
        stride *= d.radix
    for k, v in enumerate(loop_vars):
        if k in used:
            mapping[v] = bvars[follows.index(k)]
        else:
            mapping[v] = spread.get(k, IntImm(0))
    mapping[anchor.rep] = spread.get(n, IntImm(0))
    subst = dict(zip(anchor.vars, (mapping[v] for v in loop_vars)))
    subst[anchor.rep] = mapping[anchor.rep]
    thread = substitute(anchor.forward_thread, subst)
    # Registers: the digits of B's own dimensions that do not choose the thread (the last
    # dimension's low digits least significant, so consecutive elements sit in consecutive ones).
    local: PrimExpr = IntImm(0)
    for dim, (pos, size) in enumerate(zip(follows, bshape)):
        for d in reversed(_digits(dim, size)):
            if pos is not None and matters(_Digit(pos, d.place, d.radix)):
                continue
            local = local * d.radix + bvars[dim] // d.place % d.radix
    box = (*(IntImm(x) for x in bshape), IntImm(stride))
    local, thread = simplify_over((local, thread), (*bvars, rep), box)
    frag = Fragment(box[:-1], bvars, (local,), rep, thread, stride)
    return frag if _works(frag, follows, pts, thread_of) else None


def _thread_table(anchor: Fragment, pts: list[Any]) -> Any:
    env = dict(zip((*anchor.vars, anchor.rep), pts))
    return np.broadcast_to(evaluate_grid(anchor.forward_thread, env), pts[0].shape)


def _works(frag: Fragment, follows: list[int | None], pts: list[Any], thread_of: Any) -> bool:
    """No slot holds two (element, replica) pairs, and the thread of every anchor (element,
    replica) holds the element of B that its iteration reads (any value of the other indices)."""
    try:
        if not frag.is_injective():
            return False
    except Exception:  # noqa: BLE001  (a map outside what the layout tables evaluate)
        return False
    bpts = [pts[p] if p is not None else np.zeros_like(pts[0]) for p in follows]
    held = np.zeros(pts[0].shape, dtype=bool)
    for r in range(frag.replicate_size):
        env = dict(zip(frag.vars, bpts))
        env[frag.rep] = np.full_like(pts[0], r)
        held |= np.broadcast_to(evaluate_grid(frag.forward_thread, env), pts[0].shape) == thread_of
    return bool(held.all())


def replication_cost(frag: Fragment, dtype_bytes: int) -> str:
    """`N registers of B per thread (M bytes)`: what a replicated layout costs."""
    return f"{frag.local_size} element(s) per thread ({frag.local_size * dtype_bytes} bytes)"


def register_digits(
    shape: Sequence[Any], vs: Sequence[Var], thread: PrimExpr, rep: Var, replicate: int
) -> PrimExpr | None:
    """A register index for a fragment given only its thread map: the mixed-radix digits of the
    indices that do not choose the thread (0 when every thread holds one element), or None when
    that numbering puts two elements of a thread in one register."""
    dims = const_shape(shape)
    if dims is None:
        return None
    pts = grid((*dims, replicate), "fragment")
    env = dict(zip((*vs, rep), pts))
    owner = np.broadcast_to(evaluate_grid(thread, env), pts[0].shape)
    local: PrimExpr = IntImm(0)
    for dim, size in enumerate(dims):
        for d in reversed(_digits(dim, size)):
            x = pts[dim]
            cleared = [
                p if k != dim else x - (x // d.place % d.radix) * d.place for k, p in enumerate(pts)
            ]
            moved = np.broadcast_to(
                evaluate_grid(thread, dict(zip((*vs, rep), cleared))), pts[0].shape
            )
            if np.any(moved != owner):
                continue
            local = local * d.radix + vs[dim] // d.place % d.radix
    (local,) = simplify_over((local,), tuple(vs), tuple(IntImm(d) for d in dims))
    slots = np.broadcast_to(evaluate_grid(local, env), pts[0].shape)
    pairs = (
        np.stack([owner, slots], axis=1)[pts[-1] == 0]
        if replicate > 1
        else np.stack([owner, slots], axis=1)
    )
    if len(np.unique(pairs, axis=0)) != len(pairs):
        return None
    return local
