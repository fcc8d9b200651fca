"""The source rewrite behind the script forms: Python control flow becomes builder calls.

The user's function body is rewritten (`ast`) so that running it drives the builder `tsir.T`;
everything else (calls, arithmetic, closures, comprehensions) keeps Python's meaning. Line numbers
are kept, so the rewritten code runs "at" the user's lines and every builder error names them.

- `if c:` evaluates `c` once: a Python value picks a branch now (a parse-time `if`); an IR
  condition emits `T.If`/`T.Else` with both branches.
- `and`/`or`/`not`, `x if c else y` and chained comparisons short-circuit on Python values and
  build IR (`&`, `|`, `~`, `T.if_then_else`) on IR values, so no `bool()` of an expression is asked.
- `for` over a builder loop (`T.Parallel`, `T.serial`, ...) is an IR loop; `range(...)` is
  `T.serial`; any other iterable is unrolled by Python.
- `x = v` where `x` holds a `T.alloc_var` stores into it; rebinding a Python name that an enclosing
  run-time loop or `if` cannot see (`acc = acc + x` in a `T.serial` loop) raises. Names bound inside
  a run-time loop or `if` are unusable after it.
- `return`, `break` and `continue` inside run-time scopes raise (the builder cannot honour them).
"""

from __future__ import annotations

import ast
from typing import Any

__all__ = ["transform_function", "HELPERS", "SCOPE"]

HELPERS = "__ts"  # the runtime helper module, put in the rewritten function's globals
SCOPE = "__ts_scope"  # per-call bookkeeping (see runtime.Scope)


def _name(id: str, ctx: ast.expr_context | None = None) -> ast.Name:
    return ast.Name(id=id, ctx=ctx or ast.Load())


def _helper(attr: str) -> ast.Attribute:
    return ast.Attribute(value=_name(HELPERS), attr=attr, ctx=ast.Load())


def _call(func: ast.expr, *args: ast.expr) -> ast.Call:
    return ast.Call(func=func, args=list(args), keywords=[])


def _scope_call(method: str, *args: ast.expr) -> ast.Call:
    return _call(ast.Attribute(value=_name(SCOPE), attr=method, ctx=ast.Load()), *args)


def _locals() -> ast.Call:
    return _call(_name("locals"))


def _lambda(body: ast.expr) -> ast.Lambda:
    args = ast.arguments(
        posonlyargs=[], args=[], vararg=None, kwonlyargs=[], kw_defaults=[], kwarg=None, defaults=[]
    )
    return ast.Lambda(args=args, body=body)


