"""Evaluation metrics against hand computations; runners and the eval CLI end to end."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from encoders.data.datasets import write_synthetic
from encoders.data.drawing import COLOURS
from encoders.data.synthetic import render_object
from encoders.model.clip import create_model
from encoders.model.config import load_config
from encoders.runtime.zeroshot import build_zero_shot_classifier
from encoders.training.data import CaptionedItem
from encoders.weights.checkpoint import save_checkpoint
from retrieval.cli import app
from retrieval.evaluation.evaluate import (
    evaluate_retrieval,
    evaluate_zeroshot,
    mean_per_class_recall,
    retrieval_metrics,
    topk_accuracy,
    zeroshot_metrics,
)

LOGITS = np.array(
    [[0.9, 0.1, 0.0], [0.2, 0.5, 0.3], [0.1, 0.6, 0.3], [0.3, 0.3, 0.4], [0.0, 0.0, 1.0]]
)
TARGETS = np.array([0, 2, 1, 0, 2])  # predictions 0, 1, 1, 2, 2: rows 0, 2, 4 right


def test_topk_accuracy_by_hand():
    assert topk_accuracy(LOGITS, TARGETS, 1) == pytest.approx(3 / 5)
    # top-2 sets: {0,1} {1,2} {1,2} {2,0 (tie with 1 -> lower index)} {2,0}: all contain target
    assert topk_accuracy(LOGITS, TARGETS, 2) == pytest.approx(1.0)
    assert topk_accuracy(LOGITS, TARGETS, 5) == 1.0  # k larger than the class count


def test_mean_per_class_recall_by_hand():
    # class 0: rows 0, 3 -> 1/2; class 1: row 2 -> 1; class 2: rows 1, 4 -> 1/2
    assert mean_per_class_recall(LOGITS.argmax(1), TARGETS) == pytest.approx(2 / 3)
    metrics = zeroshot_metrics(LOGITS, TARGETS)
    assert metrics == pytest.approx(
        {"n": 5, "top1": 0.6, "top5": 1.0, "mean_per_class_recall": 2 / 3}
    )


def test_retrieval_recall_by_hand():
    images = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    texts = np.array([[0.0, 1.0], [1.0, 0.0]])
    caption_of_image = np.array([0, 1, 0])
    metrics = retrieval_metrics(images, texts, caption_of_image, ks=(1, 2, 3))
    # text 0 ranks images 1, 2, 0 (captions 1, 0, 0): first hit at 2.
    # text 1 ranks images 0, 2, 1 (captions 0, 0, 1): first hit at 3.
    assert metrics["text_to_image_R@1"] == 0.0
    assert metrics["text_to_image_R@2"] == 0.5
    assert metrics["text_to_image_R@3"] == 1.0
    # image 0 -> texts (1, 0): own at rank 2; image 1 -> (0, 1): rank 2; image 2 -> (0, 1): 1
    assert metrics["image_to_text_R@1"] == pytest.approx(1 / 3)
    assert metrics["image_to_text_R@2"] == 1.0


class ColourOracle:
    """A stand-in Encoder that sees only colours: images and texts map to colour one-hots."""

    embed_dim = len(COLOURS)

    def __init__(self) -> None:
        self.prompts: list[str] = []

    def preprocess(self, image) -> torch.Tensor:
        pixels = torch.from_numpy(np.asarray(image).reshape(-1, 3).astype(np.float32))
        return pixels  # (S*S, 3)

    def encode_image_tensors(self, batch: torch.Tensor) -> np.ndarray:
        palette = torch.tensor(list(COLOURS.values()), dtype=torch.float32)
        rows = []
        for pixels in batch:  # count pixels of exactly a palette colour (the object's)
            distance, nearest = torch.cdist(pixels, palette).min(dim=-1)
            counts = torch.bincount(nearest[distance < 10], minlength=len(COLOURS))
            rows.append(np.eye(len(COLOURS), dtype=np.float32)[int(counts.argmax())])
        return np.stack(rows)

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        self.prompts.extend(texts)
        rows = [[float(c in t.split()) for c in COLOURS] for t in texts]
        out = np.array(rows, dtype=np.float32)
        return out / np.linalg.norm(out, axis=1, keepdims=True).clip(min=1e-12)


@pytest.fixture
def colour_items(tmp_path) -> list[CaptionedItem]:
    items = []
    for i, colour in enumerate(["red", "blue", "green", "red", "yellow"]):
        path = tmp_path / f"{i}.png"
        render_object(colour, "circle", 32, seed=i).save(path)
        items.append(CaptionedItem(path, f"a {colour} circle", colour, {"held_out": str(i % 2)}))
    return items


def test_zeroshot_runner_ensembles_prompts_and_splits_held_out(colour_items):
    oracle = ColourOracle()
    templates = ("a {} thing.", "a photo of a {} shape.")
    result = evaluate_zeroshot(oracle, colour_items, ["red", "blue", "green", "yellow"], templates)
    assert result["top1"] == 1.0 and result["n"] == 5 and result["templates"] == 2
    assert result["seen"]["n"] == 3 and result["held_out"]["n"] == 2
    assert result["attributes"] is None  # single-word class names
    assert "confusion" not in result
    assert len(oracle.prompts) == 8 and "a photo of a green shape." in oracle.prompts
    vectors = build_zero_shot_classifier(oracle, ["red", "blue"], templates)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0)


def test_zeroshot_runner_reports_what_the_errors_are(colour_items):
    # the oracle sees no shapes: "red square" and "red circle" tie, the first listed wins
    classes = [f"{c} {s}" for c in ("red", "blue", "green", "yellow") for s in ("square", "circle")]
    items = [replace(item, label=f"{item.label} circle") for item in colour_items]
    result = evaluate_zeroshot(ColourOracle(), items, classes, confusion=2)
    assert result["top1"] == 0.0
    attributes = result["attributes"]
    assert attributes["all"]["right"] == [1.0, 0.0]  # colour always right, shape never
    assert attributes["all"]["errors"] == [{"wrong_words": [2], "count": 5, "share": 1.0}]
    assert attributes["seen"]["n"] == 3 and attributes["held_out"]["n"] == 2
    assert result["confusion"] == [
        {"true": "red circle", "predicted": "red square", "count": 2, "share": 1.0},
        {"true": "blue circle", "predicted": "blue square", "count": 1, "share": 1.0},
    ]


def test_retrieval_runner_counts_identical_captions_as_hits(colour_items):
    result = evaluate_retrieval(ColourOracle(), colour_items)
    assert result["images"] == 5 and result["captions"] == 4
    assert result["text_to_image_R@1"] == 1.0 and result["image_to_text_R@1"] == 1.0


@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("eval")
    torch.manual_seed(0)
    save_checkpoint(create_model(load_config("tiny")), root / "ckpt")
    write_synthetic(root / "synth", n_train=0, n_test=64, size_px=64, seed=1, workers=1)
    return root / "ckpt", root / "synth"


def test_eval_zeroshot_cli(tiny_setup):
    ckpt, synth = tiny_setup
    args = ["eval", "zeroshot", "--model", str(ckpt), "--data", str(synth / "test.tsv")]
    args += ["--label-col", "label", "--classes", str(synth / "classes.txt"), "--precision", "fp32"]
    runner = CliRunner()
    templates = ["--template", "a {}.", "--template", "a photo of a {}."]
    result = runner.invoke(app, [*args, *templates, "--confusion", "2"])
    assert result.exit_code == 0, result.output
    assert "top-1" in result.output and "held-out" in result.output
    assert "per-word accuracy — word 1 (red, " in result.output and "most confused" in result.output
    result = runner.invoke(app, [*args, "--json", "--confusion", "3"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output)
    assert metrics["classes"] == 64 and metrics["n"] > 0
    assert 0.0 <= metrics["top1"] <= metrics["top5"] <= 1.0
    assert metrics["seen"]["n"] + metrics["held_out"]["n"] == metrics["n"]
    # "red circle", …: two word positions, each right at least as often as the whole class
    attributes = metrics["attributes"]
    assert len(attributes["words"]) == 2 and attributes["all"]["n"] == metrics["n"]
    assert all(metrics["top1"] <= share <= 1.0 for share in attributes["all"]["right"])
    assert attributes["seen"]["n"] + attributes["held_out"]["n"] == metrics["n"]
    pairs = metrics["confusion"]
    assert 0 < len(pairs) <= 3 and all(p["true"] != p["predicted"] for p in pairs)
    assert [p["count"] for p in pairs] == sorted((p["count"] for p in pairs), reverse=True)
    bad = runner.invoke(app, [*args, "--confusion", "-1"])
    assert bad.exit_code == 2


def test_eval_retrieval_cli(tiny_setup):
    ckpt, synth = tiny_setup
    args = ["eval", "retrieval", "--model", str(ckpt), "--data", str(synth / "test.tsv")]
    result = CliRunner().invoke(app, [*args, "--precision", "fp32", "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output)
    assert metrics["images"] == 64
    for direction in ("text_to_image", "image_to_text"):
        recalls = [metrics[f"{direction}_R@{k}"] for k in (1, 5, 10)]
        assert 0.0 <= recalls[0] <= recalls[1] <= recalls[2] <= 1.0
    human = CliRunner().invoke(app, [*args, "--precision", "fp32"])
    assert human.exit_code == 0 and "R@10" in human.output
