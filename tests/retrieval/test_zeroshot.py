"""Zero-shot classification, library labeling (one row per image and set), label filters,
and the export round trip."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import func, select

from encoders.data.synthetic import render_object
from encoders.errors import VitrieveError
from indexer.store.schema import LabelRow
from retrieval.labels.export import export_string, label_rows, read_export
from retrieval.labels.zeroshot import ABSTAIN, ZeroShotClassifier, label_library, parse_labels
from retrieval.search.query import Filters

COLOURS = ["red", "blue", "green", "yellow"]


def test_parse_labels() -> None:
    assert parse_labels("cat, dog,,car\nbird") == ["cat", "dog", "car", "bird"]
    with pytest.raises(VitrieveError):
        parse_labels(" , ")


def test_classify_images_by_colour(library) -> None:
    classifier = ZeroShotClassifier(library.encoder, COLOURS)
    images = [render_object(c, "square", 96, seed=5, background="gradient") for c in COLOURS]
    verdicts = classifier.classify_images(images)
    assert [v.label for v in verdicts] == COLOURS
    for v in verdicts:
        assert sum(v.probabilities.values()) == pytest.approx(1.0, abs=1e-5)


def test_unrelated_labels_abstain(library) -> None:
    classifier = ZeroShotClassifier(library.encoder, ["a cat", "a dog", "a car"])
    vectors = library.index.reconstruct(np.sort(library.index.ids()))
    verdicts = classifier.classify_vectors(vectors)
    assert sum(v.abstained for v in verdicts) >= 0.9 * len(verdicts)
    assert all(v.probabilities for v in verdicts)  # probabilities are still reported


def test_templates_need_a_placeholder(library) -> None:
    with pytest.raises(VitrieveError, match="template"):
        ZeroShotClassifier(library.encoder, ["a"], templates=["no placeholder"])


def _rows_per_image(store, label_set: str) -> list[int]:
    query = select(func.count()).where(LabelRow.label_set == label_set).group_by(LabelRow.file_id)
    with store.session() as session:
        return list(session.scalars(query))


def test_label_library_writes_one_row_per_image_and_set(library, synth_library, tmp_path) -> None:
    classifier = ZeroShotClassifier(library.encoder, COLOURS)
    seen = []
    for _ in range(2):  # labeling again replaces, never duplicates
        report = label_library(
            library.index, library.store, classifier, "colour", 16, lambda d, t: seen.append((d, t))
        )
    assert report.images == library.count() and seen[-1] == (report.images, report.images)
    assert _rows_per_image(library.store, "colour") == [1] * library.count()
    labels = library.labels(label_set="colour")  # the one label reader (issue 17 point 1)
    paths = {r.id: r.path for r in library.store.get_files(list(labels))}
    right = sum(
        labels[i][0].label == paths[i].split("/")[0] for i in labels if "copies" not in paths[i]
    )
    assert right >= 0.9 * len(synth_library.photos)
    # labels become filters (any set, or SET:LABEL) and show on results
    red = library.searcher.search("a shape", Filters(label="colour:red"), limit=100).results
    assert red and all(("colour", "red") in [lab[:2] for lab in r.labels] for r in red)
    assert {r.id for r in red} == {
        r.id for r in library.searcher.search("a shape", Filters(label="red"), limit=100).results
    }
    # export round trip, both formats
    rows = label_rows(library.store, "colour")
    assert len(rows) == library.count()
    for fmt in ("csv", "json"):
        out = tmp_path / f"labels.{fmt}"
        out.write_text(export_string(rows, fmt))
        assert read_export(out) == rows


def test_label_library_abstains_with_unrelated_labels(library) -> None:
    classifier = ZeroShotClassifier(library.encoder, ["an invoice", "a tax form"])
    report = label_library(library.index, library.store, classifier, "paperwork")
    assert report.counts.get(ABSTAIN, 0) >= 0.9 * report.images
    assert _rows_per_image(library.store, "paperwork") == [1] * report.images
