"""The UI's structure: its import graph has no circle, function-level imports included; pages
(ui/views) import the shared pieces and never the reverse; and the UI reaches the engine
through ``retrieval`` only (no model class, manifest or store of its own)."""

from __future__ import annotations

import ast
from pathlib import Path

UI = Path(__file__).resolve().parents[2] / "ui"


def _module(path: Path) -> str:
    return ".".join(path.relative_to(UI.parent).with_suffix("").parts).removesuffix(".__init__")


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth (functions too), as dotted names; ``from
    ui import x`` counts as importing ``ui.x``."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def _graph() -> dict[str, set[str]]:
    files = {_module(p): p for p in UI.rglob("*.py")}
    return {name: _imports(path) & set(files) - {name} for name, path in files.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle, as the modules on it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return path[path.index(target) :] + [target]
            if target not in state and (found := visit(target, [*path, target])):
                return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start, [start])):
            return found
    return None


def test_cycle_finder_finds_one() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_ui_imports_form_no_circle() -> None:
    graph = _graph()
    assert {"ui.state", "ui.components", "ui.media", "ui.gate"} <= set(graph)
    assert _cycle(graph) is None, " → ".join(_cycle(graph) or [])


def test_pages_import_components_never_the_reverse() -> None:
    graph = _graph()
    for name, targets in graph.items():
        if not name.startswith("ui.views."):
            pages = sorted(t for t in targets if t.startswith("ui.views"))
            assert not pages, f"{name} imports the pages {pages}"
    assert "ui.components" in graph["ui.views.library"]


def test_ui_reaches_the_engine_through_retrieval() -> None:
    """No model class, manifest reader or store below ``retrieval`` (the ``Library`` answers);
    constants of the checkpoint format and of the training run's layout are fine."""
    allowed = {"encoders.errors", "encoders.runtime.device", "encoders.weights.checkpoint",
               "encoders.training.layout"}  # fmt: skip
    for path in UI.rglob("*.py"):
        for target in _imports(path):
            if target.split(".")[0] in ("encoders", "indexer"):
                assert target in allowed or target.rsplit(".", 1)[0] in allowed, (path, target)
