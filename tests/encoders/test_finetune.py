"""vitrieve finetune: a classification head on a checkpoint's ViT, accuracy on a held-out split."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from encoders.training.finetune import FinetuneOptions, finetune_folder, split_indices
from encoders.training.layout import RunLayout


@pytest.fixture
def folders(class_folders) -> tuple[Path, Path]:
    return class_folders


def test_split_is_seeded_and_disjoint():
    train, test = split_indices(20, 0.25, seed=1)
    assert len(test) == 5 and not set(train) & set(test)
    assert split_indices(20, 0.25, seed=1) == (train, test)


def test_linear_probe_separates_two_colours(folders, tmp_path: Path):
    data, ckpt = folders
    options = FinetuneOptions(epochs=20, batch_size=8, linear_probe=True, holdout=0.25)
    result = finetune_folder(data, ckpt, tmp_path / "run", options)
    assert result["classes"] == 2 and result["test"] == 6 and result["train"] == 18
    assert result["accuracy"] >= 0.8, result
    saved = json.loads((tmp_path / "run" / "classifier.json").read_text())
    assert saved["class_names"] == ["blue square", "red circle"]
    assert (tmp_path / "run" / "head.safetensors").is_file()


def test_full_finetune_trains_the_vit(folders, tmp_path: Path):
    data, ckpt = folders
    options = FinetuneOptions(epochs=2, batch_size=8, holdout=0.25)
    result = finetune_folder(data, ckpt, tmp_path / "run", options)
    assert result["mode"] == "fine-tune" and 0.0 <= result["accuracy"] <= 1.0
    before = (ckpt / "model.safetensors").read_bytes()
    assert (RunLayout(tmp_path / "run").checkpoint / "model.safetensors").read_bytes() != before
