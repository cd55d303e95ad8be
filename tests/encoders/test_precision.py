"""The measured precision: with an injected timer, ``auto`` picks the fastest *exact*
candidate, keeps it per machine and model, measures again when the key changes, and ignores a
corrupt cache; the same rule for the trainer's autocast; the CUDA capability rule."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import encoders.runtime.candidates as candidates
import encoders.runtime.precision as precision
from encoders.model.clip import create_model
from encoders.model.config import load_config
from encoders.runtime.capability import bf16_native, cuda_reduced_dtype, int8_hardware
from encoders.runtime.encoder import Encoder
from encoders.runtime.precision import Choice, ChoiceCache, measure_autocast, pick


class FakeClock:
    """Runs each candidate for real (its outputs are checked) but says it took the given
    seconds; counts the timed calls."""

    def __init__(self, seconds: dict[str, float]) -> None:
        self.seconds, self.calls = seconds, []

    def __call__(self, name, run) -> float:
        run()
        self.calls.append(name)
        return self.seconds[name]


@pytest.fixture
def all_candidates(monkeypatch):
    """Every CPU precision is a candidate, whatever this CPU has (they all run anywhere)."""
    monkeypatch.setattr(candidates, "cpu_candidates", lambda device: ["fp32", "bf16", "int8"])


@pytest.fixture(autouse=True)
def _small_probe(monkeypatch):
    """A held-out set of 3 batches of 4 (11 neighbours each: enough for a top-10)."""
    monkeypatch.setattr(candidates, "PROBE_BATCHES", 3)
    monkeypatch.setattr(candidates, "PROBE_BATCH", 4)


def _encoder(cache, clock, model_id="m"):
    torch.manual_seed(0)
    model = create_model(load_config("tiny"))
    return Encoder(model, model_id=model_id, device="cpu", cache_dir=cache, time_run=clock)


def test_pick_takes_the_fastest_exact_candidate() -> None:
    rates = {"fp32": 10.0, "bf16": 30.0, "int8": 50.0}
    assert pick(rates, {"fp32": True, "bf16": True, "int8": False})[0] == "bf16"
    assert pick(rates, {"fp32": True, "bf16": False, "int8": False})[0] == "fp32"
    assert pick(rates, {"fp32": True, "bf16": True, "int8": True})[0] == "int8"
    assert "not exact" in pick(rates, {"fp32": True, "bf16": True, "int8": False})[1]
    everything = {"fp32": True, "bf16": True, "int8": True}
    assert pick({"fp32": 100.0, "bf16": 102.0, "int8": 101.0}, everything)[0] == "fp32"  # a tie
    assert pick({"fp32": 100.0, "bf16": 110.0, "int8": 112.0}, everything)[0] == "bf16"


def test_auto_picks_the_faster_exact_precision(tmp_path, all_candidates, monkeypatch) -> None:
    monkeypatch.setattr(candidates, "MIN_INT8_AGREEMENT", 1.01)  # int8 never exact here
    clock = FakeClock({"fp32": 3.0, "bf16": 1.0, "int8": 0.5})
    encoder = _encoder(tmp_path / "a", clock)
    assert encoder.precision == "bf16" and encoder.dtype == torch.bfloat16
    assert encoder.precision_choice.exact == {"fp32": True, "bf16": True, "int8": False}
    assert set(clock.calls) == {"fp32", "bf16", "int8"}
    slower = _encoder(tmp_path / "b", FakeClock({"fp32": 1.0, "bf16": 2.0, "int8": 0.5}))
    assert slower.precision == "fp32" and slower.dtype == torch.float32


def test_auto_takes_int8_when_its_neighbours_agree(tmp_path, all_candidates, monkeypatch):
    monkeypatch.setattr(candidates, "MIN_INT8_AGREEMENT", 0.0)
    encoder = _encoder(tmp_path, FakeClock({"fp32": 3.0, "bf16": 2.0, "int8": 1.0}))
    assert encoder.precision == "int8" and encoder.dtype == torch.float32
    linear = encoder.model.visual.proj
    assert "quantized" in type(linear).__module__
    vectors = encoder.encode_texts(["a red circle", "a blue square"])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)


def test_a_cached_choice_is_reused_until_the_key_changes(tmp_path, all_candidates, monkeypatch):
    first = FakeClock({"fp32": 1.0, "bf16": 2.0, "int8": 3.0})
    assert _encoder(tmp_path, first).precision == "fp32" and first.calls
    again = FakeClock({"fp32": 9.0, "bf16": 1.0, "int8": 9.0})
    cached = _encoder(tmp_path, again)
    assert again.calls == [] and cached.precision == "fp32" and cached.precision_choice.cached
    other_model = FakeClock({"fp32": 9.0, "bf16": 1.0, "int8": 9.0})
    assert _encoder(tmp_path, other_model, model_id="other").precision == "bf16"
    assert other_model.calls
    real_key = precision.machine_key
    monkeypatch.setattr(precision, "machine_key", lambda: {**real_key(), "torch": "9.9"})
    upgraded = FakeClock({"fp32": 9.0, "bf16": 1.0, "int8": 9.0})
    encoder = _encoder(tmp_path, upgraded)
    assert upgraded.calls and encoder.precision == "bf16" and not encoder.precision_choice.cached
    stored = json.loads(ChoiceCache(tmp_path).path("m").read_text())
    assert stored["key"]["torch"] == "9.9" and stored["choice"]["precision"] == "bf16"


@pytest.mark.parametrize("garbage", ["{not json", "[]", '{"version": 1, "key": 3}', ""])
def test_a_corrupt_cache_file_is_ignored_and_rewritten(tmp_path, all_candidates, garbage):
    path = ChoiceCache(tmp_path).path("m")
    path.parent.mkdir(parents=True)
    path.write_text(garbage)
    clock = FakeClock({"fp32": 2.0, "bf16": 1.0, "int8": 9.0})
    assert _encoder(tmp_path, clock).precision == "bf16" and clock.calls
    assert json.loads(path.read_text())["choice"]["precision"] == "bf16"


def test_a_valid_file_with_a_wrong_choice_shape_is_ignored(tmp_path) -> None:
    cache = ChoiceCache(tmp_path)
    key = {"k": 1}
    cache.store("m", key, Choice("bf16", "why", rates={"bf16": 1.0}))
    assert cache.load("m", key).precision == "bf16"
    data = json.loads(cache.path("m").read_text())
    data["choice"]["unexpected"] = 1
    cache.path("m").write_text(json.dumps(data))
    assert cache.load("m", key) is None
    assert ChoiceCache(None).load("m", key) is None  # no directory: nothing kept


def test_explicit_precisions_are_not_measured(tmp_path) -> None:
    clock = FakeClock({})
    model = create_model(load_config("tiny"))
    for name in ("fp32", "bf16", "int8"):
        encoder = Encoder(model, precision=name, device="cpu", cache_dir=tmp_path, time_run=clock)
        assert encoder.precision == name and encoder.precision_choice.reason == "asked for"
    assert clock.calls == [] and not (tmp_path / "precision").exists()


def test_device_only_precisions_are_refused_on_the_cpu(tmp_path) -> None:
    from encoders.errors import VitrieveError

    model = create_model(load_config("tiny"))
    with pytest.raises(VitrieveError, match="fp16 runs on CUDA"):
        Encoder(model, precision="fp16", device="cpu", cache_dir=tmp_path)
    with pytest.raises(VitrieveError, match="precision must be one of"):
        Encoder(model, precision="fp8", device="cpu", cache_dir=tmp_path)


def test_only_fp32_is_not_measured(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(candidates, "cpu_candidates", lambda device: ["fp32"])
    clock = FakeClock({})
    assert _encoder(tmp_path, clock).precision == "fp32" and clock.calls == []


def test_top_k_agreement_counts_shared_neighbours() -> None:
    rows = torch.nn.functional.normalize(torch.randn(40, 16, generator=torch.Generator()), dim=-1)
    assert candidates.top_k_agreement(rows, rows, images=32) == 1.0
    shuffled = rows[torch.randperm(40, generator=torch.Generator().manual_seed(1))]
    assert candidates.top_k_agreement(rows, shuffled, images=32) < 0.6


def test_training_autocast_is_the_faster_one_measured_on_the_step(tmp_path, monkeypatch):
    monkeypatch.setattr(precision, "bf16_native", lambda device: True)
    seen = []

    def step():
        seen.append(torch.is_autocast_enabled("cpu"))

    faster_bf16 = FakeClock({"fp32": 2.0, "bf16": 1.0})
    cpu = torch.device("cpu")
    got = measure_autocast(step, cpu, subject="t", cache_dir=tmp_path, time_run=faster_bf16)
    assert got == torch.bfloat16 and True in seen and False in seen
    count = len(seen)
    cached = measure_autocast(step, cpu, subject="t", cache_dir=tmp_path, time_run=faster_bf16)
    assert cached == torch.bfloat16 and len(seen) == count  # not measured again
    faster_fp32 = FakeClock({"fp32": 1.0, "bf16": 2.0})
    got = measure_autocast(step, cpu, subject="u", cache_dir=tmp_path, time_run=faster_fp32)
    assert got is None
    monkeypatch.setattr(precision, "bf16_native", lambda device: False)
    assert measure_autocast(step, cpu, subject="v", cache_dir=tmp_path) is None  # no bf16


@pytest.mark.parametrize(
    ("capability", "dtype", "auto"),
    [((9, 0), torch.bfloat16, "bf16"), ((8, 0), torch.bfloat16, "bf16"),
     ((7, 5), torch.float16, "fp16"), ((7, 0), torch.float16, "fp16"),
     ((6, 1), None, "fp32")],
)  # fmt: skip
def test_pre_ampere_gpus_never_get_emulated_bf16(monkeypatch, capability, dtype, auto) -> None:
    """The rule looks at the given device's compute capability (a T4 is 7.5, a V100 7.0),
    not at torch's current device or at what emulation allows."""
    import encoders.runtime.capability as capability_module

    asked = []

    def fake_capability(device):
        asked.append(device)
        return capability

    monkeypatch.setattr(capability_module, "cuda_capability", fake_capability)
    monkeypatch.setattr(precision, "cuda_capability", fake_capability)
    monkeypatch.setattr(torch.version, "hip", None)
    device = torch.device("cuda", 1)
    assert cuda_reduced_dtype(capability) == dtype
    assert bf16_native(device) == (dtype == torch.bfloat16)
    assert precision.cuda_precision(device) == auto
    assert asked and all(d == device for d in asked)


def test_int8_hardware_reads_the_cpu_flags() -> None:
    assert int8_hardware(frozenset({"avx2", "avx512_vnni"}))
    assert int8_hardware(frozenset({"amx_int8"}))
    assert not int8_hardware(frozenset({"avx2", "avx512f", "avx512_bf16"}))
