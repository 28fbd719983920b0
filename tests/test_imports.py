"""No import circles in edge_runtime/: module-level and deferred (function-level) imports
alike, so every module can be read and changed from the bottom of the data path up."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "edge_runtime"


def _modules(root: Path) -> dict:
    """{dotted name: path or None (an extension module)} of the package at root."""
    out = {}
    for p in root.rglob("*.py"):
        parts = p.relative_to(root.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    for p in root.rglob("*.so"):
        out[".".join(p.relative_to(root.parent).parts[:-1] + (p.name.split(".")[0],))] = None
    return out


def import_graph(root: Path) -> dict:
    """{module: modules of the package it imports anywhere in its code}."""
    mods = _modules(root)
    graph = {m: set() for m in mods}
    for m, path in mods.items():
        if path is None:
            continue
        package = m if path.name == "__init__.py" else m.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                graph[m] |= {a.name for a in node.names if a.name in mods}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([node.module] if node.module else []))
                for a in node.names:       # `from . import x`: x may be a module itself
                    got = f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base
                    if got in mods:
                        graph[m].add(got)
        graph[m].discard(m)
    return graph


def circles(graph: dict) -> list:
    """The strongly connected groups of more than one module (Tarjan's algorithm)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_walker_finds_a_planted_circle(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from . import a\n")
    (pkg / "a.py").write_text("from .sub import b\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "b.py").write_text("def f():\n    from ..a import x\n")   # deferred
    (pkg / "c.py").write_text("from . import a\n")
    assert circles(import_graph(pkg)) == [["pkg.a", "pkg.sub.b"]]


def test_edge_runtime_has_no_import_circle():
    graph = import_graph(ROOT)
    assert "edge_runtime.agent" in graph and graph["edge_runtime.agent"]
    assert circles(graph) == []
