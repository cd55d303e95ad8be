"""The shape of the code base, checked so that it cannot drift: no import circles (module-level or
inside functions), imports flowing encoders <- indexer <- retrieval <- ui only, and the module map
of docs/architecture.md equal to the one generated from the packages' docstrings."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("encoders", "indexer", "retrieval", "ui")
LAYER = {name: rank for rank, name in enumerate(PACKAGES)}


def _modules() -> dict[str, Path]:
    """Every module of the four packages by dotted name, and bench/'s scripts by file stem."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    for path in sorted((ROOT / "bench").glob("*.py")):
        found[path.stem] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules ``name`` imports anywhere in its body (functions included)."""
    targets = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}".rstrip(".")
            candidates = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for candidate in candidates:
            # the longest project module the dotted name starts with (a module or a package)
            while candidate and candidate not in modules:
                candidate = candidate.rpartition(".")[0]
            if candidate and candidate != name:
                targets.add(candidate)
    return targets


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    # A package's __init__ importing its own sub-modules is not a circle with them.
    return {
        name: {t for t in targets if not t.startswith(name + ".")}
        for name, targets in graph.items()
    }


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, result = {}, {}, set(), [], []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    result.append(sorted(component))
    return result


def test_no_import_circles():
    assert _cycles(_graph()) == []


def test_cycle_finder_sees_a_circle():
    """The finder itself, on a made-up graph: a → b → c → a is one circle, d is not in it."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_imports_flow_one_way():
    upward = [
        f"{name} -> {target}"
        for name, targets in _graph().items()
        if name.split(".")[0] in LAYER
        for target in targets
        if target.split(".")[0] in LAYER and LAYER[target.split(".")[0]] > LAYER[name.split(".")[0]]
    ]
    assert upward == []


@pytest.mark.parametrize("package", PACKAGES)
def test_packages_stay_navigable(package):
    """A package keeps at most 15 modules flat beside its sub-packages."""
    flat = [p for p in (ROOT / package).glob("*.py")]
    assert len(flat) <= 15, sorted(p.name for p in flat)


def test_module_map_is_current():
    """docs/architecture.md's module map is what scripts/module_map.py generates from the code."""
    generated = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "module_map.py"), "--check"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert generated.returncode == 0, generated.stdout + generated.stderr
