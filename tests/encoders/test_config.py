from __future__ import annotations

import json

import pytest

from encoders.errors import VitrieveError
from encoders.model.config import CLIPConfig, load_config, openclip_config_names


@pytest.mark.parametrize("name", ["ViT-B-32", "ViT-B-16", "ViT-S-32", "ViT-L-14"])
def test_openclip_names_resolve_to_their_json(name: str) -> None:
    import open_clip

    expected = open_clip.get_model_config(name)
    config = load_config(name)
    assert config.embed_dim == expected["embed_dim"]
    assert config.vision.width == expected["vision_cfg"]["width"]
    assert config.vision.layers == expected["vision_cfg"]["layers"]
    assert config.vision.patch_size == expected["vision_cfg"]["patch_size"]
    assert config.text.layers == expected["text_cfg"]["layers"]


def test_round_trip_through_json(tmp_path) -> None:
    for name in ("tiny", "small", "base", "ViT-B-32"):
        config = load_config(name)
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(config.to_dict()))
        again = load_config(path)
        assert again.to_dict() | {"name": ""} == config.to_dict() | {"name": ""}


def test_builtin_list_includes_openclip_vits() -> None:
    names = openclip_config_names()
    assert {"ViT-B-32", "ViT-B-16", "ViT-S-32"} <= set(names)


@pytest.mark.parametrize(
    "bad",
    [
        {"embed_dim": 10**9, "vision_cfg": {}, "text_cfg": {}},
        {"embed_dim": 64, "vision_cfg": {"image_size": 30, "patch_size": 8}, "text_cfg": {}},
        {"embed_dim": 64, "vision_cfg": {"timm_model_name": "resnet50"}, "text_cfg": {}},
        {"embed_dim": 64, "vision_cfg": {"layers": 10**6}, "text_cfg": {}},
        {"vision_cfg": {}, "text_cfg": {}},
    ],
)
def test_bad_configs_are_refused_before_allocation(bad: dict) -> None:
    with pytest.raises(VitrieveError):
        CLIPConfig.from_dict(bad)


def test_unknown_model_name_is_a_clear_error() -> None:
    with pytest.raises(VitrieveError, match="unknown model"):
        load_config("ViT-Z-99")


def test_defaults_have_one_source_and_mean_what_open_clip_means() -> None:
    """A key left out of a config JSON takes the dataclass default, and that default is
    open_clip's, so the same file builds the same network in both (patch 16, not 32)."""
    import dataclasses

    from open_clip.model import CLIPTextCfg, CLIPVisionCfg

    from encoders.model.config import TextConfig, VisionConfig

    parsed = CLIPConfig.from_dict({"embed_dim": 64, "vision_cfg": {}, "text_cfg": {}})
    assert parsed.vision == VisionConfig() and parsed.text == TextConfig()
    assert parsed.vision.patch_size == 16
    for ours, theirs in ((VisionConfig(), CLIPVisionCfg()), (TextConfig(), CLIPTextCfg())):
        shared = {f.name for f in dataclasses.fields(ours)} & set(vars(theirs))
        assert len(shared) == 6  # every size both schemas name
        for name in shared:
            assert getattr(ours, name) == getattr(theirs, name), name


def test_a_saved_config_keeps_its_patch_size(tmp_path) -> None:
    config = load_config("ViT-B-32")  # written with patch 32: the default never overrides it
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config.to_dict()))
    assert load_config(path).vision.patch_size == 32


def test_limits_do_not_import_the_config_module() -> None:
    """config.py imports limits.py to validate; limits.py must not import config.py back (no
    import circle, not even under TYPE_CHECKING)."""
    import ast
    from pathlib import Path

    import encoders.model.limits as limits

    tree = ast.parse(Path(limits.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not any(name and name.endswith("model.config") for name in imported)
    config = load_config("tiny")
    limits.validate(config)  # the protocols fit the real config
    assert limits.parameter_count(config) > 0
