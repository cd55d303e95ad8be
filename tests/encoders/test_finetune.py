"""vitrieve finetune: a classification head on a checkpoint's ViT, accuracy on a held-out split."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from encoders.checkpoint import save_checkpoint
from encoders.clip import create_model
from encoders.config import load_config
from encoders.synthetic import render_object
from encoders.training.finetune import FinetuneOptions, finetune_folder, split_indices


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("ft")
    for colour, shape in (("red", "circle"), ("blue", "square")):
        (root / "data" / f"{colour} {shape}").mkdir(parents=True)
        for seed in range(12):
            image = render_object(colour, shape, 64, seed=seed, background="textured")
            image.save(root / "data" / f"{colour} {shape}" / f"{seed}.png")
    torch.manual_seed(0)
    save_checkpoint(create_model(load_config("tiny")), root / "ckpt")
    return root / "data", root / "ckpt"


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
    assert (tmp_path / "run" / "checkpoint" / "model.safetensors").read_bytes() != before
