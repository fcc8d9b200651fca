"""Family `misuse`: Python control flow on symbolic expressions, which must raise a TSIRError.

DESIGN (additions of 2026-12-07): a Python `if`, `while`, `and`, `or` or `not` on any symbolic
expression, `==` and `!=` included, raises with the hint to use T.If / T.all / T.any. A program
that is silently decided instead is a finding (`if tx == 0:` dropping its body).
"""

from __future__ import annotations

from .choose import Chooser
from .program import ParamSpec, Program, Src

__all__ = ["gen_misuse"]

SUBJECTS = ["tx", "bx", "tx + bx", "X[bx]", "n"]


def gen_misuse(ch: Chooser, seed: int) -> Program:
    subject = ch.choice(SUBJECTS, "subject")
    op = ch.choice(["==", "!=", "<", ">=", "bare"], "comparison")
    form = ch.choice(["if", "while", "and", "or", "not", "ternary"], "python construct")
    cond = subject if op == "bare" else f"{subject} {op} {ch.choice([0, 1, 3], 'rhs')}"
    b = Src()
    b("tx = T.get_thread_binding()")
    if form == "if":
        with b.block(f"if {cond}:"):
            b("Y[bx * 32 + tx] = 1.0")
    elif form == "while":
        with b.block(f"while {cond}:"):
            b("Y[bx * 32 + tx] = 1.0")
            b("break")
    elif form in ("and", "or"):
        b(f"c = ({cond}) {form} (tx > 1)")
        b("Y[bx * 32 + tx] = T.if_then_else(c, 1.0, 2.0)")
    elif form == "not":
        b(f"c = not ({cond})")
        b("Y[bx * 32 + tx] = T.if_then_else(c, 1.0, 2.0)")
    else:
        b(f"Y[bx * 32 + tx] = 1.0 if {cond} else 2.0")
    k = Src()
    with k.block('with T.prim_func("fz_misuse") as f:'):
        k('X = T.param("X", (2,), "int32")')
        k('Y = T.param("Y", (64,), "float32")')
        k('n = T.scalar("n", "int32")')
        with k.block("with T.Kernel(2, threads=32) as bx:"):
            k.extend(b)
    k("return f.func")
    params = [
        ParamSpec("X", "int32", (2,)),
        ParamSpec("Y", "float32", (64,), output=True),
        ParamSpec("n", "int32", (), 1, 1),
    ]
    feats = {
        f"misuse-{form}",
        f"misuse-op{'-bare' if op == 'bare' else op}",
        f"misuse-subject-{subject.split('[')[0]}",
    }
    return Program("misuse", seed, k.text(), "pass", params, {}, feats, expect_error="TSIRError")
