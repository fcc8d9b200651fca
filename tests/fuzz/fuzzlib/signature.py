"""A failure's signature: the facts that separate one bug class from another, read from the
detector's report (kind, the two statements' roles and the passes that produced them, the
stage) or from the program (family, loop kind, staging) for wrong numbers."""

from __future__ import annotations

import re

from .harness import Outcome
from .program import Program

__all__ = ["signature", "statement_roles"]

_ROLE_PATTERNS = [
    ("gemm", r"gemm_ss|gemm_rs|gemm_sr|\.gemm"),
    ("cp.async", r"cp_async"),
    ("atomic", r"atomic_add|atomicAdd"),
    ("reduce-scratch", r"_red\["),
    ("shuffle", r"shfl"),
    ("cumsum", r"cumsum"),
    ("barrier", r"sync_threads"),
]


def _role(stmt: str) -> str:
    for name, pat in _ROLE_PATTERNS:
        if re.search(pat, stmt):
            return name
    return "plain"


def statement_roles(message: str) -> list[tuple[str, str, str]]:
    """[(access, role, pass)] for each statement a detector report names."""
    out = []
    lines = message.split("\n")
    for k, line in enumerate(lines):
        m = re.match(
            r"\s*(atomic )?(write|read|barrier reached|barrier not reached|read of|access)"
            r"(?: \(and other threads\))? by\b"
            r"(?:.*?\[produced by pass (\w+)\])?",
            line,
        )
        if m and k + 1 < len(lines):
            out.append(((m.group(1) or "") + m.group(2), _role(lines[k + 1]), m.group(3) or "?"))
    return out


def signature(prog: Program, out: Outcome) -> str:
    if out.status == "detector":
        kind = out.error_type.replace("Error", "")
        roles = statement_roles(out.message)
        parts = "; ".join(f"{a} {r} ({p})" for a, r, p in roles)
        return f"{kind} @{out.stage}: {parts}"
    if out.status in ("mismatch", "tile-mismatch"):
        return f"{out.status} @{out.stage} [{prog.family}]"
    return f"{out.status} @{out.stage}"