def _assigned_names(stmts: list[ast.stmt]) -> list[str]:
    """Names a block binds at its own level (not inside nested functions), in first-bound order."""
    seen: dict[str, None] = {}

    def visit(node: ast.AST) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            if not isinstance(node, ast.Lambda):
                seen.setdefault(node.name, None)
            return
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            seen.setdefault(node.id, None)
        if isinstance(node, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            return
        for child in ast.iter_child_nodes(node):
            visit(child)

    for s in stmts:
        visit(s)
    return [n for n in seen if not n.startswith("__ts")]


def _alloc_var_names(stmts: list[ast.stmt]) -> set[str]:
    """Names assigned from `T.alloc_var(...)` in a function body (they read as scalars)."""
    out: set[str] = set()
    for node in ast.walk(ast.Module(body=stmts, type_ignores=[])):
        if (
            isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
        ):
            v = node.value
            if (
                isinstance(v, ast.Call)
                and isinstance(v.func, ast.Attribute)
                and v.func.attr == "alloc_var"
            ):
                out.add(node.targets[0].id)
    return out


class _Rewriter(ast.NodeTransformer):
    def __init__(self, var_names: set[str]):
        self.counter = 0
        self.loop_depths: list[str] = []
        self.var_names = var_names

    def fresh(self, base: str) -> str:
        self.counter += 1
        return f"__ts_{base}{self.counter}"

    # -- statements ------------------------------------------------------------------------------
    def body(self, stmts: list[ast.stmt]) -> list[ast.stmt]:
        out: list[ast.stmt] = []
        for s in stmts:
            r = self.visit(s)
            if r is None:
                continue
            new = r if isinstance(r, list) else [r]
            for n in new:
                _fill_locations(n, s.lineno, s.col_offset)
            out.extend(new)
        return out

    def _poison(self, names: list[str], node: ast.stmt, why: str, before: str) -> list[ast.stmt]:
        """After a run-time scope, names it bound first are unusable (those bound before it keep
        their value: a T.alloc_var updated inside, or a Python name the scope did not rebind)."""
        return [
            ast.Assign(
                targets=[_name(n, ast.Store())],
                value=_call(
                    _helper("dead_unless"),
                    _locals(),
                    ast.Constant(n),
                    _name(before),
                    ast.Constant(node.lineno),
                    ast.Constant(why),
                ),
                lineno=node.lineno,
            )
            for n in names
        ]

    def _snapshot(self) -> tuple[str, ast.stmt]:
        before = self.fresh("b")
        stmt = ast.Assign(
            targets=[_name(before, ast.Store())], value=_call(_helper("bound"), _locals())
        )
        return before, stmt

    def visit_If(self, node: ast.If) -> list[ast.stmt]:
        c = self.fresh("c")
        test = self.visit(node.test)
        body_py, else_py = self.body(node.body), self.body(node.orelse)
        body_ir, else_ir = self.body(node.body), self.body(node.orelse)
        ir: list[ast.stmt] = [
            ast.With(
                items=[ast.withitem(context_expr=_call(_helper("If"), _name(c)))],
                body=body_ir or [ast.Pass()],
            )
        ]
        if node.orelse:
            ir.append(
                ast.With(items=[ast.withitem(context_expr=_call(_helper("Else")))], body=else_ir)
            )
        bound = _assigned_names(node.body + node.orelse)
        before, snap = self._snapshot()
        ir = [snap, *ir, *self._poison(bound, node, "inside a run-time `if`", before)]
        is_true = ast.Compare(left=_name(c), ops=[ast.Is()], comparators=[ast.Constant(True)])
        is_false = ast.Compare(left=_name(c), ops=[ast.Is()], comparators=[ast.Constant(False)])
        dispatch = ast.If(
            test=is_true,
            body=body_py or [ast.Pass()],
            orelse=[ast.If(test=is_false, body=else_py or [ast.Pass()], orelse=ir)],
        )
        assign = ast.Assign(targets=[_name(c, ast.Store())], value=_call(_helper("cond"), test))
        return [assign, dispatch]

    def _loop(self, node: ast.For | ast.While, make: Any) -> list[ast.stmt]:
        depth = self.fresh("d")
        self.loop_depths.append(depth)
        try:
            body = self.body(node.body)
        finally:
            self.loop_depths.pop()
        orelse = self.body(node.orelse)
        record = ast.Assign(targets=[_name(depth, ast.Store())], value=_scope_call("depth"))
        return [record, *make(body, orelse, depth)]

    def visit_For(self, node: ast.For) -> list[ast.stmt]:
        it = self.visit(node.iter)
        if isinstance(it, ast.Call) and isinstance(it.func, ast.Name) and it.func.id == "range":
            it = ast.Call(
                func=_helper("range_loop"), args=[it.func, *it.args], keywords=it.keywords
            )
        loop = self.fresh("l")

        def make(body: list[ast.stmt], orelse: list[ast.stmt], depth: str) -> list[ast.stmt]:
            flags = ast.Constant(bool(orelse))
            get = ast.Assign(
                targets=[_name(loop, ast.Store())], value=_call(_helper("loop"), it, flags)
            )
            target = self.visit(node.target)
            for_ = ast.For(target=target, iter=_name(loop), body=body, orelse=orelse)
            names = _assigned_names(
                [ast.Assign(targets=[node.target], value=ast.Constant(0))] + node.body
            )
            before, snap = self._snapshot()
            after = ast.If(
                test=_call(_helper("is_ir_loop"), _name(loop)),
                body=self._poison(names, node, "inside a run-time loop", before) or [ast.Pass()],
                orelse=[],
            )
            return [snap, get, for_, after]

        return self._loop(node, make)

    def visit_While(self, node: ast.While) -> list[ast.stmt]:
        test = self.visit(node.test)

        def make(body: list[ast.stmt], orelse: list[ast.stmt], depth: str) -> list[ast.stmt]:
            return [ast.While(test=_call(_helper("while_cond"), test), body=body, orelse=orelse)]

        return self._loop(node, make)

    def _jump(self, node: ast.stmt, what: str) -> list[ast.stmt]:
        if not self.loop_depths:
            return [node]
        check = ast.Expr(value=_scope_call("jump", _name(self.loop_depths[-1]), ast.Constant(what)))
        return [check, node]

    def visit_Break(self, node: ast.Break) -> list[ast.stmt]:
        return self._jump(node, "break")

    def visit_Continue(self, node: ast.Continue) -> list[ast.stmt]:
        return self._jump(node, "continue")

    def visit_Return(self, node: ast.Return) -> ast.Return:
        value = self.visit(node.value) if node.value is not None else ast.Constant(None)
        return ast.Return(value=_scope_call("returning", value))

    def visit_Assign(self, node: ast.Assign) -> ast.stmt:
        value = self.visit(node.value)
        if len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            wrapped = _scope_call("assign", ast.Constant(name), _locals(), value)
            return ast.Assign(targets=node.targets, value=wrapped)
        return ast.Assign(targets=[self.visit(t) for t in node.targets], value=value)

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.stmt:
        value = self.visit(node.value)
        if isinstance(node.target, ast.Name):
            name = node.target.id
            op = ast.Constant(type(node.op).__name__)
            combined = _call(_helper("binop"), op, _name(name), value)
            return ast.Assign(
                targets=[_name(name, ast.Store())],
                value=_scope_call("assign", ast.Constant(name), _locals(), combined),
            )
        return ast.AugAssign(target=self.visit(node.target), op=node.op, value=value)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> ast.stmt:
        if not isinstance(node.target, ast.Name):
            return self.generic_visit(node)  # pyright: ignore[reportReturnType]  # ast nodes are built and positioned here; the ast stubs type them loosely
        name = node.target.id
        ann = self.visit(node.annotation)
        if node.value is None:
            value = _call(_helper("annotate"), ast.Constant(name), _locals(), ann)
            return ast.Assign(targets=[_name(name, ast.Store())], value=value)
        typed = _call(_helper("annotated_value"), ann, self.visit(node.value))
        return ast.Assign(
            targets=[_name(name, ast.Store())],
            value=_scope_call("assign", ast.Constant(name), _locals(), typed),
        )

    def visit_With(self, node: ast.With) -> ast.With:
        node.items = [self.visit(item) for item in node.items]
        node.body = self.body(node.body)  # statements keep their own lines
        return node

    def visit_Try(self, node: ast.Try) -> ast.Try:
        node.body = self.body(node.body)
        node.handlers = [self.visit(h) for h in node.handlers]
        node.orelse = self.body(node.orelse)
        node.finalbody = self.body(node.finalbody)
        return node

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> ast.ExceptHandler:
        node.body = self.body(node.body)
        return node

    def visit_Assert(self, node: ast.Assert) -> ast.stmt:
        msg = self.visit(node.msg) if node.msg is not None else ast.Constant(None)
        return ast.Expr(value=_call(_helper("assert_"), self.visit(node.test), msg))

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.FunctionDef:
        # A nested def (a macro or helper written inside the kernel) gets the same rewrite.
        rewrite_function(node)
        node.decorator_list = [self.visit(d) for d in node.decorator_list] + [_helper("scripted")]
        return node

    def visit_Lambda(self, node: ast.Lambda) -> ast.Lambda:
        return node  # layout functions (`lambda i, j: ...`) are plain Python

    # -- expressions -----------------------------------------------------------------------------
    def visit_BoolOp(self, node: ast.BoolOp) -> ast.expr:
        fn = "and_" if isinstance(node.op, ast.And) else "or_"
        return _at(node, _call(_helper(fn), *(_lambda(self.visit(v)) for v in node.values)))

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.expr:
        if isinstance(node.op, ast.Not):
            return _at(node, _call(_helper("not_"), self.visit(node.operand)))
        return self.generic_visit(node)  # pyright: ignore[reportReturnType]  # ast nodes are built and positioned here; the ast stubs type them loosely

    def visit_IfExp(self, node: ast.IfExp) -> ast.expr:
        call = _call(
            _helper("ifexp"),
            self.visit(node.test),
            _lambda(self.visit(node.body)),
            _lambda(self.visit(node.orelse)),
        )
        return _at(node, call)

    def visit_Compare(self, node: ast.Compare) -> ast.expr:
        if len(node.ops) == 1:
            return self.generic_visit(node)  # pyright: ignore[reportReturnType]  # ast nodes are built and positioned here; the ast stubs type them loosely
        # `a < b < c` is `a < b and b < c` (b is evaluated twice: indices are side-effect free).
        operands = [node.left, *node.comparators]
        pairs: list[ast.expr] = [
            ast.Compare(left=operands[k], ops=[op], comparators=[operands[k + 1]])
            for k, op in enumerate(node.ops)
        ]
        return self.visit(_at(node, ast.BoolOp(op=ast.And(), values=pairs)))

    def visit_Subscript(self, node: ast.Subscript) -> ast.expr:
        # `v[0]` of a T.alloc_var stays a buffer access; only bare reads of `v` become scalars.
        if not (isinstance(node.value, ast.Name) and node.value.id in self.var_names):
            node.value = self.visit(node.value)
        node.slice = self.visit(node.slice)
        return node

    def visit_Name(self, node: ast.Name) -> ast.expr:
        if isinstance(node.ctx, ast.Load) and node.id in self.var_names:
            return _at(node, _call(_helper("var_load"), node))
        return node

    def visit_ListComp(self, node: ast.ListComp) -> ast.expr:
        return node  # comprehensions are Python-level metaprogramming

    visit_SetComp = visit_DictComp = visit_GeneratorExp = visit_ListComp  # pyright: ignore[reportAssignmentType]  # ast nodes are built and positioned here; the ast stubs type them loosely


def rewrite_function(fdef: ast.FunctionDef) -> None:
    """Rewrite `fdef`'s body in place and prepend the per-call scope."""
    rewriter = _Rewriter(_alloc_var_names(fdef.body))
    body = rewriter.body(fdef.body)
    scope = ast.Assign(targets=[_name(SCOPE, ast.Store())], value=_call(_helper("Scope")))
    fdef.body = [scope, *body]


def transform_function(fdef: ast.FunctionDef) -> ast.Module:
    """A module holding the rewritten `fdef` (decorators and annotations dropped), lines kept."""
    fdef.decorator_list = []
    fdef.returns = None
    for a in [*fdef.args.posonlyargs, *fdef.args.args, *fdef.args.kwonlyargs]:
        a.annotation = None
    for extra in (fdef.args.vararg, fdef.args.kwarg):
        if extra is not None:
            extra.annotation = None
    rewrite_function(fdef)
    module = ast.Module(body=[fdef], type_ignores=[])
    _fill_locations(module, fdef.lineno, fdef.col_offset)
    return module


def _at(old: ast.AST, new: ast.expr) -> ast.expr:
    """`new` replaces the expression `old`: it runs at old's line (errors name that line)."""
    ast.copy_location(new, old)
    _fill_locations(new, new.lineno, new.col_offset)
    return new


def _fill_locations(tree: ast.AST, default_line: int, default_col: int = 0) -> None:
    """New nodes take the line of the statement they replace (so errors still name it)."""

    def visit(node: ast.AST, line: int, col: int) -> None:
        if "lineno" in node._attributes:
            if getattr(node, "lineno", None) is None:
                node.lineno = line  # pyright: ignore[reportAttributeAccessIssue]  # ast nodes are built and positioned here; the ast stubs type them loosely
            if getattr(node, "col_offset", None) is None:
                node.col_offset = col  # pyright: ignore[reportAttributeAccessIssue]  # ast nodes are built and positioned here; the ast stubs type them loosely
            if getattr(node, "end_lineno", None) is None:
                node.end_lineno = node.lineno  # pyright: ignore[reportAttributeAccessIssue]  # ast nodes are built and positioned here; the ast stubs type them loosely
            if getattr(node, "end_col_offset", None) is None:
                node.end_col_offset = node.col_offset  # pyright: ignore[reportAttributeAccessIssue]  # ast nodes are built and positioned here; the ast stubs type them loosely
            line, col = node.lineno, node.col_offset  # pyright: ignore[reportAttributeAccessIssue]  # ast nodes are built and positioned here; the ast stubs type them loosely
        for child in ast.iter_child_nodes(node):
            visit(child, line, col)

    visit(tree, default_line, default_col)
