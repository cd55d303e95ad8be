"""The one table writer (``retrieval.labels.export.write_table``) behind the label export and
the Classify page's "Download CSV": label rows keep their format; a verdict table keeps its
columns and its probabilities exactly."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from encoders.errors import VitrieveError
from retrieval.labels.export import COLUMNS, export_string


def test_label_rows_keep_the_export_format() -> None:
    rows = [("a/1.jpg", "labels", "red circle", 0.8125), ("b.png", "labels", "none", 0.1)]
    text = export_string(rows, "csv")
    assert text.splitlines() == [",".join(COLUMNS), "a/1.jpg,labels,red circle,0.8125",
                                 "b.png,labels,none,0.1"]  # fmt: skip
    assert json.loads(export_string(rows, "json"))[0] == dict(zip(COLUMNS, rows[0], strict=True))


def test_a_verdict_table_round_trips() -> None:
    columns = ["image", "label", "score", "p(red, circle)", "p(blue)"]
    score = float(np.float32(0.7))  # what a classifier hands back, widened
    rows = [("x,y.jpg", "red, circle", score, score, 1 - score)]
    read = list(csv.reader(io.StringIO(export_string(rows, "csv", columns))))
    assert read[0] == columns
    assert read[1][:2] == ["x,y.jpg", "red, circle"]
    assert [float(v) for v in read[1][2:]] == [score, score, 1 - score]  # exact: repr
    with pytest.raises(VitrieveError):
        export_string(rows, "xlsx", columns)
