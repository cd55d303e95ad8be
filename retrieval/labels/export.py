"""Export a library's zero-shot labels (path, label set, label, score) as CSV or JSON, and
read such a file back (so an export round-trips, and other tools can import it).

The one export format and writer: ``vitrieve export`` and the UI's "Download labels" both
write it, with every label of every photo; the Classify page's table of verdicts goes through
the same writer (``write_table``)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO

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


def write_table(columns: Sequence[str], rows: Iterable[Sequence[Any]], fmt: str,
                out: TextIO) -> None:  # fmt: skip
    """The one table writer: CSV with a header row (floats as ``repr``, so they read back
    exactly), or JSON, a list of ``{column: value}`` objects."""
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([repr(v) if isinstance(v, float) else v for v in row] for row in rows)
    elif fmt == "json":
        json.dump([dict(zip(columns, row, strict=True)) for row in rows], out, indent=2,
                  ensure_ascii=False)  # fmt: skip
        out.write("\n")
    else:
        raise VitrieveError(f"unknown export format {fmt!r}: choose csv or json")


def write_export(rows: list[Row], fmt: str, out: TextIO) -> None:
    """Label rows as CSV with a header row, or JSON: a list of {path, label_set, label, score}."""
    write_table(COLUMNS, rows, fmt, out)


def export_string(rows: Iterable[Sequence[Any]], fmt: str, columns: Sequence[str] = COLUMNS) -> str:
    """``write_table`` into a string (a download button's data): label rows by default, or
    any table with its ``columns`` (the Classify page's verdicts)."""
    buffer = io.StringIO()
    write_table(columns, rows, fmt, buffer)
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
