"""The Model page's view of a library's checkpoint beyond what ``Library`` answers: its
``config.json`` as written and the training curves beside it.

A stop-gap adapter, the UI's only reading of checkpoint files: these belong on ``Library``
(``Library.model_config()``, ``Library.training_curves()``). ``curves.png`` is named by the
training run's layout module (``encoders.training.layout``), the one place that names it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from encoders.training.layout import CURVES_FILE
from encoders.weights.checkpoint import CONFIG_FILE
from retrieval.library.model import model_dir


def _folders(library: Any) -> list[Path]:
    """The checkpoint folder the library uses (its own copy, else its ``model_ref``), then the
    folder it was indexed from (where the training run's files are)."""
    active = library.manifest.active
    if active is None:
        return []
    used = model_dir(library.path, library.manifest)
    reference = Path(active.model_ref).expanduser()
    return list(dict.fromkeys(f for f in (used, reference) if f is not None))


def written_config(library: Any) -> dict | None:
    """The checkpoint's ``config.json`` as written; None when it is missing or unreadable."""
    for folder in _folders(library):
        path = folder / CONFIG_FILE
        if path.is_file():
            try:
                return json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return None
    return None


def training_curves(library: Any) -> Path | None:
    """``CURVES_FILE`` in the checkpoint's folder or its run folder (its parent), if any."""
    for folder in _folders(library):
        for candidate in (folder / CURVES_FILE, folder.parent / CURVES_FILE):
            if candidate.is_file():
                return candidate
    return None
