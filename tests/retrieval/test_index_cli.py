"""`vitrieve index` and `vitrieve status` on the generated bad library (real decoder workers)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from library_factory import BOMB_LIMIT, make_bad_library
from typer.testing import CliRunner

from retrieval.cli import app


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from encoders.model.clip import create_model
    from encoders.model.config import load_config
    from encoders.weights.checkpoint import save_checkpoint

    directory = tmp_path_factory.mktemp("ckpt") / "tiny"
    save_checkpoint(create_model(load_config("tiny")), directory)
    return directory


def test_index_bad_library_then_status(tmp_path: Path, checkpoint: Path) -> None:
    lib = make_bad_library(tmp_path / "photos")
    runner = CliRunner()
    args = ["index", str(lib.root), "--model", str(checkpoint), "--workers", "2",
            "--batch-size", "4", "--max-pixels", str(BOMB_LIMIT), "--report"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert f"failed    {len(lib.bad)}" in result.output
    for path in lib.bad:
        assert f"  {path}: " in result.output
    assert "skipped   2 symlinks" in result.output
    status = runner.invoke(app, ["status", "--library", str(lib.root), "--json"])
    assert status.exit_code == 0, status.output
    info = json.loads(status.output)
    assert info["counts"] == {"pending": 0, "indexed": len(lib.good), "failed": len(lib.bad),
                              "deleted": 0}  # fmt: skip
    assert {f["path"] for f in info["failures"]} == set(lib.bad)
    assert info["index"]["kind"] == "flat" and info["index"]["vectors"] == len(lib.good)
    again = runner.invoke(app, [*args[:-1], "--device", "cpu", "--json"])  # nothing new
    report = json.loads(again.output)
    assert report["device"] == "cpu"  # the device that ran, named (issue 13)
    assert report["embedded"] == 0 and report["unchanged"] == len(lib.good) + len(lib.bad)
    human = runner.invoke(app, ["status", "--library", str(lib.root / ".vitrieve")])
    assert f"{len(lib.good)} indexed" in human.output and "bomb.png: decompression" in human.output


def test_errors_are_one_line(tmp_path: Path, checkpoint: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(app, ["index", str(tmp_path / "nope"), "--model", str(checkpoint)])
    assert missing.exit_code == 1 and "error: photo folder not found" in missing.output
    bad_engine = runner.invoke(
        app, ["index", str(tmp_path), "--model", str(checkpoint), "--engine", "spark"]
    )
    assert bad_engine.exit_code == 2
    no_library = runner.invoke(app, ["status", "--library", str(tmp_path)])
    assert no_library.exit_code == 1 and "no library" in no_library.output


def test_threads_option_sets_encoder_threads_for_the_run(
    tmp_path: Path, checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from encoders.runtime.encoder import Encoder

    seen: list[int] = []

    real = Encoder.encode_image_tensors

    def spy(self, batch):
        seen.append(torch.get_num_threads())
        return real(self, batch)

    monkeypatch.setattr(Encoder, "encode_image_tensors", spy)
    lib = make_bad_library(tmp_path / "photos")
    before = torch.get_num_threads()
    args = ["index", str(lib.root), "--model", str(checkpoint), "--workers", "0",
            "--threads", "1", "--max-pixels", str(BOMB_LIMIT), "--json"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    # (the encoder's load-time bf16 check runs first, at the default threads)
    during_run = seen[seen.index(1) :] if 1 in seen else []
    assert during_run and set(during_run) == {1}
    assert torch.get_num_threads() == before
