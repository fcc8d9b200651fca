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
        # -- silently accepted ---------------------------------------------------------------------
        # -- legitimate programs refused -----------------------------------------------------------
        KnownClass(
            "refused-fragment-in-thread-range",
            "a fragment op under `with T.If(tx < k)` is refused: fragments are laid out over "
            "all the block's threads, not over the range that runs the op",
            "test_regress_thread_if.py",
        ),
        KnownClass(
            "refused-parallel-broadcast-fragment",
            "a T.Parallel(bm, bn) nest whose only fragment is a 1-D row fragment and that "
            "writes shared memory is refused by LowerTileOp",
            "test_regress_refusals.py",
        ),
        KnownClass(
            "refused-fragment-layout-mismatch",
            "a reduction's row fragment read in a 2-D nest whose fragments got another free "
            "layout (16-bit copy, few threads) is refused instead of reconciled",
            "test_regress_fragments.py",
        ),
        # -- the interpreter -----------------------------------------------------------------------
    ]
}


def _norm(text: str) -> str:
    text = re.sub(r"`[^`]*`", "`_`", text)
    text = re.sub(r'"[^"]*"', '"_"', text)  # NVRTC quotes the identifier it names
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
    if out.status == "lower-refused" and re.search(
        r"under a T.If that runs in threads .* touches fragment", msg
    ):
        return "refused-fragment-in-thread-range"
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
        if "async-global-no-sync" in feats:
            # Two tile ops on the same global elements with no barrier of the user's between
            # them: the tile level orders them, ThreadSync (shared memory only) does not.
            return "global-hazard-between-tile-ops"
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
