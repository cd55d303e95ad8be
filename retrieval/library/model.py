"""A library's model: the checkpoint it keeps in ``models/<model id>/``, loaded and checked.

Indexing keeps the checkpoint each generation was embedded with inside the library
(``indexer.generations.keep_model``), so a library is searched with its own model by default,
whatever later happened to the folder it was indexed from (a retrain or ``train --resume`` into
the same run folder). ``model_ref`` in ``library.json`` is the record of where it came from, and
the fallback for a library that keeps no copy (indexed from something that was not a folder).
"""

from __future__ import annotations

from pathlib import Path

from encoders.errors import VitrieveError
from encoders.runtime.device import DEFAULT_DEVICE
from encoders.runtime.encoder import Encoder
from encoders.weights.checkpoint import CONFIG_FILE, WEIGHTS_FILE
from indexer.layout import Manifest, model_path


def model_dir(library: Path, manifest: Manifest) -> Path | None:
    """The checkpoint folder of the library's model: its own copy, else its ``model_ref``
    (absolute, or relative to the current folder or to the library); None when neither is
    there."""
    if manifest.active is None:
        return None
    own = model_path(library, manifest.active.model_id)
    if (own / CONFIG_FILE).is_file() and (own / WEIGHTS_FILE).is_file():
        return own
    reference = Path(manifest.active.model_ref).expanduser()
    candidates = [reference] if reference.is_absolute() else [reference, library / reference]
    return next((c for c in candidates if c.is_dir()), None)


def check_model(encoder: Encoder, manifest: Manifest) -> None:
    """Refuse a model whose vectors are not the library's (another model, another size)."""
    assert manifest.active is not None
    if encoder.model_id != manifest.active.model_id:
        raise VitrieveError(
            f"the library was indexed with model {manifest.active.model_id}, not "
            f"{encoder.model_id}: search it with its own model (or re-index)"
        )
    if encoder.embed_dim != manifest.active.embed_dim:
        raise VitrieveError("the model's embedding size does not match the library's vectors")


def load_model(
    library: Path, manifest: Manifest, device: str = DEFAULT_DEVICE, compile: bool = False
) -> Encoder:
    """The library's model on ``device`` (see ``model_dir``), checked against its vectors;
    ``compile``: both towers compiled (a long-running server's fast single queries)."""
    if manifest.active is None:
        raise VitrieveError(f"library {library} has no indexed images yet (no model recorded)")
    checkpoint = model_dir(library, manifest)
    if checkpoint is None:
        raise VitrieveError(
            f"the library's model {manifest.active.model_ref} was not found (moved or deleted?): "
            "open the library with that model given explicitly"
        )
    encoder = Encoder.load(checkpoint, device=device, compile=compile)
    check_model(encoder, manifest)
    return encoder
