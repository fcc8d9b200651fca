"""LowerCPEngineIntrin: copy-engine transfers written in kernels move to the host program.

Requires: tile ops lowered (runs after LowerTileOp, before SplitHostDevice).
Guarantees: no `CpEngineCopy` is left inside a `KernelLaunch`; each one written in a kernel body now
stands in the host body immediately before that kernel's launch, in the order written; every copy
(host-written ones included) is checked: global or symmetric memory, symmetric on a remote side, a
constant size within both buffers, and only host-computable expressions (scalar parameters, dynamic
dimensions, the rank and the number of ranks).

Why: a copy engine is driven by the host (`cuMemcpyAsync` on a copy stream), not by SM code. The
runtime (`tsir.runtime.cpengine`) executes each host-body copy in program order:
  1. an event recorded on the compute stream after the launches that precede the copy, and waited
     on by the copy stream: the copy starts once those kernels are done;
  2. the copy itself on the copy stream, then, with `signal=(flag, value)`, `cuStreamWriteValue32/64`
     of `value` into the flag on the receiving rank, ordered after the data has landed;
  3. nothing for the kernel launched next: it runs concurrently with the copy and waits on the flag
     itself (`T.wait_eq`), which is how a kernel overlaps its work with the copy it consumes.
So a copy written inside kernel k runs on the copy stream concurrently with kernel k, after every
launch before k, and its flag lets the running kernel k wait for it. After the last step, the compute
stream waits for the copy stream, so later work on the caller's stream sees every copy done.
"""

from __future__ import annotations

from typing import Any

from tsir.cp_engine import check_cp_engine_copy
from tsir.errors import TSIRError
from tsir.expr import Var
from tsir.function import PrimFunc
from tsir.stmt import (
    Allocate,
    AttrStmt,
    CpEngineCopy,
    DeclBuffer,
    KernelLaunch,
    SeqStmt,
    Stmt,
    seq,
)
from tsir.visitor import Mutator, walk

from .infra import PassContext, register_pass

__all__ = ["LowerCPEngineIntrin"]

# Statements a hoistable copy may sit under inside a kernel: they do not repeat or guard it.
_TRANSPARENT = (SeqStmt, Allocate, AttrStmt, DeclBuffer)


def _host_vars(func: PrimFunc) -> set[Var]:
    out: set[Var] = set()
    for p in func.params:
        out.update(v for v in walk(p) if isinstance(v, Var))
    return out


class _Hoist(Mutator):
    """Removes the copies of one kernel body, collecting them in order; refuses nested ones."""

    def __init__(self, kernel: str) -> None:
        super().__init__()
        self.kernel = kernel
        self.copies: list[CpEngineCopy] = []
        self.depth = 0  # non-transparent statements around the current one

    def visit(self, n: Any) -> Any:
        if isinstance(n, CpEngineCopy):
            if self.depth:
                raise TSIRError(
                    f"T.cp_engine_copy inside a loop or branch of kernel `{self.kernel}` cannot be "
                    f"moved to the host; write it at the kernel's top level",
                    where="LowerCPEngineIntrin",
                )
            self.copies.append(n)
            return seq()
        if isinstance(n, SeqStmt):
            items = [self.visit(x) for x in n.stmts]
            if all(a is b for a, b in zip(items, n.stmts)):
                return n
            return seq(*items)  # drops the removed copies' empty sequences
        if isinstance(n, Stmt) and not isinstance(n, _TRANSPARENT):
            self.depth += 1
            try:
                return super().visit(n)
            finally:
                self.depth -= 1
        return super().visit(n)


def _check(c: CpEngineCopy, host_vars: set[Var]) -> None:
    def error(message: str) -> TSIRError:
        return TSIRError(message, where="LowerCPEngineIntrin")

    check_cp_engine_copy(c, host_vars, error)


@register_pass("LowerCPEngineIntrin")
def LowerCPEngineIntrin(func: PrimFunc, ctx: PassContext) -> PrimFunc:
    """Move each T.cp_engine_copy written in a kernel to the host body right before that kernel's
    launch (see the module docstring for the ordering it then has); check every copy."""
    body = func.body
    items = list(body.stmts) if isinstance(body, SeqStmt) else [body]
    if not any(isinstance(n, CpEngineCopy) for n in walk(body)):
        return func
    host_vars = _host_vars(func)
    out: list[Stmt] = []
    for s in items:
        if isinstance(s, CpEngineCopy):
            _check(s, host_vars)
            out.append(s)
            continue
        if isinstance(s, KernelLaunch):
            h = _Hoist(s.name)
            new_body = h.visit(s.body)
            for c in h.copies:
                _check(c, host_vars)
            out.extend(h.copies)
            out.append(s if new_body is s.body else s.replace(body=new_body))
            continue
        if any(isinstance(n, CpEngineCopy) for n in walk(s)):
            raise TSIRError(
                f"T.cp_engine_copy under a host {type(s).__name__} is not supported: write copies "
                f"at the top level of the function body or of a kernel",
                where="LowerCPEngineIntrin",
            )
        out.append(s)
    return func.replace(body=seq(*out))
