"""Export a library's zero-shot labels (path, label set, label, score) as CSV or JSON, and
read such a file back (so an export round-trips, and other tools can import it).

The one export format and writer: ``vitrieve export`` and the UI's "Download labels" both
write it, with every label of every photo."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import TextIO

from encoders.errors import VitrieveError
from indexer.store.metadata import MetadataStore

FORMATS = ("csv", "json")
COLUMNS = ("path", "label_set", "label", "score")
Row = tuple[str, str, str, float]


def label_rows(store: MetadataStore, label_set: str | None = None) -> list[Row]:
    """Every ``(path, label_set, label, score)`` of indexed files (of one set), by path, then
    set, then best score first."""
    labels = store.read_labels(label_set=label_set or None)
    rows = [
        (record.path, label.label_set, label.label, label.score)
        for record in store.get_files(sorted(labels))
        if record.status == "indexed"
        for label in labels[record.id]
    ]
    return sorted(rows, key=lambda row: (row[0], row[1], -row[3]))


def write_export(rows: list[Row], fmt: str, out: TextIO) -> None:
    """CSV with a header row, or JSON: a list of {path, label_set, label, score}."""
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows([(p, s, lab, repr(sc)) for p, s, lab, sc in rows])
    elif fmt == "json":
        json.dump([dict(zip(COLUMNS, r, strict=True)) for r in rows], out, indent=2,
                  ensure_ascii=False)  # fmt: skip
        out.write("\n")
    else:
        raise VitrieveError(f"unknown export format {fmt!r}: choose csv or json")


def export_string(rows: list[Row], fmt: str) -> str:
    buffer = io.StringIO()
    write_export(rows, fmt, buffer)
    return buffer.getvalue()


def read_export(path: Path) -> list[Row]:
    """The rows of a CSV or JSON export (format from the suffix)."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        if Path(path).suffix.lower() == ".json":
            items = json.loads(text)
            return [(d["path"], d["label_set"], d["label"], float(d["score"])) for d in items]
        reader = csv.DictReader(io.StringIO(text))
        return [(d["path"], d["label_set"], d["label"], float(d["score"])) for d in reader]
    except (ValueError, KeyError, TypeError) as exc:
        raise VitrieveError(f"{path} is not a vitrieve label export: {exc}") from exc
