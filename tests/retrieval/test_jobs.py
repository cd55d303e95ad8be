"""Background indexing from the UI process: the job's encoder is not held to the serving
process's one torch thread."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from encoders.model.clip import create_model
from encoders.model.config import load_config
from encoders.runtime.encoder import Encoder
from encoders.weights.checkpoint import save_checkpoint
from indexer.pipeline import local as pipeline
from retrieval.service import jobs


@pytest.mark.parametrize("requested", [None, 1])
def test_indexing_job_embeds_with_the_machines_cores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, requested: int | None
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        pixels = rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(photos / f"p{i}.png")
    save_checkpoint(create_model(load_config("tiny")), tmp_path / "ckpt")
    seen: list[int] = []  # torch threads at each batch the indexing run embeds
    indexing = []
    encode, index_library = Encoder.encode_image_tensors, pipeline.index_library
    monkeypatch.setattr(
        Encoder,
        "encode_image_tensors",
        lambda self, batch: (
            (indexing and seen.append(torch.get_num_threads())) or encode(self, batch)
        ),
    )  # fmt: skip (Encoder.load's own bf16 check encodes too: not counted)
    monkeypatch.setattr(
        pipeline, "index_library", lambda *a, **kw: indexing.append(kw) or index_library(*a, **kw)
    )
    monkeypatch.setattr(os, "cpu_count", lambda: 3)  # not this machine's count: it is read
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # what the UI's configure_serving() leaves
    try:
        library, _ = jobs.start_indexing(photos, str(tmp_path / "ckpt"), tmp_path / "lib",
                                         encoder_threads=requested)  # fmt: skip
        status = jobs.wait(library, timeout=300)
        assert status is not None and status.state == "done", status
        assert seen and set(seen) == {3 if requested is None else requested}
        assert torch.get_num_threads() == 1  # the serving count is back after the job
        # the CLI's options: decoder processes with a per-file time-out (a hanging file fails
        # alone; the job used to decode in its own thread, workers=0 — issue 17 point 2)
        options, defaults = indexing[0]["options"], pipeline.IndexOptions()
        assert (options.workers, options.timeout) == (defaults.workers, defaults.timeout)
    finally:
        torch.set_num_threads(before)
