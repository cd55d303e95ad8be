"""The cache key of the trained fixture: the source of every module its training runs.

``trained_tiny`` is trained once and cached; it must be retrained when the model or the
training code it uses changes, not only when ``minitrain.py`` does. The modules are found
statically (the imports of ``minitrain.py``, followed through the ``encoders`` package), so the
key does not depend on what else a test session happened to import first.
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

PACKAGE = "encoders"  # the project code the fixture's training runs


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


def fixture_key(start: Path, root: Path, extra: bytes = b"") -> str:
    """A short hash of the sources ``start`` runs (paths and contents) and ``extra``."""
    digest = hashlib.blake2b(extra, digest_size=8)
    for path in source_closure(start, root):
        where = path.relative_to(root) if path.is_relative_to(root) else Path(path.name)
        digest.update(str(where).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()
