"""How any fragment layout reduces along one axis: what the reduction needs, read off the layout.

`plan_line_reduction(F, axis, threads)` enumerates the fragment `F` (every element and replica ->
(thread, register)) and finds, for the reduction of each line (the elements that share the kept
coordinate):

- the register classes: registers that hold elements of one line in every thread that holds
  them, so each thread folds the registers of a class into one partial result (a class is one
  result register, its "slot"); the classes must group the registers the same way in every
  thread;
- the exchange: the threads holding one line are `t ^ S` for a set S of XOR masks closed under
  XOR (a butterfly group) whose members hold disjoint parts of the line that together cover it.
  S's lane part (masks < 32) is a butterfly of warp shuffles; its warp part (single thread bits
  >= 32) goes through shared memory. Replicas (threads holding the same part of a line) are not
  in S: each computes the whole result itself;
- the result's layout: line `o` in slot `k(o)` of every thread that held part of it (sorted
  holders are the replicas), written as a Fragment whose maps are fitted affinely to the digits
  of its inputs and checked at every point.

So a row-group tile, a gemm accumulator of any warp policy (mma.sync m16n8 tiles, or the wgmma
accumulator), a replicated or user-annotated fragment reduce along rows or columns alike; a layout
outside this model (a line whose holders are no butterfly group, registers grouped differently
per thread) is refused with the reason.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..errors import UnsupportedError
from ..expr import IntImm, PrimExpr, Var
from ..layout import Fragment
from ..layout.digits import order_combos
from ..layout.layout import placeholders, simplify_over

__all__ = ["LineReduction", "plan_line_reduction", "fit_affine", "register_classes"]


@dataclass(frozen=True)
class LineReduction:
    """The reduction of a fragment along one axis (see the module docstring)."""

    classes: tuple[tuple[int, ...], ...]
    """Slot k of the result folds these source registers (in this order)."""
    lane_masks: tuple[int, ...]
    """A basis of the lane part of S: one butterfly step (`shfl_xor`) each."""
    warp_bits: tuple[int, ...]
    """The thread bits (powers of two >= 32) of S's warp part: combined through shared memory."""
    layout: Fragment
    """The result's layout: line o in slot k(o) of every thread that held part of it."""
    lines: int
    """How many lines (results) there are."""


@lru_cache(maxsize=128)
def plan_line_reduction(src: Fragment, axis: int, num_threads: int) -> LineReduction:
    """The plan to reduce `src` (1-D or 2-D) along `axis` (a 1-D fragment reduces to one line).
    Raises UnsupportedError naming what the layout lacks."""
    shape = src.const_input_shape()
    if shape is None or len(shape) not in (1, 2):
        raise UnsupportedError(
            f"a reduction needs a constant 1-D or 2-D fragment, got shape {src.input_shape}"
        )
    if src.thread_range is not None:
        raise UnsupportedError("fragments bound to a thread sub-range do not reduce yet")
    t = src.table()
    nd = len(shape)
    local = np.zeros(t.size, dtype=np.int64)
    for out, ext in zip(t.outputs[:-1], src.const_output_shape()):
        local = local * ext + out
    thread = t.outputs[-1]
    if nd == 1:
        line, pos, lines, n = np.zeros(t.size, dtype=np.int64), t.inputs[0], 1, shape[0]
    else:
        line, pos = t.inputs[1 - axis], t.inputs[axis]
        lines, n = shape[1 - axis], shape[axis]
    threads = max(int(thread.max()) + 1, num_threads)
    slots = src.local_size
    occ = np.full((threads, slots), -1, dtype=np.int64)  # the line each (thread, register) holds
    occ[thread, local] = line
    part = np.zeros((lines, threads, n), dtype=bool)  # which positions of a line a thread holds
    part[line, thread, pos] = True
    holds = np.asarray(part.any(axis=2))
    masks = _butterfly(part, holds, threads)
    lane = tuple(m for m in masks if m < 32)
    warp = tuple(m for m in masks if m % 32 == 0)
    if not _direct_sum(masks, lane, warp):
        raise UnsupportedError(
            "the threads sharing a line of the fragment differ in lane and warp bits together; "
            "their exchange is neither shuffles nor a per-warp combine"
        )
    warp_bits = tuple(b for b in (1 << k for k in range(5, 31)) if b in warp)
    if set(_span(warp_bits)) != set(warp):
        raise UnsupportedError(
            "the warps sharing a line of the fragment are not a set of thread bits"
        )
    classes, slot_of_line = register_classes(occ, lines)
    layout = _result_layout(holds, slot_of_line, lines)
    return LineReduction(tuple(classes), _basis(lane), warp_bits, layout, lines)


