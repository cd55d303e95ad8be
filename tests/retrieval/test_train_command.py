"""``vitrieve train``'s options reach the trainer (the training itself is tested in encoders)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import encoders.training.distributed as distributed
import encoders.training.main as training_main
from encoders.training.layout import RunLayout
from encoders.training.state import TrainState
from encoders.training.steps import TrainOptions
from retrieval.cli import app


@pytest.fixture
def requests(monkeypatch) -> list:
    """Replaces the trainer: records each request and returns an empty result."""
    seen: list = []

    def fake_train(request, callback=None):
        seen.append(request)
        return training_main.TrainResult(TrainState(), RunLayout(request.out).checkpoint, {}, 0.0)

    monkeypatch.setattr(training_main, "train_from_files", fake_train)
    return seen


def _train(tmp_path: Path, *extra: str):
    data = tmp_path / "train.tsv"
    data.write_text("filepath\ttitle\n")
    args = ["train", "--data", str(data), "--out", str(tmp_path / "run"), "--epochs", "1"]
    return CliRunner().invoke(app, [*args, "--json", *extra])


@pytest.mark.parametrize("name", ["grey_fraction", "warmup_fraction"])
def test_fractions_default_to_the_recipe_and_can_be_set(tmp_path: Path, requests, name) -> None:
    flag = "--" + name.replace("_", "-")
    default = _train(tmp_path)
    assert default.exit_code == 0, default.output
    assert json.loads(default.output)["steps"] == 0
    assert getattr(requests[-1].options, name) == getattr(TrainOptions(), name)
    chosen = _train(tmp_path, flag, "0.5")
    assert chosen.exit_code == 0, chosen.output
    assert getattr(requests[-1].options, name) == 0.5


@pytest.mark.parametrize("flag", ["--grey-fraction", "--warmup-fraction"])
def test_fraction_outside_0_1_is_a_bad_parameter(tmp_path: Path, requests, flag) -> None:
    result = _train(tmp_path, flag, "1.5")
    assert result.exit_code == 2 and not requests


def test_device_reaches_the_train_options(tmp_path: Path, requests) -> None:
    chosen = _train(tmp_path, "--device", "cpu")
    assert chosen.exit_code == 0, chosen.output
    assert requests[-1].options.device == "cpu" and json.loads(chosen.output)["device"] == "cpu"


@pytest.mark.parametrize("spec", ["cuda", "auto"])
def test_under_torchrun_cuda_means_the_local_ranks_gpu(
    tmp_path: Path, requests, monkeypatch, spec: str
) -> None:
    """``torchrun … vitrieve train --device cuda``: rank 1 (LOCAL_RANK=1) trains on cuda:1,
    not on the cuda:0 the option used to be resolved to while parsing (which the trainer then
    refused on every rank but 0). CUDA is faked: two GPUs, no process group formed."""
    import torch

    joined: list = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=None: f"fake GPU {index}")
    monkeypatch.setattr(distributed, "setup_distributed", lambda **kw: joined.append(kw) or (1, 2))
    monkeypatch.setattr(distributed, "cleanup_distributed", lambda: None)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    result = _train(tmp_path, "--device", spec)
    assert result.exit_code == 0, result.output
    assert joined == [{"device": spec, "local_rank": 1}]  # still unresolved when joining
    assert requests[-1].options.device == "cuda:1"
    assert result.output == ""  # rank 1 reports nothing: rank 0 does


def test_columns_and_architecture_reach_the_request(tmp_path: Path, requests) -> None:
    """``--sep/--image-col/--caption-col`` (the reader's error tells users to set them) and
    ``--arch`` (an architecture, not a model reference) arrive in the TrainRequest."""
    chosen = _train(tmp_path, "--sep", ",", "--image-col", "file", "--caption-col", "text",
                    "--arch", "small")  # fmt: skip
    assert chosen.exit_code == 0, chosen.output
    request = requests[-1]
    assert (request.sep, request.image_col, request.caption_col) == (",", "file", "text")
    assert request.model == "small"
    default = _train(tmp_path)
    assert default.exit_code == 0 and requests[-1].sep == training_main.TrainRequest.sep


def test_stream_or_preload_reaches_the_options(tmp_path: Path, requests) -> None:
    assert _train(tmp_path).exit_code == 0 and requests[-1].options.stream is None  # measured
    assert _train(tmp_path, "--stream").exit_code == 0 and requests[-1].options.stream is True
    assert _train(tmp_path, "--preload").exit_code == 0 and requests[-1].options.stream is False


def test_demo_device_reaches_training_and_indexing(tmp_path: Path, monkeypatch) -> None:
    """``vitrieve demo --device cpu``: the device reaches the demo's settings (its training
    and indexing read it there), and the result names the library."""
    import retrieval.commands.demo as demo_command

    built: list = []
    monkeypatch.setattr(
        demo_command, "build_demo", lambda settings, say: built.append(settings) or tmp_path
    )
    args = ["demo", "--cache-dir", str(tmp_path), "--no-ui", "--json", "--device", "cpu"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert built[-1].device == "cpu" and built[-1].cache == tmp_path.resolve()


def test_demo_on_the_network_needs_a_login_or_no_auth_on_network(
    tmp_path: Path, monkeypatch
) -> None:
    """``vitrieve demo --host 0.0.0.0`` without a login is refused before the demo is built;
    ``--no-auth-on-network`` reaches the UI server as ``open_on_network``, as in ``ui``."""
    import retrieval.commands.demo as demo_command
    import retrieval.commands.ui as ui_command

    built, served = [], []
    monkeypatch.setattr(ui_command, "login_configured", lambda: False)
    monkeypatch.setattr(
        demo_command, "build_demo", lambda settings, say: built.append(settings) or tmp_path
    )
    monkeypatch.setattr(
        demo_command, "serve", lambda *args, **kwargs: served.append((args, kwargs))
    )
    args = ["demo", "--cache-dir", str(tmp_path), "--host", "0.0.0.0", "--port", "8765"]
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code == 1 and "no login is configured" in refused.output
    assert built == [] and served == []

    opened = CliRunner().invoke(app, [*args, "--no-auth-on-network"])
    assert opened.exit_code == 0, opened.output
    assert len(built) == 1 and served[-1][1] == {"open_on_network": True}
    assert served[-1][0][:3] == (tmp_path, "0.0.0.0", 8765)

    loopback = CliRunner().invoke(app, ["demo", "--cache-dir", str(tmp_path)])
    assert loopback.exit_code == 0 and served[-1][1] == {"open_on_network": False}
