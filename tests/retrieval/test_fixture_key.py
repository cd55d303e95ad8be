"""The trained fixture is retrained when the model or training code it runs changes."""

from __future__ import annotations

import shutil
from pathlib import Path

from fixture_key import fixture_key, source_closure

ROOT = Path(__file__).resolve().parents[2]
MINITRAIN = Path("tests") / "retrieval" / "minitrain.py"


def test_the_key_covers_the_model_and_training_code_minitrain_runs() -> None:
    closure = {p.relative_to(ROOT).as_posix() for p in source_closure(ROOT / MINITRAIN, ROOT)}
    for module in (
        "model/vit", "model/layers", "model/text", "model/clip", "model/config",
        "training/loss", "model/tokenizer", "weights/checkpoint",
    ):  # fmt: skip
        assert f"encoders/{module}.py" in closure  # imported directly or through another
    assert "encoders/model/layers.py" in closure and MINITRAIN.as_posix() in closure


def test_the_key_changes_with_model_code_only(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "encoders", tmp_path / "encoders")
    (tmp_path / MINITRAIN).parent.mkdir(parents=True)
    shutil.copy(ROOT / MINITRAIN, tmp_path / MINITRAIN)
    before = fixture_key(tmp_path / MINITRAIN, tmp_path, b"settings")
    assert fixture_key(tmp_path / MINITRAIN, tmp_path, b"other settings") != before
    unused = (
        tmp_path / "encoders" / "data" / "digits.py"
    )  # a module the fixture's training never runs
    assert unused not in source_closure(tmp_path / MINITRAIN, tmp_path)
    unused.write_text(unused.read_text() + "\n# edited\n")
    assert fixture_key(tmp_path / MINITRAIN, tmp_path, b"settings") == before
    layers = tmp_path / "encoders" / "model" / "layers.py"  # reached only through vit/text
    source = layers.read_text()
    documented = source.replace('"""', '"""Edited. ', 1) + "\n# a comment\n"
    layers.write_text(documented)  # docstrings and comments do not change what it runs
    assert fixture_key(tmp_path / MINITRAIN, tmp_path, b"settings") == before
    layers.write_text(source.replace("1.702", "1.703"))  # the code does
    assert fixture_key(tmp_path / MINITRAIN, tmp_path, b"settings") != before
