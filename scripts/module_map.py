"""The module map of docs/architecture.md, generated from the packages' own docstrings.

Each package and module is listed with the first sentence of its docstring, so the map says what
the code says and cannot go stale: ``tests/test_structure.py`` runs ``--check``.

    python scripts/module_map.py            # print the map
    python scripts/module_map.py --write    # replace the map in docs/architecture.md
    python scripts/module_map.py --check    # exit 1 if docs/architecture.md differs
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("encoders", "indexer", "retrieval", "ui")
DOC = ROOT / "docs" / "architecture.md"
BEGIN, END = (
    "<!-- module map: begin (scripts/module_map.py --write) -->",
    "<!-- module map: end -->",
)
NAME_WIDTH = 26


def summary(path: Path) -> str:
    """The first sentence of a file's docstring, on one line ('' when it has none)."""
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    text = " ".join(doc.split())
    match = re.match(r"(.+?[.!?])(\s+[^a-z]|$)", text)  # "e.g. x" does not end a sentence
    return (match.group(1) if match else text).rstrip(".")


def lines_for(folder: Path, depth: int) -> list[str]:
    """A folder's modules, then its sub-packages, each as ``name  summary`` lines."""
    indent = "  " * depth
    out = []
    for path in sorted(folder.glob("*.py")):
        if path.name == "__init__.py":
            continue
        out.append(f"{indent}{path.name:<{NAME_WIDTH - len(indent)}}{summary(path)}".rstrip())
    for sub in sorted(p for p in folder.iterdir() if (p / "__init__.py").exists()):
        name = sub.name + "/"
        out.append(
            f"{indent}{name:<{NAME_WIDTH - len(indent)}}{summary(sub / '__init__.py')}".rstrip()
        )
        out.extend(lines_for(sub, depth + 1))
    return out


def module_map() -> str:
    lines = []
    for package in PACKAGES:
        folder = ROOT / package
        name = package + "/"
        lines.append(f"{name:<{NAME_WIDTH}}{summary(folder / '__init__.py')}".rstrip())
        lines.extend(lines_for(folder, 1))
    return "```\n" + "\n".join(lines) + "\n```"


def replace_block(text: str, block: str) -> str:
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[:start] + "\n" + block + "\n" + text[end:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", action="store_true", help="replace the map in the design page")
    group.add_argument("--check", action="store_true", help="exit 1 if the design page differs")
    args = parser.parse_args()
    block = module_map()
    if not (args.write or args.check):
        print(block)
        return 0
    text = DOC.read_text()
    if BEGIN not in text or END not in text:
        print(f"{DOC}: the markers {BEGIN!r} and {END!r} are missing", file=sys.stderr)
        return 1
    updated = replace_block(text, block)
    if args.check:
        if updated != text:
            stale = "docs/architecture.md's module map is stale"
            print(f"{stale}: run python scripts/module_map.py --write")
            return 1
        return 0
    DOC.write_text(updated)
    return 0


if __name__ == "__main__":
    sys.exit(main())
