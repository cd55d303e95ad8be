"""open_clip models as our encoders: from a local weights file, or a pretrained tag.

A pretrained tag (e.g. ``ViT-B-32`` + ``laion2b_s34b_b79k``) needs internet once: open_clip
downloads the file into its cache and we convert it. Nothing in the tests needs this path.
"""

from __future__ import annotations

import logging
from pathlib import Path

from encoders.errors import VitrieveError
from encoders.model.clip import CLIP
from encoders.model.config import load_config
from encoders.weights.checkpoint import load_openclip_weights

log = logging.getLogger(__name__)


def list_pretrained_tags(model_name: str) -> list[str]:
    """open_clip's known pretrained tags for an architecture (no network)."""
    import open_clip

    return [tag for name, tag in open_clip.list_pretrained() if name == model_name]


def download_openclip_weights(model_name: str, tag: str, cache_dir: Path | None = None) -> Path:
    """Fetch (or find in open_clip's cache) the weights file of a pretrained tag."""
    from open_clip.pretrained import download_pretrained, get_pretrained_cfg

    cfg = get_pretrained_cfg(model_name, tag)
    if not cfg:
        tags = ", ".join(list_pretrained_tags(model_name)) or "none"
        raise VitrieveError(f"no pretrained tag {tag!r} for {model_name} (known: {tags})")
    try:
        path = download_pretrained(cfg, cache_dir=str(cache_dir) if cache_dir else None)
    except Exception as exc:  # network errors come in many types
        raise VitrieveError(f"cannot download {model_name}/{tag}: {exc}") from exc
    if not path:
        raise VitrieveError(f"open_clip returned no file for {model_name}/{tag}")
    return Path(path)


def load_openclip(model_name: str, weights: str | Path) -> CLIP:
    """Our CLIP with open_clip weights: ``weights`` is a file path or a pretrained tag."""
    config = load_config(model_name)
    path = Path(weights)
    if not path.is_file():
        if path.suffix in (".bin", ".pt", ".pth", ".safetensors") or "/" in str(weights):
            raise VitrieveError(f"weights file not found: {path}")
        log.info("downloading open_clip weights %s/%s", model_name, weights)
        path = download_openclip_weights(model_name, str(weights))
    return load_openclip_weights(config, path)
