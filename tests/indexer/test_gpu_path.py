"""The indexer's GPU decode path end to end: on the CPU (the decision logic, the fallback,
every indexer promise, with nvJPEG's CPU twin standing in) and, `gpu`-marked, on CUDA."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from library_factory import photo
from PIL import Image
from test_pipeline import OPTIONS, assert_consistent, library_state

import indexer.pipeline.local as pipeline
from encoders.runtime.encoder import Encoder
from indexer.decode.gpu_decode import GpuJpegDecoder
from indexer.pipeline.local import index_library


@pytest.fixture()
def made(monkeypatch) -> list[GpuJpegDecoder]:
    """The GPU decoders the runs make, collected."""
    made: list[GpuJpegDecoder] = []
    real = pipeline._gpu_decoder

    def spy(device, settings):
        made.append(real(device, settings))
        return made[-1]

    monkeypatch.setattr(pipeline, "_gpu_decoder", spy)
    return made


@pytest.fixture()
def decoders(made, monkeypatch) -> list[GpuJpegDecoder]:
    """Route the runs through the GPU path on the CPU (torchvision's CPU JPEG decoder)."""
    monkeypatch.setattr(pipeline, "decodes_jpeg_on", lambda device, per_batch: True)
    return made


def _check_bad_library(bad_library, encoder: Encoder, options) -> dict[str, object]:
    report = index_library(bad_library.root, encoder, model_ref="tiny", options=options)
    library = bad_library.root / ".vitrieve"
    rows, vectors = library_state(library)
    assert {p for p, r in rows.items() if r.status == "indexed"} == bad_library.good
    failed = {p: r.error for p, r in rows.items() if r.status == "failed"}
    assert set(failed) == set(bad_library.bad) == {p for p, _ in report.failures}
    for path, reason in bad_library.bad.items():
        assert reason in failed[path]
    assert report.embedded == len(bad_library.good) == len(vectors)
    assert_consistent(library)
    rotated = rows["rotated.jpg"]
    assert (rotated.width, rotated.height, rotated.format) == (40, 80, "JPEG")
    assert rotated.taken_at is not None and rotated.taken_at.year == 2021
    thumb = Image.open(library / rotated.thumb)
    assert thumb.format == "WEBP" and thumb.size == (40, 80)  # upright, as displayed
    again = index_library(bad_library.root, encoder, model_ref="tiny", options=options)
    assert again.embedded == 0 and again.failures == [] and again.unchanged == report.found
    return {"rows": rows, "vectors": vectors, "report": report}


@pytest.mark.parametrize("workers", [0, 1])
def test_bad_library_through_the_gpu_path(bad_library, tiny_encoder, decoders, workers) -> None:
    state = _check_bad_library(bad_library, tiny_encoder, replace(OPTIONS, workers=workers))
    # plain, rotated and jpeg_without_suffix.dat are baseline JPEGs: decoded "on the device"
    assert sum(d.decoded_on_device for d in decoders[:1]) == 3 == state["report"].gpu_decoded
    from indexer.decode.images import decode_image

    rows, vectors = state["rows"], state["vectors"]
    for name in ("plain.jpg", "rotated.jpg"):
        image = decode_image(bad_library.root / name, target_size=tiny_encoder.image_size).image
        expected = tiny_encoder.encode_images([image])[0]
        assert float(vectors[rows[name].id] @ expected) > 0.99  # the CPU path's embedding


def test_files_nvjpeg_fails_on_are_decoded_by_the_cpu_decoder(
    bad_library, tiny_encoder, decoders, monkeypatch
) -> None:
    monkeypatch.setattr(GpuJpegDecoder, "decode_batch", lambda self, datas: [None] * len(datas))
    _check_bad_library(bad_library, tiny_encoder, OPTIONS)
    assert decoders[0].decoded_on_device == 0


def test_moves_and_edits_through_the_gpu_path(tmp_path: Path, tiny_encoder, decoders) -> None:
    _check_moves_and_edits(tmp_path, tiny_encoder, OPTIONS)
    assert sum(d.decoded_on_device for d in decoders) == 6


def _check_moves_and_edits(tmp_path: Path, encoder: Encoder, options) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for n in range(5):
        photo(seed=n).save(photos / f"{n}.jpg")
    index_library(photos, encoder, model_ref="tiny", options=options)
    ids = {r.path: r.id for r in library_state(photos / ".vitrieve")[0].values()}
    (photos / "0.jpg").rename(photos / "moved.jpg")
    photo(seed=99).save(photos / "1.jpg")
    report = index_library(photos, encoder, model_ref="tiny", options=options)
    assert (report.moved, report.changed, report.embedded) == (1, 1, 1)
    rows, vectors = library_state(photos / ".vitrieve")
    assert rows["moved.jpg"].id == ids["0.jpg"] and len(vectors) == 5
    assert_consistent(photos / ".vitrieve")


# --- on a CUDA device (make gpu-check) ------------------------------------------------------


@pytest.fixture()
def cuda_encoder(tiny_checkpoint: Path) -> Encoder:
    return Encoder.load(tiny_checkpoint, precision="fp32", device="cuda")


@pytest.mark.gpu
def test_bad_library_on_cuda(bad_library, cuda_encoder, made) -> None:
    _check_bad_library(bad_library, cuda_encoder, replace(OPTIONS, device="cuda", workers=2))
    assert made[0].device.type == "cuda" and made[0].decoded_on_device == 3


@pytest.mark.gpu
def test_moves_and_edits_on_cuda(tmp_path: Path, cuda_encoder, made) -> None:
    _check_moves_and_edits(tmp_path, cuda_encoder, replace(OPTIONS, device="cuda"))
    assert sum(d.decoded_on_device for d in made) == 6


@pytest.mark.gpu
def test_kill_and_resume_on_cuda(
    tmp_path: Path, tiny_checkpoint: Path, cuda_encoder, monkeypatch
) -> None:
    import test_resume

    # the CLI's default device is auto: the killed runs decode and encode on this CUDA device,
    # and so does the run that completes the library
    monkeypatch.setattr(test_resume, "OPTIONS", replace(test_resume.OPTIONS, device="cuda"))
    test_resume.test_kill_and_resume(tmp_path, tiny_checkpoint, cuda_encoder)


@pytest.mark.gpu
def test_nvjpeg_embeddings_match_the_cpu_decoders(tmp_path: Path, cuda_encoder, made) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for n in range(24):
        photo(640, 480, seed=n).save(photos / f"{n:02d}.jpg", quality=92)
    for device in ("cpu", "cuda"):
        options = replace(OPTIONS, device=device, batch_size=8)
        report = index_library(
            photos, cuda_encoder, model_ref="t", library=tmp_path / device, options=options
        )
        assert report.embedded == 24
    assert sum(d.decoded_on_device for d in made) == 24
    cpu_rows, cpu_vectors = library_state(tmp_path / "cpu")
    gpu_rows, gpu_vectors = library_state(tmp_path / "cuda")
    cosines = [float(cpu_vectors[cpu_rows[p].id] @ gpu_vectors[gpu_rows[p].id]) for p in cpu_rows]
    assert min(cosines) > 0.99, cosines


STRESS_FILES, STRESS_BATCH = 512, 16  # 32 batches, each encoded while the next is decoded
STRESS_SIZES = [(640, 480), (800, 600), (1024, 768), (480, 640), (1280, 720)]
STRESS_COSINE = 0.998  # nvJPEG vs libjpeg-turbo; different files stay below (checked)


def _distinct_jpeg(seed: int, width: int, height: int) -> bytes:
    """A JPEG unlike the others (random coarse colours, upscaled, with noise): a file whose
    pixels or embedding were overwritten by another's cannot pass for itself."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8))
    base = np.asarray(coarse.resize((width, height), Image.Resampling.BICUBIC), np.int16)
    pixels = np.clip(base + rng.integers(-12, 13, (height, width, 3)), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=90)
    return out.getvalue()


@pytest.mark.gpu
def test_nvjpeg_beside_a_concurrent_encoder_corrupts_nothing(tmp_path: Path, made) -> None:
    """The race of pytorch/vision#9606: the writer thread encodes batch n (ViT-B-32, fp32,
    freeing activations whose kernels are still queued) while this thread decodes batch n+1
    with nvJPEG. Every embedding must match the one from a CPU decode of the same file."""
    from torchvision.io import decode_jpeg

    from encoders.model.clip import create_model
    from encoders.model.config import load_config
    from indexer.decode.gpu_decode import prepare
    from indexer.decode.pixels import split_transform

    torch.manual_seed(0)
    encoder = Encoder(create_model(load_config("ViT-B-32")), precision="fp32", device="cuda")
    photos = tmp_path / "photos"
    photos.mkdir()
    for n in range(STRESS_FILES):
        width, height = STRESS_SIZES[n % len(STRESS_SIZES)]
        (photos / f"{n:04d}.jpg").write_bytes(_distinct_jpeg(n, width, height))
    options = replace(OPTIONS, device="cuda", batch_size=STRESS_BATCH, workers=2)
    library = tmp_path / "library"
    report = index_library(photos, encoder, model_ref="t", library=library, options=options)
    assert report.embedded == STRESS_FILES and not report.failures
    assert sum(d.decoded_on_device for d in made) == STRESS_FILES
    rows, vectors = library_state(library)
    _, normalise = split_transform(encoder.transform)
    expected = {}
    for path in sorted(rows):  # one file at a time, nothing else running: the reference
        data = torch.frombuffer(bytearray((photos / path).read_bytes()), dtype=torch.uint8)
        pixels, _ = prepare(decode_jpeg(data), 1, encoder.image_size, 64)
        expected[path] = encoder.encode_image_tensors(normalise(pixels[None].cuda()))[0]
    reference = np.stack(list(expected.values()))
    others = reference @ reference.T - 2 * np.eye(len(reference))
    assert others.max() < STRESS_COSINE  # a swapped or overwritten file would fail
    cosines = {path: float(vectors[rows[path].id] @ expected[path]) for path in rows}
    worst = sorted(cosines.items(), key=lambda item: item[1])[:5]
    assert worst[0][1] >= STRESS_COSINE, worst


ROUND_TRIPS = [  # test_pipeline's round trips, and whether their photos include JPEGs
    ("test_incremental_add_modify_delete_move_touch", True),
    ("test_new_model_builds_beside_and_switches", False),
    ("test_repair_on_open", True),
]


def _round_trip(name: str, tmp_path: Path, encoder: Encoder, device: str, monkeypatch) -> None:
    import test_pipeline

    monkeypatch.setattr(test_pipeline, "OPTIONS", replace(test_pipeline.OPTIONS, device=device))
    getattr(test_pipeline, name)(tmp_path, encoder)


@pytest.mark.parametrize(("name", "jpegs"), ROUND_TRIPS)
def test_pipeline_round_trips_through_the_gpu_path(
    name: str, jpegs: bool, tmp_path: Path, tiny_encoder, decoders, monkeypatch
) -> None:
    _round_trip(name, tmp_path, tiny_encoder, "cpu", monkeypatch)
    assert decoders and (sum(d.decoded_on_device for d in decoders) > 0) == jpegs


@pytest.mark.gpu
@pytest.mark.parametrize(("name", "jpegs"), ROUND_TRIPS)
def test_pipeline_round_trips_on_cuda(
    name: str, jpegs: bool, tmp_path: Path, cuda_encoder, made, monkeypatch
) -> None:
    _round_trip(name, tmp_path, cuda_encoder, "cuda", monkeypatch)
    assert made and all(d.device.type == "cuda" for d in made)
    assert (sum(d.decoded_on_device for d in made) > 0) == jpegs


def test_nvjpeg_only_on_cuda_and_for_uint8_preprocessing(tiny_encoder) -> None:
    from indexer.decode.pixels import as_is, split_transform

    _, per_batch = split_transform(tiny_encoder.transform)
    cuda = torch.device("cuda", 0)  # a device object only: nothing runs on it
    assert pipeline.decodes_jpeg_on(cuda, per_batch)
    assert not pipeline.decodes_jpeg_on(torch.device("cpu"), per_batch)
    assert not pipeline.decodes_jpeg_on(cuda, as_is)  # a transform the GPU path cannot copy
