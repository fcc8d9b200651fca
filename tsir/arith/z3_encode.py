"""Turn a canonical query (see z3_prover) into Z3 terms and solve it under a resource limit."""

from __future__ import annotations

from typing import Any

__all__ = ["solve"]

FRESH_CONTEXT = True  # a new Z3 context per query: the answer cannot depend on earlier queries


def _z3() -> Any:
    import z3

    return z3


class _Builder:
    def __init__(self, z3: Any, zctx: Any, sorts: list[str], opaque: list[Any]) -> None:
        self.z3 = z3
        self.zctx = zctx
        self.vars = [
            z3.Bool(f"b{i}", zctx) if s == "bool" else z3.Int(f"v{i}", zctx)
            for i, s in enumerate(sorts)
        ]
        self.opaque = []
        self.side: list[Any] = []  # definitions of auxiliary variables
        for i, s in enumerate(opaque):
            if s == "bool":
                self.opaque.append(z3.Bool(f"ob{i}", zctx))
            else:
                o = z3.Int(f"o{i}", zctx)
                self.opaque.append(o)
                if s is not None:
                    self.side.append(z3.And(o >= s[0], o <= s[1]))
        self.memo: dict[tuple, Any] = {}
        self.divs: dict[tuple, tuple[Any, Any]] = {}
        self.n_aux = 0

    def fresh(self, prefix: str) -> Any:
        self.n_aux += 1
        return self.z3.Int(f"{prefix}{self.n_aux}", self.zctx)

    def int_val(self, v: int) -> Any:
        return self.z3.IntVal(v, self.zctx)

    def build(self, t: tuple) -> Any:
        hit = self.memo.get(t)
        if hit is None:
            hit = self._build(t)
            self.memo[t] = hit
        return hit

    def _divmod(self, a: tuple, b: tuple) -> tuple[Any, Any]:
        key = (a, b)
        hit = self.divs.get(key)
        if hit is not None:
            return hit
        z3 = self.z3
        x = self.build(a)
        q = self.fresh("q")
        if b[0] == "c" and b[1] != 0:
            k = b[1]
            r = x - k * q
            if k > 0:
                self.side.append(z3.And(k * q <= x, x <= k * q + (k - 1)))
            else:
                self.side.append(z3.And(k * q >= x, x >= k * q + (k + 1)))
        else:
            y = self.build(b)
            r = self.fresh("r")
            self.side.append(
                z3.Implies(
                    y != 0,
                    z3.And(
                        x == y * q + r,
                        z3.If(y > 0, z3.And(r >= 0, r < y), z3.And(r <= 0, r > y)),
                    ),
                )
            )
        self.divs[key] = (q, r)
        return q, r

    def _build(self, t: tuple) -> Any:
        z3 = self.z3
        op = t[0]
        if op == "v":
            return self.vars[t[1]]
        if op == "o":
            return self.opaque[t[1]]
        if op == "c":
            return self.int_val(t[1])
        if op == "b":
            return z3.BoolVal(t[1], self.zctx)
        if op == "+":
            return self.build(t[1]) + self.build(t[2])
        if op == "-":
            return self.build(t[1]) - self.build(t[2])
        if op == "*":
            return self.build(t[1]) * self.build(t[2])
        if op == "wrap":
            _, bits, lo, hi, inner = t
            k = self.fresh("k")
            r = self.build(inner) - (1 << bits) * k
            self.side.append(z3.And(r >= lo, r <= hi))
            return r
        if op == "fdiv":
            return self._divmod(t[1], t[2])[0]
        if op == "fmod":
            return self._divmod(t[1], t[2])[1]
        if op in ("min", "max"):
            a, b = self.build(t[1]), self.build(t[2])
            return z3.If(a <= b, a, b) if op == "min" else z3.If(a >= b, a, b)
        if op == "ite":
            return z3.If(self.build(t[1]), self.build(t[2]), self.build(t[3]))
        if op == "b2i":
            return z3.If(self.build(t[1]), self.int_val(1), self.int_val(0))
        if op == "i2b":
            return self.build(t[1]) != 0
        if op == "<":
            return self.build(t[1]) < self.build(t[2])
        if op == "<=":
            return self.build(t[1]) <= self.build(t[2])
        if op == "==":
            return self.build(t[1]) == self.build(t[2])
        if op == "!=":
            return self.build(t[1]) != self.build(t[2])
        if op == "and":
            return z3.And(self.build(t[1]), self.build(t[2]))
        if op == "or":
            return z3.Or(self.build(t[1]), self.build(t[2]))
        if op == "not":
            return z3.Not(self.build(t[1]))
        if op == "in":
            x = self.build(t[1])
            return z3.And(x >= t[2], x <= t[3])
        raise ValueError(f"unknown term {op!r}")


def solve(
    variables: list[Any],
    sorts: list[str],
    opaque: list[Any],
    constraints: list[tuple],
    goal: tuple,
    rlimit: int,
    want_model: bool,
) -> tuple[str, Any]:
    """("proved" | "refuted" | "unknown", model or None)."""
    z3 = _z3()
    zctx = z3.Context() if FRESH_CONTEXT else z3.main_ctx()
    try:
        b = _Builder(z3, zctx, sorts, opaque)
        hyps = [b.build(c) for c in constraints]
        neg = z3.Not(b.build(goal))
        s = z3.SimpleSolver(ctx=zctx)
        if rlimit:
            s.set("rlimit", rlimit)
        s.add(*b.side, *hyps, neg)
        r = s.check()
    except z3.Z3Exception:
        return "unknown", None
    if r == z3.unsat:
        return "proved", None
    if r == z3.sat:
        model = None
        if want_model:
            m = s.model()
            model = {}
            for v, zv in zip(variables, b.vars):
                val = m.eval(zv, model_completion=True)
                model[v] = bool(z3.is_true(val)) if z3.is_bool(val) else val.as_long()
        return "refuted", model
    return "unknown", None
