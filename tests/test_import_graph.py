"""The layers of tsir (DESIGN "Tile operators own their behaviour", CONVENTIONS 30): no import
cycles among tsir's modules, the IR core imports nothing above it, and imports inside function
bodies only where an allow-list below says why.

The graph is read from the sources with `ast` (nothing is imported): an edge for every `import`
and `from ... import` of a tsir module (those under `if TYPE_CHECKING:` excepted), at module level
or inside a function. `passes/`, `codegen/` and `runtime/` count as `tsir.passes`, `tsir.codegen`
and `tsir.runtime`, as installed.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {
    "tsir": "tsir",
    "passes": "tsir.passes",
    "codegen": "tsir.codegen",
    "runtime": "tsir.runtime",
}

# The IR core: nodes, expressions, statements, buffers, dtypes, functions, errors, intrinsics.
CORE = frozenset(
    {
        "tsir.node",
        "tsir.expr",
        "tsir.stmt",
        "tsir.buffer",
        "tsir.dtype",
        "tsir.function",
        "tsir.errors",
        "tsir.intrin",
    }
)

# Deliberate imports inside functions: (importing module, imported module) -> why.
DELIBERATE = {
    ("tsir", "tsir.runtime.kernel"): "tsir.compile loads the runtime on first use",
    (
        "tsir",
        "tsir.passes",
    ): "tsir.lower loads the pipeline on first use (`import tsir` imports no pass)",
    ("tsir.node", "tsir.printer"): "str(node): the printer sits above every node class it prints",
    (
        "tsir.structural",
        "tsir.printer",
    ): "a mismatch report prints both IRs; the printer compares structurally",
    (
        "tsir.arith.z3_prover",
        "tsir.arith.z3_encode",
    ): "z3_encode imports the z3 solver, loaded when a proof needs it",
    (
        "tsir.interpret.stages",
        "tsir.passes",
    ): "check_stages lowers the function; `import tsir` imports no pass",
    (
        "tsir.target",
        "tsir.runtime.driver",
    ): "target 'cuda' asks the one driver layer for the present GPU",
}

# runtime/ is being rebuilt on cuda.core (issue 10, branch `plumbing`); its imports inside functions
# predate this rule and are listed so that no new one appears unnoticed. Shrink this as they go.
RUNTIME_PENDING = frozenset(
    {
        ("tsir.runtime.binder", "tsir.runtime.launch_codegen"),
        ("tsir.runtime.cache", "tsir"),
        ("tsir.runtime.cpengine", "tsir.codegen.host"),
        ("tsir.runtime.cpengine", "tsir.dtype"),
        ("tsir.runtime.cpengine", "tsir.expr"),
        ("tsir.runtime.cpengine", "tsir.runtime.dist.table"),
        ("tsir.runtime.cpengine", "tsir.runtime.launch_codegen"),
        ("tsir.runtime.cpengine", "tsir.visitor"),
        ("tsir.runtime.dist", "tsir.builder.dist_lang"),
        ("tsir.runtime.dist", "tsir.runtime.binder"),
        ("tsir.runtime.dist", "tsir.runtime.dist.ipc"),
        ("tsir.runtime.dist", "tsir.runtime.dist.nvshmem_heap"),
        ("tsir.runtime.dist", "tsir.runtime.dist.table"),
        ("tsir.runtime.dist", "tsir.runtime.dlpack"),
        ("tsir.runtime.dist", "tsir.runtime.host_program"),
        ("tsir.runtime.dist", "tsir.runtime.launch_codegen"),
        ("tsir.runtime.dist.group", "tsir.runtime.driver"),
        ("tsir.runtime.dist.launcher", "tsir.runtime.driver"),
        ("tsir.runtime.kernel", "tsir"),
        ("tsir.runtime.kernel", "tsir.codegen"),
        ("tsir.runtime.kernel", "tsir.codegen.cuda"),
        ("tsir.runtime.kernel", "tsir.codegen.host"),
        ("tsir.runtime.kernel", "tsir.passes"),
        ("tsir.runtime.kernel", "tsir.runtime.cache"),
        ("tsir.runtime.kernel", "tsir.runtime.cpengine"),
        ("tsir.runtime.kernel", "tsir.runtime.host_program"),
        ("tsir.runtime.kernel", "tsir.runtime.launch"),
        ("tsir.runtime.kernel", "tsir.runtime.nvrtc"),
        ("tsir.runtime.kernel", "tsir.structural"),
        ("tsir.runtime.launch", "tsir.runtime.cpengine"),
        ("tsir.runtime.nvshmem", "tsir.runtime.dist.nvshmem_heap"),
        ("tsir.runtime.tensor_map", "tsir.runtime.driver"),
    }
)


def _modules() -> dict[str, tuple[Path, bool]]:
    out: dict[str, tuple[Path, bool]] = {}
    for folder, package in PACKAGES.items():
        for path in (ROOT / folder).rglob("*.py"):
            if "__pycache__" in path.parts:
                continue
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            is_package = parts[-1] == "__init__"
            name = ".".join((package, *(parts[:-1] if is_package else parts)))
            out[name] = (path, is_package)
    return out


MODULES = _modules()


def _targets(module: str, is_package: bool, node: ast.Import | ast.ImportFrom) -> set[str]:
    """The tsir modules an import statement loads (the longest known module of each name)."""
    names: list[str] = []
    if isinstance(node, ast.ImportFrom):
        base = module if is_package else module.rpartition(".")[0]
        if node.level:
            parts = base.split(".")
            base = ".".join(
                parts[: len(parts) - (node.level - 1)] + ([node.module] if node.module else [])
            )
        else:
            base = node.module or ""
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
    else:
        names = [a.name for a in node.names]
    found = set()
    for name in names:
        parts = name.split(".")
        for k in range(len(parts), 0, -1):
            if ".".join(parts[:k]) in MODULES:
                found.add(".".join(parts[:k]))
                break
    return found - {module}


class _Imports(ast.NodeVisitor):
    def __init__(self, module: str, is_package: bool) -> None:
        self.module, self.is_package = module, is_package
        self.depth = 0
        self.top: set[str] = set()
        self.inner: list[tuple[int, str]] = []

    def visit_FunctionDef(self, n: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.depth += 1
        self.generic_visit(n)
        self.depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_If(self, n: ast.If) -> None:
        test = n.test
        if (
            getattr(test, "id", None) == "TYPE_CHECKING"
            or getattr(test, "attr", None) == "TYPE_CHECKING"
        ):
            for x in n.orelse:
                self.visit(x)
            return
        self.generic_visit(n)

    def _import(self, n: ast.Import | ast.ImportFrom) -> None:
        for t in _targets(self.module, self.is_package, n):
            if self.depth:
                self.inner.append((n.lineno, t))
            else:
                self.top.add(t)

    visit_Import = _import
    visit_ImportFrom = _import


def _graph() -> tuple[dict[str, set[str]], dict[str, list[tuple[int, str]]]]:
    top: dict[str, set[str]] = {}
    inner: dict[str, list[tuple[int, str]]] = {}
    for module, (path, is_package) in MODULES.items():
        v = _Imports(module, is_package)
        v.visit(ast.parse(path.read_text()))
        top[module], inner[module] = v.top, v.inner
    return top, inner


TOP, INNER = _graph()


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                    advanced = True
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                component = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    component.append(w)
                    if w == v:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def test_no_import_cycle_at_module_level() -> None:
    cycles = _cycles(TOP)
    assert not cycles, (
        f"modules that import each other (move the code, don't hide the cycle): {cycles}"
    )


def test_no_import_cycle_counting_imports_inside_functions() -> None:
    """Only the deliberate lazy imports may point upwards."""
    edges = {m: set(t) for m, t in TOP.items()}
    for m, found in INNER.items():
        edges[m] |= {t for _, t in found if (m, t) not in DELIBERATE}
    cycles = _cycles(edges)
    assert not cycles, f"import cycles through imports inside functions: {cycles}"


def test_imports_inside_functions_are_deliberate() -> None:
    """A new import inside a function body needs a reason in DELIBERATE (an optional or heavy
    dependency, or an upward edge that must load late); otherwise import at module level."""
    unexplained = sorted(
        f"{MODULES[m][0].relative_to(ROOT)}:{line} imports {t}"
        for m, found in INNER.items()
        for line, t in found
        if (m, t) not in DELIBERATE and (m, t) not in RUNTIME_PENDING
    )
    assert not unexplained, "imports inside functions:\n" + "\n".join(unexplained)


def test_the_ir_core_imports_nothing_above_it() -> None:
    above = {
        m: sorted((TOP[m] | {t for _, t in INNER[m] if (m, t) not in DELIBERATE}) - CORE)
        for m in CORE
    }
    assert not any(above.values()), f"the IR core imports modules above it: {above}"


def test_dependencies_point_one_way() -> None:
    """DESIGN: tsir (IR) <- passes <- codegen <- runtime. The IR package never imports a pass,
    the code generator or the runtime (the deliberate lazy entry points excepted); passes never
    import the builder, codegen or the runtime; codegen never imports the runtime."""
    layers = {"tsir.passes": 1, "tsir.codegen": 2, "tsir.runtime": 3}

    def layer(m: str) -> int:
        return next((v for k, v in layers.items() if m == k or m.startswith(k + ".")), 0)

    wrong = []
    for m in MODULES:
        deps = TOP[m] | {
            t for _, t in INNER[m] if (m, t) not in DELIBERATE and (m, t) not in RUNTIME_PENDING
        }
        for t in deps:
            if layer(t) > layer(m) or (layer(m) == 1 and t.startswith("tsir.builder")):
                wrong.append(f"{m} -> {t}")
    assert not wrong, f"imports against the layering: {sorted(wrong)}"


def test_allow_lists_name_real_imports() -> None:
    """An allow-list entry whose import is gone must be removed (the lists only shrink)."""
    present = {(m, t) for m, found in INNER.items() for _, t in found}
    assert set(DELIBERATE) <= present, sorted(set(DELIBERATE) - present)
    assert present >= RUNTIME_PENDING, sorted(RUNTIME_PENDING - present)
