"""The house rules of the Python package, checked on its source: no module over 600 lines, no
function over 80 lines without a comment that says why, no import cycles between its modules,
and few deferred imports of its own modules (the command line may defer its heavy imports).
And of the C++ core: no source file over 600 lines."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "python" / "fastconv"
CSRC = Path(__file__).resolve().parents[1] / "csrc"
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80
LONG_FUNCTION_MARK = "# long function:"  # a comment in the body, saying why
MAX_DEFERRED_IMPORTS = 3
DEFER_FREELY = {"fastconv.cli"}


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, path, ast.parse(path.read_text(), str(path))


def _resolve(module, node, is_package, modules):
    """The package's modules an import statement in ``module`` depends on: for
    ``from package import name``, the submodule ``package.name`` where there is one (a sibling
    import does not run the package's __init__ again), else ``package``."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name in modules]
    if node.level:
        base = module.split(".")
        base = base if is_package else base[:-1]
        base = base[: len(base) - node.level + 1]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    if target.split(".")[0] != "fastconv":
        return []
    found = set()
    for alias in node.names:
        sub = f"{target}.{alias.name}"
        found.add(sub if sub in modules or sub == "fastconv._core" else target)
    return [m for m in found if m in modules]


def _in_type_checking(node, parents):
    p = parents.get(node)
    while p is not None:
        if isinstance(p, ast.If) and "TYPE_CHECKING" in ast.unparse(p.test):
            return True
        p = parents.get(p)
    return False


def _imports():
    """{module: set of modules imported at import time}, [(module, line) of deferred imports]."""
    modules = {name: (path, tree) for name, path, tree in _modules()}
    graph, deferred = {}, []
    for name, (path, tree) in modules.items():
        parents = {c: p for p in ast.walk(tree) for c in ast.iter_child_nodes(p)}
        edges = set()
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            targets = _resolve(name, node, path.name == "__init__.py", modules)
            if not targets or _in_type_checking(node, parents):
                continue
            p, in_function = parents.get(node), False
            while p is not None:
                in_function = in_function or isinstance(p, (ast.FunctionDef, ast.AsyncFunctionDef))
                p = parents.get(p)
            if in_function:
                deferred.append((name, node.lineno))
            if not in_function or name not in DEFER_FREELY:  # deferring hides no cycle
                edges.update(t for t in targets if t != name)
        graph[name] = edges
    return graph, deferred


def test_modules_are_short():
    long = [
        (str(path.relative_to(PACKAGE)), n)
        for _, path, _ in _modules()
        if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    ]
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_cpp_sources_are_short():
    sources = [p for p in sorted(CSRC.rglob("*")) if p.suffix in (".cpp", ".h", ".inc")]
    assert len(sources) > 20, "the check does not see csrc/"
    long = {
        str(p.relative_to(CSRC)): n
        for p in sources
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert not long, f"C++ files over {MAX_MODULE_LINES} lines: {long}"


def test_functions_are_short_or_say_why():
    long = []
    for _, path, tree in _modules():
        lines = path.read_text().splitlines()
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                body = lines[node.lineno - 1 : node.end_lineno]
                if len(body) > MAX_FUNCTION_LINES and not any(
                    LONG_FUNCTION_MARK in line for line in body
                ):
                    long.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name}")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines without a reason: {long}"


def _cycles(edges):
    seen, stack, cycles = set(), [], []

    def visit(m):
        if m in stack:
            cycles.append(stack[stack.index(m) :] + [m])
            return
        if m in seen:
            return
        seen.add(m)
        stack.append(m)
        for t in sorted(edges.get(m, ())):
            visit(t)
        stack.pop()

    for m in sorted(edges):
        visit(m)
    return cycles


def test_no_import_cycles():
    graph, _ = _imports()
    assert not _cycles(graph), f"import cycles: {_cycles(graph)}"


def test_cycle_check_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert not _cycles({"a": {"b", "c"}, "b": {"c"}, "c": set()})


def test_few_deferred_imports_of_own_modules():
    _, deferred = _imports()
    counted = [d for d in deferred if d[0] not in DEFER_FREELY]
    assert len(counted) <= MAX_DEFERRED_IMPORTS, f"imports inside functions: {counted}"


def test_the_checks_see_the_package():
    graph, _ = _imports()
    assert "fastconv.models.plan" in graph["fastconv.models.model"]
    assert len(graph) > 30
