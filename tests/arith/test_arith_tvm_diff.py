"""Differential test against apache-tvm's own analyzer on a corpus of tiled-index lemmas.

For every lemma both analyzers are asked `c` and `not c` (TVM at SYMBOLIC_BOUND strength, its Z3
fallback enabled). Requirements: at least 1000 lemmas; we prove at least 99% of what TVM proves; no
contradiction (one side proves c, the other not c); and nothing we prove is false on sampled
assignments (ranges and assumptions respected).
"""

from __future__ import annotations

import random

import pytest
from arith_corpus import generate
from arith_tvm_oracle import TVMOracle, ours, tvm_import_error

from tsir.arith.evaluate import evaluate
from tsir.arith.intern import fmt
from tsir.expr import Not

_TVM_ERROR = tvm_import_error()
pytestmark = pytest.mark.skipif(
    _TVM_ERROR is not None,
    reason=f"apache-tvm (the test extra) does not import here: {_TVM_ERROR}",
)

N_LEMMAS = 1300
SAMPLES = 24


def test_we_prove_what_tvm_proves_and_never_contradict_it() -> None:
    oracle = TVMOracle()
    lemmas = generate(N_LEMMAS, seed=0)
    assert len(lemmas) >= 1000
    ours_proved: set[int] = set()
    tvm_proved: set[int] = set()
    contradictions: list[str] = []
    false_proofs: list[str] = []
    for k, lemma in enumerate(lemmas):
        neg = Not(lemma.cond)
        p, pn = ours(lemma).proved, ours(lemma, neg).proved
        t, tn = oracle.prove(lemma), oracle.prove(lemma, neg)
        if p:
            ours_proved.add(k)
        if t:
            tvm_proved.add(k)
        if (p and tn) or (t and pn):
            contradictions.append(f"{lemma.category}: {fmt(lemma.cond)} ours={p}/{pn} tvm={t}/{tn}")
        if p or pn:
            for point in lemma.points(random.Random(k), SAMPLES):
                if evaluate(lemma.cond, point) != (1 if p else 0):
                    names = {v.name: x for v, x in point.items()}
                    false_proofs.append(f"{lemma.category}: {fmt(lemma.cond)} at {names}")
                    break
    missed = sorted(tvm_proved - ours_proved)
    overlap = len(tvm_proved & ours_proved)
    print(
        f"\n{len(lemmas)} lemmas (TVM {oracle.version}): ours proved {len(ours_proved)}, "
        f"TVM proved {len(tvm_proved)}, both {overlap}, only ours {len(ours_proved - tvm_proved)}, "
        f"only TVM {len(missed)}, contradictions {len(contradictions)}"
    )
    assert not contradictions, "\n".join(contradictions[:20])
    assert not false_proofs, "\n".join(false_proofs[:20])
    detail = "\n".join(f"{lemmas[k].category}: {fmt(lemmas[k].cond)}" for k in missed[:20])
    assert overlap >= 0.99 * len(tvm_proved), f"TVM proves what we do not:\n{detail}"
