"""``vitrieve train``'s options reach the trainer (the training itself is tested in encoders)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import encoders.training.main as training_main
from encoders.training.state import TrainState
from encoders.training.steps import TrainOptions
from retrieval.cli import app


@pytest.fixture
def requests(monkeypatch) -> list:
    """Replaces the trainer: records each request and returns an empty result."""
    seen: list = []

    def fake_train(request, callback=None):
        seen.append(request)
        return training_main.TrainResult(TrainState(), request.out / "checkpoint", {}, 0.0)

    monkeypatch.setattr(training_main, "train_from_files", fake_train)
    return seen


def _train(tmp_path: Path, *extra: str):
    data = tmp_path / "train.tsv"
    data.write_text("filepath\ttitle\n")
    args = ["train", "--data", str(data), "--out", str(tmp_path / "run"), "--epochs", "1"]
    return CliRunner().invoke(app, [*args, "--json", *extra])


def test_grey_fraction_defaults_to_the_recipe_and_can_be_set(tmp_path: Path, requests) -> None:
    default = _train(tmp_path)
    assert default.exit_code == 0, default.output
    assert json.loads(default.output)["steps"] == 0
    assert requests[-1].options.grey_fraction == TrainOptions().grey_fraction
    chosen = _train(tmp_path, "--grey-fraction", "0.5")
    assert chosen.exit_code == 0, chosen.output
    assert requests[-1].options.grey_fraction == 0.5


def test_grey_fraction_outside_0_1_is_a_bad_parameter(tmp_path: Path, requests) -> None:
    result = _train(tmp_path, "--grey-fraction", "1.5")
    assert result.exit_code == 2 and not requests
