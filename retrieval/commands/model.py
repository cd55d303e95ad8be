"""Model commands: convert open_clip weights, embed images or texts to .npy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import typer

from encoders.checkpoint import save_checkpoint
from encoders.encoder import Encoder
from encoders.errors import VitrieveError
from encoders.pretrained import load_openclip
from indexer.images import decode_image
from retrieval.commands.common import DEVICE_OPTION, device_name


def register(app: typer.Typer) -> None:
    app.command("convert")(convert)
    app.command("embed")(embed)


def convert(
    model: str = typer.Option(
        ..., help="open_clip architecture name (e.g. ViT-B-32) or config .json."
    ),
    weights: str = typer.Option(
        ...,
        help="open_clip weights file (.bin/.pt/.safetensors) or a pretrained tag (needs internet).",
    ),
    out: Path = typer.Option(
        ..., help="Checkpoint directory to write (config.json + model.safetensors)."
    ),
) -> None:
    """Turn an open_clip checkpoint into a vitrieve checkpoint directory."""
    clip = load_openclip(model, weights)
    model_id = save_checkpoint(
        clip, out, extra={"source": f"open_clip:{model}:{Path(weights).name}"}
    )
    typer.echo(f"wrote {out} (model id {model_id})")


def embed(
    model: str = typer.Option(
        ..., help="Checkpoint directory, or an open_clip name with --weights."
    ),
    weights: Path | None = typer.Option(None, help="open_clip weights file for --model NAME."),
    images: list[Path] | None = typer.Option(None, "--images", help="Image files to embed."),
    texts: list[str] | None = typer.Option(None, "--texts", help="Texts to embed."),
    texts_file: Path | None = typer.Option(None, help="A file with one text per line."),
    out: Path = typer.Option(..., help="Output .npy: one L2-normalised row per input, in order."),
    precision: str = typer.Option("auto", help="auto (bf16 where exact enough), fp32 or bf16."),
    device: str = DEVICE_OPTION,
) -> None:
    """Embed images or texts with a model: the building block for your own pipelines."""
    chosen = [x for x in (images, texts, texts_file) if x]
    if len(chosen) != 1:
        raise typer.BadParameter("give exactly one of --images, --texts or --texts-file")
    encoder = Encoder.load(model, weights=weights, precision=precision, device=device)
    if images:
        size = encoder.image_size
        vectors = encoder.encode_images([_decode(p, size) for p in images])
    else:
        lines = texts or _read_lines(texts_file)
        vectors = encoder.encode_texts(lines)
    np.save(out, vectors)
    typer.echo(
        json.dumps(
            {
                "out": str(out),
                "rows": int(vectors.shape[0]),
                "dim": int(vectors.shape[1]),
                "device": device_name(device),
            }
        )  # fmt: skip
    )


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
