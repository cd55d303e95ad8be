"""`vitrieve data synth|digits`: files written, summaries printed, bad arguments rejected."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from retrieval.cli import app


def test_data_synth_cli(tmp_path):
    out = tmp_path / "synth"
    args = ["data", "synth", str(out), "--train", "30", "--test", "10", "--size", "32"]
    result = CliRunner().invoke(app, [*args, "--seed", "2", "--workers", "1", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["counts"] == {"train": 30, "test": 10} and summary["classes"] == 64
    assert {p.name for p in out.iterdir()} >= {
        "train.tsv",
        "test.tsv",
        "classes.txt",
        "held_out.txt",
    }
    bad = CliRunner().invoke(app, ["data", "synth", str(out), "--size", "4"])
    assert bad.exit_code == 2


def test_data_digits_cli(tmp_path):
    result = CliRunner().invoke(app, ["data", "digits", str(tmp_path), "--size", "16"])
    assert result.exit_code == 0, result.output
    assert "10 classes" in result.output and (tmp_path / "test.tsv").is_file()


def test_data_synth_style_b_cli(tmp_path):
    out = tmp_path / "b"
    args = ["data", "synth", str(out), "--train", "20", "--test", "10", "--size", "32"]
    result = CliRunner().invoke(app, [*args, "--style", "b", "--workers", "1", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["classes"] == 48 and summary["held_out"] == 6
    bad = CliRunner().invoke(app, [*args, "--style", "C"])
    assert bad.exit_code != 0 and "unknown style 'C'" in bad.output
