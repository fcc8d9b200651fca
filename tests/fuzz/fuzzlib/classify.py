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

__all__ = ["KNOWN", "KnownClass", "classify"]


@dataclass(frozen=True)
class KnownClass:
    name: str
    description: str
    regression: str
    """the regression test (path under tests/fuzz/regressions/) that reproduces it"""


KNOWN: dict[str, KnownClass] = {k.name: k for k in [
    KnownClass(
        "python-if-on-symbolic-eq",
        "a Python `if`/`while`/`and`/`or`/`not`/ternary on `==` or `!=` of a symbolic expression is "
        "silently decided (`if tx == 0:` drops its body, `if x != 0:` keeps it)",
        "test_regress_python_if.py",
    ),
    KnownClass(
        "refused-tilelang-slice",
        "T.copy refuses TileLang's slice spelling `A[by * bm:(by + 1) * bm, ...]` with a false "
        "'shape mismatch' (the extent `(by + 1) * bm - by * bm` is not simplified to bm)",
        "test_regress_refusals.py",
    ),
    KnownClass(
        "refused-parallel-broadcast-fragment",
        "a T.Parallel(bm, bn) nest that reads only a 1-D row fragment (`r[i]`) and writes a shared "
        "tile is refused by LowerTileOp ('no thread mapping follows')",
        "test_regress_refusals.py",
    ),
    KnownClass(
        "refused-row-fragment-blk_m-1",
        "a 1-D fragment of one row written by `T.Parallel(1)` gets a thread-0 layout, and the 2-D "
        "nest reading it (layer norm with blk_m = 1) is refused by LowerTileOp",
        "test_regress_row_fragments.py",
    ),
    KnownClass(
        "refused-fragment-layout-mismatch",
        "a reduction's row fragment read in a 2-D nest whose fragments got another free layout "
        "(from a 16-bit copy with few threads) is refused by LowerTileOp instead of reconciled",
        "test_regress_row_fragments.py",
    ),
]}


def _norm(text: str) -> str:
    text = re.sub(r"`[^`]*`", "`_`", text)
    text = re.sub(r"\b\d+\b", "N", text)
    return text[:120]


def classify(prog: Program, out: Outcome) -> str:
    """The failure class of `out` ('' for a pass)."""
    msg = out.message
    if out.status == "ok":
        return ""
    if out.status == "silent-accept":
        return "python-if-on-symbolic-eq"
    if out.status == "refused" and "T.copy shape mismatch" in msg and re.search(r"\(b[xy] \+ 1\) \*", msg):
        return "refused-tilelang-slice"
    if out.status == "lower-refused" and "indexes none of them with exactly its loop variables" in msg:
        return "refused-parallel-broadcast-fragment"
    if out.status == "lower-refused" and re.search(r"is not held by the threads that hold .*input_shape=\(1,\)", msg):
        return "refused-row-fragment-blk_m-1"
    if out.status == "lower-refused" and "is not held by the threads that hold" in msg:
        return "refused-fragment-layout-mismatch"
    if out.status == "nvrtc":
        return "nvrtc: " + _norm(msg)
    if out.status == "internal":
        return f"internal: {msg}"
    if out.status in ("refused", "lower-refused"):
        return f"{out.status}: {_norm(msg)}"
    return f"{out.status}: {_norm(msg)}"