def _span(vectors: tuple[int, ...]) -> list[int]:
    out = [0]
    for v in vectors:
        out += [x ^ v for x in out]
    return out


def _basis(vectors: tuple[int, ...]) -> tuple[int, ...]:
    """A basis of the XOR span of `vectors` (powers of two when they span single bits)."""
    basis: list[int] = []
    span = {0}
    for v in sorted(vectors):
        if v not in span:
            basis.append(v)
            span |= {x ^ v for x in span}
    return tuple(basis)


def _direct_sum(masks: tuple[int, ...], lane: tuple[int, ...], warp: tuple[int, ...]) -> bool:
    return {a ^ b for a in lane for b in warp} == set(masks)


def _butterfly(part: np.ndarray, holds: np.ndarray, threads: int) -> tuple[int, ...]:
    """S: the XOR masks between the threads that hold disjoint parts of one line (checked to be
    closed under XOR and to partition every line from every holder)."""
    first = int(np.flatnonzero(holds[0])[0])
    mine = part[0, first]
    masks = sorted(
        {int(h) ^ first for h in np.flatnonzero(holds[0]) if not (part[0, h] & mine).any()} | {0}
    )
    if {a ^ b for a in masks for b in masks} != set(masks):
        raise UnsupportedError(
            "the threads that share a line of the fragment are not a butterfly group (XOR-closed)"
        )
    for o in range(part.shape[0]):
        members = np.flatnonzero(holds[o])
        total = np.zeros((members.size, part.shape[2]), dtype=np.int64)
        for s in masks:
            partner = members ^ s
            if (partner >= threads).any() or not holds[o, partner].all():
                raise UnsupportedError(
                    f"line {o} of the fragment is held by threads that are no butterfly group "
                    f"(mask {s} leaves it)"
                )
            total += part[o, partner]
        if not (total == 1).all():
            raise UnsupportedError(
                f"the threads holding line {o} of the fragment do not split it into disjoint parts "
                f"the same way"
            )
    return tuple(masks)


def register_classes(occ: np.ndarray, lines: int) -> tuple[list[tuple[int, ...]], np.ndarray]:
    """Registers grouped so that a group holds one line in every thread (greedy, in register
    order), and each line's group (its slot in the result)."""
    groups: list[list[int]] = []
    owner: list[np.ndarray] = []  # per group, the line each thread's registers of it hold (-1)
    for reg in range(occ.shape[1]):
        col = occ[:, reg]
        for g, own in enumerate(owner):
            both = (col >= 0) & (own >= 0)
            if (col[both] == own[both]).all():
                groups[g].append(reg)
                owner[g] = np.where(own >= 0, own, col)
                break
        else:
            groups.append([reg])
            owner.append(col.copy())
    slot = np.full(lines, -1, dtype=np.int64)
    for g, own in enumerate(owner):
        for o in np.unique(own[own >= 0]):
            if slot[o] not in (-1, g):
                raise UnsupportedError(
                    f"line {o} of the fragment sits in different register groups in different "
                    f"threads; its reduction would need per-thread register indexing"
                )
            slot[o] = g
    for t in range(occ.shape[0]):
        held = [own[t] for own in owner if own[t] >= 0]
        if len(held) != len(set(held)):
            raise UnsupportedError(
                f"thread {t} holds one line of the fragment in registers of two groups"
            )
    if (slot < 0).any():
        raise UnsupportedError("a line of the fragment is held by no thread")
    # Only the groups some line sits in are result slots, renumbered densely in order.
    used = sorted(set(slot.tolist()))
    dense = {g: k for k, g in enumerate(used)}
    return [tuple(groups[g]) for g in used], np.array([dense[int(s)] for s in slot], dtype=np.int64)


