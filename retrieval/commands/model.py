"""Model commands: convert open_clip weights, embed images or texts to .npy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import typer

from encoders.atomic import atomic_write
from encoders.errors import VitrieveError
from encoders.weights.checkpoint import save_checkpoint
from encoders.weights.pretrained import load_openclip
from indexer.decode.images import decode_image
from retrieval.commands.common import ModelChoice, model_choice, takes


def register(app: typer.Typer) -> None:
    app.command("convert")(convert)
    app.command("embed")(embed)


def convert(
    arch: str = typer.Option(
        ..., "--arch", help="open_clip architecture name (e.g. ViT-B-32) or config .json."
    ),
    weights: str = typer.Option(
        ...,
        "--weights",
        help="open_clip weights file (.bin/.pt/.safetensors) or a pretrained tag (needs internet).",
    ),  # fmt: skip
    out: Path = typer.Option(
        ..., "--out", help="Checkpoint directory to write (config.json + model.safetensors)."
    ),
) -> None:
    """Turn an open_clip checkpoint into a vitrieve checkpoint directory."""
    clip = load_openclip(arch, weights)
    model_id = save_checkpoint(
        clip, out, extra={"source": f"open_clip:{arch}:{Path(weights).name}"}
    )
    typer.echo(f"wrote {out} (model id {model_id})")


@takes(model_choice, "model")
def embed(
    images: list[Path] | None = typer.Argument(
        None, help="Image files to embed, in order; shell globs work (photos/*.jpg)."
    ),
    texts: list[str] | None = typer.Option(None, "--texts", help="A text to embed; repeatable."),
    texts_file: Path | None = typer.Option(None, "--texts-file", help="One text per line."),
    out: Path = typer.Option(
        ..., "--out", help="Output .npy: one L2-normalised row per input, in order."
    ),
    *,
    model: ModelChoice,
) -> None:
    """Embed images or texts with a model: the building block for your own pipelines."""
    chosen = [x for x in (images, texts, texts_file) if x]
    if len(chosen) != 1:
        raise typer.BadParameter("give image files, or --texts, or --texts-file (one of them)")
    encoder = model.load()
    if images:
        size = encoder.image_size
        vectors = encoder.encode_images([_decode(p, size) for p in images])
    else:
        vectors = encoder.encode_texts(texts or _read_lines(texts_file))
    _save_npy(out, vectors)
    rows, dim = (int(n) for n in vectors.shape)
    typer.echo(json.dumps({"out": str(out), "rows": rows, "dim": dim, "device": model.device_name}))


def _save_npy(out: Path, vectors: np.ndarray) -> None:
    """``np.save``'s file (``.npy`` appended when the name lacks it), written atomically."""
    target = out if out.name.endswith(".npy") else out.with_name(out.name + ".npy")

    def write(tmp: Path) -> None:
        with tmp.open("wb") as handle:
            np.save(handle, vectors)

    atomic_write(target, write)


def _decode(path: Path, size: int):
    """The indexer's safe decoder: EXIF orientation, bomb guard, clear errors."""
    try:
        return decode_image(path, target_size=size).image
    except OSError as exc:
        raise VitrieveError(f"cannot read image {path}: {exc}") from exc


def _read_lines(path: Path | None) -> list[str]:
    if path is None or not path.is_file():
        raise VitrieveError(f"texts file not found: {path}")
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return [line for line in lines if line]
