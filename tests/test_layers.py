"""The layers of the package point one way: no import cycle, counting the
imports inside functions (they run too, only later), and nothing below the
command line imports it (only ``python -m fastmlp`` starts it).

An edge ``a -> b`` is an ``import b`` or ``from b import ...`` anywhere in
``a``; ``from p import m`` is an edge to the module ``p.m`` when there is
one.  An edge from a module to its own ancestor package is left out: Python
initialises the ancestors first whatever the module imports."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "fastmlp"


def module_name(path):
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path, modules):
    """The modules of ``modules`` that the file at ``path`` imports."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in modules else node.module)
    return found & modules


def import_graph():
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(paths)
    return {name: {t for t in imports(path, modules) if t != name and not name.startswith(t + ".")}
            for name, path in paths.items()}


def cycles(graph):
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    graph = import_graph()
    assert len(graph) > 40  # the scan found the package
    assert cycles(graph) == []


def test_the_cycle_check_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_nothing_below_the_command_line_imports_it():
    graph = import_graph()
    below = {name: sorted(t for t in targets if t == "fastmlp.cli" or t.startswith("fastmlp.cli."))
             for name, targets in graph.items()
             if not name.startswith("fastmlp.cli") and name != "fastmlp.__main__"}  # python -m fastmlp
    assert {name: t for name, t in below.items() if t} == {}


def test_benchmarks_take_the_peers_from_the_library():
    modules = set(import_graph()) | {"fastmlp.cli"}
    for path in (ROOT / "benchmarks").glob("*.py"):
        cli = sorted(t for t in imports(path, modules) if t == "fastmlp.cli" or t.startswith("fastmlp.cli."))
        assert cli == [], path.name