def _result_layout(holds: np.ndarray, slot: np.ndarray, lines: int) -> Fragment:
    holders = [np.flatnonzero(holds[o]) for o in range(lines)]
    reps = {h.size for h in holders}
    if len(reps) != 1:
        raise UnsupportedError("the lines of the fragment are held by different numbers of threads")
    r = reps.pop()
    (i,) = placeholders(1)
    rep = Var("rep")
    slot_expr = fit_affine((lines,), slot, (i,))
    thread_expr = fit_affine((lines, r), np.stack(holders).reshape(-1), (i, rep))
    if slot_expr is None or thread_expr is None:
        raise UnsupportedError(
            "the reduction's result layout is not an affine map of its line index"
        )
    frag = Fragment((IntImm(lines),), (i,), (slot_expr,), rep, thread_expr, r)
    t = frag.table()
    want = np.stack(holders)  # (lines, r)
    if not (
        np.array_equal(t.outputs[0], np.repeat(slot, r))
        and np.array_equal(t.outputs[1], want.reshape(-1))
    ):
        raise UnsupportedError(
            "the fitted result layout disagrees with the reduction's"
        )  # pragma: no cover
    return frag.condense_rep_var()


def fit_affine(
    extents: tuple[int, ...], values: np.ndarray, variables: tuple[Var, ...]
) -> PrimExpr | None:
    """An expression over `variables` (ranging over `extents`, row-major) equal to `values` at
    every point, affine in the mixed-radix digits of the variables; None when there is none.

    A dimension whose extent does not factor into the map's digits (3 rows dealt over 2 thread
    groups: `i % 2`, `i // 2`) is also tried padded to the next power of two: its digits are
    read at points inside the domain and the map is checked only there."""
    points = np.indices(extents).reshape(len(extents), -1)
    strides = [int(np.prod(extents[d + 1 :], dtype=np.int64)) for d in range(len(extents))]
    padded = tuple(1 << (e - 1).bit_length() if e > 1 else e for e in extents)
    domains = [extents] if padded == extents else [extents, padded]
    for dom in domains:
        for order in itertools.islice(order_combos(dom), 64):
            expr = _fit_order(order, extents, strides, points, values, variables)
            if expr is not None:
                return expr
    return None


def _fit_order(
    order: tuple[tuple[int, ...], ...],
    extents: tuple[int, ...],
    strides: list[int],
    points: np.ndarray,
    values: np.ndarray,
    variables: tuple[Var, ...],
) -> PrimExpr | None:
    digits: list[tuple[int, int, int]] = []  # (dim, place, radix)
    for d, radices in enumerate(order):
        place = 1
        for r in radices:
            digits.append((d, place, r))
            place *= r
    base = int(values[0])
    coef: list[int] = []
    for d, p, _ in digits:
        if p >= extents[d]:  # a padded digit that never varies inside the domain
            coef.append(0)
            continue
        coef.append(int(values[p * strides[d]]) - base)
    pred = np.full(values.shape, base, dtype=np.int64)
    for c, (d, p, r) in zip(coef, digits):
        if c:
            pred = pred + c * ((points[d] // p) % r)
    if not np.array_equal(pred, values):
        return None
    expr: PrimExpr = IntImm(base)
    for (d, p, r), c in _merged(digits, coef):
        v = variables[d]
        term: PrimExpr = v // p if p != 1 else v
        if p * r < extents[d]:
            term = term % r
        expr = expr + term * c if c != 1 else expr + term
    return simplify_over((expr,), variables, tuple(IntImm(e) for e in extents))[0]


def _merged(
    digits: list[tuple[int, int, int]], coef: list[int]
) -> list[tuple[tuple[int, int, int], int]]:
    """Consecutive digits of one variable whose coefficients continue each other (c, c*r, ...)
    as one term: `(x // p) % (r1 * r2) * c`."""
    out: list[tuple[tuple[int, int, int], int]] = []
    for (d, p, r), c in zip(digits, coef):
        if not c:
            continue
        if out:
            (pd, pp, pr), pc = out[-1]
            if pd == d and pp * pr == p and pc * pr == c:
                out[-1] = ((pd, pp, pr * r), pc)
                continue
        out.append(((d, p, r), c))
    return out
