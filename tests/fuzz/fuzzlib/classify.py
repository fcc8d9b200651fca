"""Failure classes: an outcome's class from its status, message and the program's features.

`KNOWN` lists the classes found so far, each with the regression test that reproduces it
(`tests/fuzz/regressions/`, marked xfail until the lead fixes it). The CI budget fails on any
failure outside `KNOWN`; when a class is fixed, its xfail turns into an XPASS (strict), and the
lead removes the mark and the entry here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .harness import Outcome
from .program import Program
from .signature import statement_roles

__all__ = ["KNOWN", "KnownClass", "classify"]


@dataclass(frozen=True)
class KnownClass:
    name: str
    description: str
    regression: str
    """the regression test (path under tests/fuzz/regressions/) that reproduces it"""


KNOWN: dict[str, KnownClass] = {
    k.name: k
    for k in [
        # -- wrong code: a detector fires or the numbers are wrong ---------------------------------
        KnownClass(
            "missing-barrier-gemm-shared",
            "a gemm reads shared tiles just written by copies or T.Parallel (and the next "
            "iteration overwrites them) with no barrier: serial loops, num_stages 0/1, "
            "Parallel-staged operands",
            "test_regress_barriers.py",
        ),
        KnownClass(
            "shared-atomic-after-init-no-barrier",
            "shared-memory atomics (a histogram) race with the plain writes that zero the "
            "buffer: no barrier between them",
            "test_regress_barriers.py",
        ),
        KnownClass(
            "fragment-read-by-non-holder",
            "a T.Parallel(blk_m) loop that also stores to global is lowered for the storing "
            "threads only; the 2-D nest then reads the row fragment in threads that never "
            "wrote it (TileLang's layer norm)",
            "test_regress_fragments.py",
        ),
        KnownClass(
            "reduce-reads-unheld-registers",
            "T.reduce_* reads fragment registers in threads that hold no element "
            "(blk_m * N < threads); values discarded, outputs right",
            "test_regress_fragments.py",
        ),
        KnownClass(
            "atomic-add-replicated-fragment",
            "T.atomic_add of a fragment held by several threads (a dim-0 reduction) adds each "
            "element once per replica",
            "test_regress_fragments.py",
        ),
        KnownClass(
            "tile-op-in-thread-if",
            "a tile op inside `with T.If(tx < k)` (or tx >= k) is still spread over all "
            "threads, so part of it is never done",
            "test_regress_thread_if.py",
        ),
        KnownClass(
            "barrier-in-divergent-branch",
            "ThreadSync puts __syncthreads() inside a data-dependent T.If/T.Else of a "
            "T.Parallel nest (divergent barrier)",
            "test_regress_barriers.py",
        ),
        KnownClass(
            "shared-waw-no-barrier",
            "two ops write one shared tile with different thread mappings and no barrier "
            "between them (ThreadSync orders only RAW and WAR)",
            "test_regress_barriers.py",
        ),
        KnownClass(
            "vectorize-drops-lane-condition",
            "VectorizeLoop's all-lanes fast path gets the predicate `True` for a per-lane "
            "condition like `j != 1`, so the excluded element is written anyway",
            "test_regress_vectorize.py",
        ),
        KnownClass(
            "pipelined-loop-reentry-war",
            "a pipelined gemm loop run again (inside an outer loop): the next pass's prologue "
            "overwrites the stage the previous pass's last gemm reads, with no barrier",
            "test_regress_pipeline.py",
        ),
        KnownClass(
            "pipelined-stage-read-after-loop",
            "reading a pipelined loop's staged shared tile after the loop (or reusing it in a "
            "second loop) refers to the buffer InjectSoftwarePipeline replaced: NVRTC fails "
            '(`identifier "x_1" is undefined`)',
            "test_regress_pipeline.py",
        ),
        # -- silently accepted ---------------------------------------------------------------------
        KnownClass(
            "python-if-on-symbolic-eq",
            "a Python `if`/`while`/`and`/`or`/`not`/ternary on `==` or `!=` of a symbolic "
            "expression is silently decided (`if tx == 0:` drops its body)",
            "test_regress_python_if.py",
        ),
        # -- legitimate programs refused -----------------------------------------------------------
        KnownClass(
            "refused-tilelang-slice",
            "T.copy refuses TileLang's `A[by * bm:(by + 1) * bm, ...]` with a false 'shape "
            "mismatch' (the extent is not simplified to bm)",
            "test_regress_refusals.py",
        ),
        KnownClass(
            "refused-parallel-broadcast-fragment",
            "a T.Parallel(bm, bn) nest whose only fragment is a 1-D row fragment and that "
            "writes shared memory is refused by LowerTileOp",
            "test_regress_refusals.py",
        ),
        KnownClass(
            "refused-row-fragment-blk_m-1",
            "a 1-D fragment of one row written by T.Parallel(1) gets a thread-0 layout; the "
            "2-D nest reading it is refused",
            "test_regress_fragments.py",
        ),
        KnownClass(
            "refused-fragment-layout-mismatch",
            "a reduction's row fragment read in a 2-D nest whose fragments got another free "
            "layout (16-bit copy, few threads) is refused instead of reconciled",
            "test_regress_fragments.py",
        ),
        KnownClass(
            "refused-fragment-odd-rows",
            "a fragment with a non-power-of-two row count spread over several rows per thread "
            "((3, 16) with 32 threads) is refused with an internal hint ('use "
            "inverse_with_guard()')",
            "test_regress_refusals.py",
        ),
        # -- the interpreter -----------------------------------------------------------------------
        KnownClass(
            "interp-tile-local-per-thread",
            "the tile-level interpreter treats T.alloc_local as one value per block and stops "
            "on TileLang's split-k gemv",
            "test_regress_interp.py",
        ),
    ]
}


def _norm(text: str) -> str:
    text = re.sub(r"`[^`]*`", "`_`", text)
    text = re.sub(r"\b\d+\b", "N", text)
    return text[:120]


def _race_class(out: Outcome, feats: set[str]) -> str:
    roles = statement_roles(out.message)
    kinds = {r for _, r, _ in roles}
    access = [a for a, _, _ in roles]
    if "gemm" in kinds:
        # Operands staged by copies in a loop pipelined 2+ deep get their in-loop barriers; a race
        # there comes from running the loop again (an outer loop) while the last gemm reads.
        pipelined = any(f.startswith("gemm-stages") and f[-1] in "234" for f in feats)
        only_copies = not any(f.startswith("gemm-stage-") and f != "gemm-stage-copy" for f in feats)
        if (
            "gemm-outer-loop" in feats
            and pipelined
            and only_copies
            and "gemm-chain-parallel" not in feats
        ):
            return "pipelined-loop-reentry-war"
        return "missing-barrier-gemm-shared"
    if "atomic" in kinds or any(a.startswith("atomic") for a in access):
        return "shared-atomic-after-init-no-barrier"
    if "reduce-scratch" in kinds:
        return "race-reduction-scratch"
    if "cp.async" in kinds:
        return "race-cp-async"
    if access.count("write") == 2:
        return "shared-waw-no-barrier"
    return "shared-raw-no-barrier"


def classify(prog: Program, out: Outcome) -> str:
    """The failure class of `out` ('' for a pass)."""
    msg = out.message
    feats = prog.features
    if out.status == "ok":
        return ""
    if out.status == "silent-accept":
        return "python-if-on-symbolic-eq"
    if (
        out.status == "refused"
        and "T.copy shape mismatch" in msg
        and re.search(r"\(b[xy] \+ 1\) \*", msg)
    ):
        return "refused-tilelang-slice"
    if (
        out.status == "lower-refused"
        and "indexes none of them with exactly its loop variables" in msg
    ):
        return "refused-parallel-broadcast-fragment"
    if out.status == "lower-refused" and re.search(
        r"is not held by the threads that hold .*input_shape=\(1,\)", msg
    ):
        return "refused-row-fragment-blk_m-1"
    if out.status == "lower-refused" and "is not held by the threads that hold" in msg:
        return "refused-fragment-layout-mismatch"
    if out.status == "lower-refused" and "does not fill its physical box" in msg:
        return "refused-fragment-odd-rows"
    if out.status == "detector":
        kind = out.error_type
        if kind == "DataRaceError":
            return _race_class(out, feats)
        if kind == "UninitializedReadError":
            return (
                "reduce-reads-unheld-registers" if "_acc[" in msg else "fragment-read-by-non-holder"
            )
        if kind == "DivergentBarrierError":
            return "barrier-in-divergent-branch"
        return f"detector {kind} @{out.stage}"
    if (
        out.status == "interp-error"
        and "threads write different values" in msg
        and "local" in msg.lower()
    ):
        return "interp-tile-local-per-thread"
    if out.status == "mismatch":
        if out.stage == "VectorizeLoop" and "parallel-index-if" in feats:
            return "vectorize-drops-lane-condition"
        if any(f.startswith("thread-if-") for f in feats):
            return "tile-op-in-thread-if"
        if feats & {"atomic-global-tile", "atomic-global-elem"} and any(
            f.endswith("-dim0") for f in feats
        ):
            return "atomic-add-replicated-fragment"
        if "parallel1d-global-store" in feats:
            return "fragment-read-by-non-holder"
        return f"mismatch @{out.stage} [{prog.family}]"
    staged_after = {"loop-read-stage-after", "loop-reuse-stage"}
    if out.status == "nvrtc" and "is undefined" in msg and feats & staged_after:
        return "pipelined-stage-read-after-loop"
    if (
        out.status == "interp-error"
        and "is used where it is not allocated" in msg
        and feats & staged_after
    ):
        return "pipelined-stage-read-after-loop"
    if out.status == "nvrtc":
        return "nvrtc: " + _norm(msg)
    if out.status == "internal":
        return f"internal: {msg}"
    return f"{out.status}: {_norm(msg)}"
