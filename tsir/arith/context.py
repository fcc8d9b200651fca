"""What the analyzer knows: variable ranges and substitutions, assumed facts, and per-state caches.

Caches of results that depend on this knowledge (simplify, bounds, modular sets, proofs) belong to
one
*state*; entering or leaving an `assume` scope or binding a variable switches to another state.
Leaving a
scope brings back the caches of the enclosing state unless a variable was bound inside it (bindings
are
permanent, so those caches may be stale).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..expr import PrimExpr, Var
from ..node import node_fields
from .canonical import Sum
from .facts import index_fact, propagate
from .intern import Interner
from .simplify import simplify

__all__ = ["Context", "Fact", "Caches"]


@dataclass(slots=True)
class Fact:
    """One assumed conjunct; `linear` is set when it reads `linear <= 0` ("le") or `== 0` ("eq")."""

    cond: PrimExpr
    linear: Sum | None = None
    rel: str = ""
    for_z3: bool = (
        True  # False for facts that only restate a bound range (Z3 gets the range itself)
    )
    var: Var | None = None  # the variable whose range this fact restates


@dataclass(slots=True)
class Caches:
    simp: dict[int, PrimExpr] = field(default_factory=dict)
    bound: dict[int, tuple[int, int]] = field(default_factory=dict)
    modular: dict[int, tuple[int, int]] = field(default_factory=dict)
    prove: dict[int, Any] = field(default_factory=dict)  # -> Proof
    defs: dict[int, list] = field(default_factory=dict)
    var_table: dict[int, tuple[int, int]] | None = None  # variable bounds from ranges and facts


@dataclass(slots=True)
class _Frame:
    n_facts: int
    caches: Caches
    bind_gen: int


class Context:
    def __init__(self) -> None:
        self.interner = Interner()
        self.node_by_id: dict[int, PrimExpr] = {}
        self.sums: dict[int, Sum] = {}  # structural: valid in every state
        # knowledge
        self.ranges: dict[int, tuple[Var, PrimExpr, PrimExpr]] = {}  # var id -> (var, min, extent)
        self.substs: dict[int, tuple[Var, PrimExpr]] = {}
        self.facts: list[Fact] = []  # scoped (assume)
        self.perm_facts: list[Fact] = []  # permanent (from bind)
        self._free_vars: dict[int, frozenset[int]] = {}
        # indexes over facts (rebuilt when a scope closes)
        self.var_facts: dict[int, list[Fact]] = {}  # atom id -> linear facts with it as a lone term
        self.atom_facts: dict[int, list[Fact]] = {}  # atom id -> linear facts mentioning it
        self.var_mod: dict[int, list[tuple[int, int]]] = {}  # var id -> [(m, r)]: var % m == r
        self.known: dict[int, bool] = {}  # interned condition id -> its truth value under the facts
        # state
        self.cache = Caches()
        self._frames: list[_Frame] = []
        self._bind_gen = 0
        self.guard: set[int] = set()  # vars whose bound is being computed (cycle guard)
        self.guard_hits = 0
        self.bound_decisions = 0  # comparisons decided by bounds or facts inside simplify

    # state switching ------------------------------------------------------------------------------
    def new_state(self) -> None:
        self.cache = Caches()

    def after_bind(self) -> None:
        self._bind_gen += 1
        self._free_vars.clear()
        self.new_state()

    def push(self) -> None:
        self._frames.append(_Frame(len(self.facts), self.cache, self._bind_gen))
        self.new_state()

    def pop(self) -> None:
        frame = self._frames.pop()
        del self.facts[frame.n_facts :]
        self.reindex()
        self.cache = frame.caches if frame.bind_gen == self._bind_gen else Caches()

    def add_fact(self, fact: Fact, permanent: bool = False) -> None:
        (self.perm_facts if permanent else self.facts).append(fact)
        self._index(fact)
        self.new_state()

    def all_facts(self) -> list[Fact]:
        return [f for f in (*self.perm_facts, *self.facts) if f.for_z3]

    def reindex(self) -> None:
        self.var_facts = {}
        self.atom_facts = {}
        self.var_mod = {}
        self.known = {}
        for f in (*self.perm_facts, *self.facts):
            self._index(f)

    def free_var_ids(self, e: PrimExpr) -> frozenset[int]:
        """Ids of the variables an interned expression depends on (through substitutions too)."""
        hit = self._free_vars.get(id(e))
        if hit is not None:
            return hit
        if isinstance(e, Var):
            sub = self.substs.get(id(e))
            out = frozenset((id(e),))
            if sub is not None:
                self._free_vars[id(e)] = out  # cycle guard
                out = out | self.free_var_ids(sub[1])
        else:
            acc: set[int] = set()
            for f in node_fields(e):
                v = getattr(e, f.name)
                for x in v if isinstance(v, tuple) else (v,):
                    if isinstance(x, PrimExpr):
                        acc |= self.free_var_ids(x)
            out = frozenset(acc)
        self._free_vars[id(e)] = out
        return out

    def _index(self, f: Fact) -> None:
        index_fact(self, f)

    def var_bounds(self) -> dict[int, tuple[int, int]]:
        """The variable bounds of the current state (ranges and facts, propagated once per state;
        `const_int_bound` reads them)."""
        table = self.cache.var_table
        return propagate(self) if table is None else table

    def simplify(self, e: PrimExpr) -> PrimExpr:
        """`e` simplified under this context (for rewrite rules that simplify a subterm)."""
        return simplify(self, e)
