"""`vitrieve convert` and `vitrieve embed` as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import open_clip
import torch
from PIL import Image
from safetensors.torch import save_file

from encoders.model.config import load_config
from encoders.runtime.encoder import Encoder


def _vitrieve(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "retrieval.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def _openclip_weights(tmp_path):
    torch.manual_seed(0)
    cfg = load_config("tiny").to_dict()
    kwargs = {k: cfg[k] for k in ("embed_dim", "vision_cfg", "text_cfg", "quick_gelu")}
    reference = open_clip.CLIP(**kwargs).eval()
    state = {k: v.contiguous() for k, v in reference.state_dict().items() if "attn_mask" not in k}
    path = tmp_path / "open_clip_model.safetensors"
    save_file(state, str(path))
    return reference, path


def test_convert_then_embed_texts_matches_openclip(tmp_path) -> None:
    reference, weights = _openclip_weights(tmp_path)
    ckpt = tmp_path / "ckpt"
    done = _vitrieve("convert", "--arch", "tiny", "--weights", str(weights), "--out", str(ckpt))
    assert done.returncode == 0, done.stderr
    out = tmp_path / "texts.npy"
    texts = ["a red circle", "a photo of a blue star on the left"]
    args = ["embed", "--model", str(ckpt), "--precision", "fp32", "--out", str(out)]
    done = _vitrieve(*args, *sum((["--texts", t] for t in texts), []))
    assert done.returncode == 0, done.stderr
    vectors = np.load(out)
    tokens = open_clip.get_tokenizer("ViT-B-32", context_length=32)(texts)
    with torch.no_grad():
        expected = reference.encode_text(tokens, normalize=True).numpy()
    assert vectors.shape == (2, 256) and np.abs(vectors - expected).max() < 1e-4


def test_embed_images_keeps_input_order(tmp_path) -> None:
    """Image files are positional, as a shell glob expands them (``photos/*.png``)."""
    _, weights = _openclip_weights(tmp_path)
    paths = []
    for i, colour in enumerate(["red", "blue", "green"]):
        paths.append(tmp_path / f"{i}.png")
        Image.new("RGB", (80, 60), colour).save(paths[-1])
    out = tmp_path / "images.npy"
    args = ["embed", "--model", "tiny", "--weights", str(weights), *map(str, paths)]
    done = _vitrieve(*args, "--out", str(out), "--device", "cpu")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"out": str(out), "rows": 3, "dim": 256, "device": "cpu"}
    encoder = Encoder.load("tiny", weights=weights)
    single = encoder.encode_images([Image.open(paths[1]).convert("RGB")])
    assert np.allclose(np.load(out)[1], single[0], atol=2e-3)


def test_bad_input_is_one_line_and_nonzero(tmp_path) -> None:
    usage = _vitrieve("embed", "--model", "tiny", "--out", str(tmp_path / "x.npy"))
    assert usage.returncode == 2  # neither image files nor --texts
    missing = _vitrieve("convert", "--arch", "tiny", "--weights", "nope.bin", "--out", "x")
    assert missing.returncode == 1
    assert missing.stderr.strip().count("\n") == 0 and "not found" in missing.stderr
    unknown = _vitrieve("embed", "--model", "ViT-Q-1", "--texts", "a", "--out", "x.npy")
    assert unknown.returncode == 1 and "unknown model" in unknown.stderr
    assert "Traceback" not in unknown.stderr + missing.stderr
