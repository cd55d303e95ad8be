"""The cache key of the trained fixture: the source of every module its training runs.

``trained_tiny`` is trained once and cached; it must be retrained when the model or the
training code it uses changes, not only when ``minitrain.py`` does. The modules are found
statically (the imports of ``minitrain.py``, followed through the ``encoders`` package), so the
key does not depend on what else a test session happened to import first. What is hashed is each
module's syntax tree without docstrings: comments, docstrings and formatting never retrain it.
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

PACKAGE = "encoders"  # the project code the fixture's training runs
_DOCUMENTED = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def _module_file(root: Path, name: str) -> Path | None:
    base = root.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported_names(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)  # ``from encoders import atomic`` may name a module too
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def source_closure(start: Path, root: Path) -> list[Path]:
    """``start`` and every ``encoders`` module it imports, directly or through others (with
    the packages' ``__init__.py`` files, which run on import)."""
    seen: set[Path] = set()
    todo = [start]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in _imported_names(path):
            parts = name.split(".")
            if parts[0] != PACKAGE:
                continue
            for depth in range(1, len(parts) + 1):  # the module and its parent packages
                found = _module_file(root, ".".join(parts[:depth]))
                if found is not None:
                    todo.append(found)
    return sorted(seen)


def code_of(path: Path) -> str:
    """A module's code as its syntax tree, without docstrings (comments and layout are not in
    the tree either)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, _DOCUMENTED) and ast.get_docstring(node, clean=False) is not None:
            node.body = node.body[1:] or [ast.Pass()]
    return ast.dump(tree)


def fixture_key(start: Path, root: Path, extra: bytes = b"") -> str:
    """A short hash of the code ``start`` runs (module paths and syntax trees) and ``extra``."""
    digest = hashlib.blake2b(extra, digest_size=8)
    for path in source_closure(start, root):
        where = path.relative_to(root) if path.is_relative_to(root) else Path(path.name)
        digest.update(f"{where.as_posix()}\0{code_of(path)}\0".encode())
    return digest.hexdigest()
