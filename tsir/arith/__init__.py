"""Arithmetic analysis: simplification, bounds, modular sets and proofs, with Z3 as the fallback.

See `Analyzer`. The pieces: `canonical` (sums of monomials), `rewrite_*` (rule tables, run by
`simplify`), `bound` (intervals), `modular` (congruences), `facts` (assumptions), `z3_prover` (exact
proofs under a deterministic budget), `const_fold` and `evaluate` (dtype-exact semantics).
"""

from .analyzer import Analyzer, ConstIntBound, ModularSet, Proof
from .evaluate import evaluate

__all__ = ["Analyzer", "ConstIntBound", "ModularSet", "Proof", "evaluate"]
