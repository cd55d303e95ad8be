"""The demo photo folder: synthetic scenes dressed up like a small personal photo library.

Scenes come from the synthetic generator (coloured shapes on plain, gradient and textured
backgrounds), saved the way a camera roll looks: albums in dated folders, mostly JPEG with some
PNG and WebP, EXIF capture dates, a few near-duplicate edits and one broken file — so every page
of the UI (dates, formats, duplicates, failures) has something real to show.
"""

from __future__ import annotations

import io
import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from PIL import Image

from encoders.atomic import atomic_write_bytes, atomic_write_text
from encoders.data.drawing import BACKGROUND_KINDS
from encoders.data.synthetic import POSITIONS, SIZES, Scene, SceneObject, render_scene, scene_for
from encoders.errors import VitrieveError
from encoders.runtime.device import DEFAULT_DEVICE
from encoders.training.layout import RunLayout

log = logging.getLogger(__name__)

ALBUMS: tuple[tuple[str, datetime], ...] = (
    ("2023/spring walk", datetime(2023, 4, 2)),
    ("2023/autumn", datetime(2023, 10, 7)),
    ("2024/summer holiday", datetime(2024, 7, 14)),
    ("2024/workshop", datetime(2024, 11, 20)),
    ("2025/new year", datetime(2025, 1, 1)),
)
FORMATS = (("JPEG", ".jpg", 0.7), ("PNG", ".png", 0.15), ("WEBP", ".webp", 0.15))
EDITS_ALBUM = "2025/edits"
DUPLICATES = 4  # photos copied (resized, re-encoded) into the edits album
DONE_MARKER = ".demo-photos-complete"
# Every other demo photo shows one of these (the Classify page's example labels), so that a
# first query like "a red circle" has a screenful of right answers; the rest are varied scenes.
FEATURED = (("red", "circle"), ("blue", "square"), ("green", "triangle"), ("yellow", "star"))
_EXIF_IFD, _DATETIME_ORIGINAL = 0x8769, 0x9003
PHOTOS_VERSION = "v2"  # in the done marker: a changed generator writes the photos again
EDIT_SCALE = 0.75  # an "edit" is the photo resized to three quarters and re-encoded
BROKEN_PARTS = 3  # the broken file is the first third of a JPEG (a failed copy)
# separate random streams (numpy seed sequences) for the scenes and for names and dates
_SCENE_STREAM, _LIBRARY_STREAM = 77, 4242
TRAIN_TEST_IMAGES = 500  # held-out images rendered beside the demo's training set
TRAIN_SIZE_PX = 64  # the training images' size: `tiny`'s input


def default_cache(cache_home: str | None = None) -> Path:
    """Where the demo's photos, model and library live: ``$XDG_CACHE_HOME/vitrieve/demo``.

    The caller passes ``cache_home`` (the CLI and the UI read the environment; we don't)."""
    return Path(cache_home or Path.home() / ".cache") / "vitrieve" / "demo"


def _exif(taken: datetime) -> Image.Exif:
    exif = Image.Exif()
    exif.get_ifd(_EXIF_IFD)[_DATETIME_ORIGINAL] = taken.strftime("%Y:%m:%d %H:%M:%S")
    return exif


def _save(image: Image.Image, path: Path, fmt: str, taken: datetime, quality: int = 90) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    options = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
    image.save(path, format=fmt, exif=_exif(taken), **options)


def _photo(index: int, rng: np.random.Generator) -> tuple[Path, str]:
    """Where photo ``index`` goes (album/name) and its format."""
    album, _ = ALBUMS[index % len(ALBUMS)]
    names = [f[0] for f in FORMATS]
    fmt = names[int(rng.choice(len(FORMATS), p=[f[2] for f in FORMATS]))]
    suffix = dict((f[0], f[1]) for f in FORMATS)[fmt]
    return Path(album) / f"IMG_{index + 1:04d}{suffix}", fmt


def demo_scene(index: int, size_px: int, seed: int = 0) -> Scene:
    """What demo photo ``index`` shows (a pure function: tests use it to know the truth)."""
    if index % 2:
        return scene_for(seed, "test", index, size_px)
    colour, shape = FEATURED[(index // 2) % len(FEATURED)]
    rng = np.random.default_rng([seed, _SCENE_STREAM, index])
    obj = SceneObject(colour, shape, str(rng.choice(list(SIZES))), str(rng.choice(list(POSITIONS))))
    return render_scene([obj], size_px, seed=index, background=str(rng.choice(BACKGROUND_KINDS)))


def write_demo_photos(out: Path, count: int = 300, size_px: int = 192, seed: int = 0) -> int:
    """Write ``count`` demo photos (plus edits and a broken file) under ``out``; idempotent.

    Returns the number of image files written (0 when a complete set is already there).
    """
    if count < 1:
        raise VitrieveError("the demo needs at least one photo")
    marker = out / DONE_MARKER
    done = f"{count} {size_px} {seed} {PHOTOS_VERSION}"
    if marker.is_file() and marker.read_text().strip() == done:
        return 0
    rng = np.random.default_rng([seed, _LIBRARY_STREAM])
    written = []
    for index in range(count):
        relative, fmt = _photo(index, rng)
        start = ALBUMS[index % len(ALBUMS)][1]
        taken = start + timedelta(days=int(rng.integers(0, 40)), minutes=int(rng.integers(0, 720)))
        scene = demo_scene(index, size_px, seed)
        _save(scene.image, out / relative, fmt, taken)
        written.append((relative, taken))
    _write_edits(out, written[:DUPLICATES], size_px)
    _write_broken(out / EDITS_ALBUM / "IMG_BROKEN.jpg", out / written[0][0])
    atomic_write_text(marker, done + "\n")
    log.info("wrote %d demo photos to %s", count + DUPLICATES + 1, out)
    return count + DUPLICATES + 1


def _write_edits(out: Path, originals: list[tuple[Path, datetime]], size_px: int) -> None:
    """Near-duplicates: the same picture resized and re-encoded, as an "edit" would be."""
    for relative, taken in originals:
        with Image.open(out / relative) as image:
            side = int(size_px * EDIT_SCALE)
            edited = image.convert("RGB").resize((side, side))
        name = f"{relative.stem}_edit.jpg"
        _save(edited, out / EDITS_ALBUM / name, "JPEG", taken + timedelta(hours=1), quality=70)


def _write_broken(path: Path, source: Path) -> None:
    """A truncated JPEG: what a failed copy leaves behind; the indexer lists it as failed."""
    buffer = io.BytesIO()
    with Image.open(source) as image:
        image.convert("RGB").save(buffer, format="JPEG")
    data = buffer.getvalue()
    atomic_write_bytes(path, data[: len(data) // BROKEN_PARTS], fsync=False)  # remade if lost


# --- the whole demo: photos, a model trained here (cached), a library ---------------------------

MODEL_MARKER = "demo-model.json"


@dataclass(frozen=True)
class DemoSettings:
    """What the demo builds; a change of any field builds that part again."""

    cache: Path
    photos: int = 300
    photo_size: int = 192
    train_images: int = 6000
    train_minutes: float = 6.0
    model: str = "tiny"
    seed: int = 0
    use_checkpoint: Path | None = None  # a checkpoint to use instead of training one
    # where training and indexing run; not in the cache key (checkpoints are device-free)
    device: str = DEFAULT_DEVICE

    @property
    def photo_dir(self) -> Path:
        return self.cache / "photos"

    @property
    def run_dir(self) -> Path:
        return self.cache / "model"

    @property
    def checkpoint(self) -> Path:
        return RunLayout(self.run_dir).checkpoint


def demo_model(settings: DemoSettings, progress: Callable[[str], None] = log.info) -> Path:
    """The demo's checkpoint: trained once on synthetic captions, then reused from the cache."""
    if settings.use_checkpoint is not None:
        return settings.use_checkpoint.expanduser().resolve()
    marker = settings.run_dir / MODEL_MARKER
    wanted = {"model": settings.model, "text": "minilm", "images": settings.train_images,
              "minutes": settings.train_minutes, "seed": settings.seed}  # fmt: skip
    if marker.is_file() and json.loads(marker.read_text()) == wanted:
        if _loads(settings.checkpoint):
            return settings.checkpoint
        progress("the cached demo model no longer loads with this version: training it again")
    from encoders.data.datasets import write_synthetic
    from encoders.training.main import TrainRequest, train_from_files
    from encoders.training.steps import TrainOptions

    data = settings.cache / "train-data"
    if not (data / "train.tsv").is_file():
        progress(f"rendering {settings.train_images} captioned training images")
        images, seed = settings.train_images, settings.seed
        write_synthetic(data, images, TRAIN_TEST_IMAGES, size_px=TRAIN_SIZE_PX, seed=seed)
    progress(f"training a {settings.model} model for {settings.train_minutes:g} minutes")
    shutil.rmtree(settings.run_dir, ignore_errors=True)  # a half-finished run is not resumed
    request = TrainRequest(
        data=data / "train.tsv", out=settings.run_dir, model=settings.model,
        val=data / "test.tsv", text_tower="minilm",  # the project's default: pretrained, locked
        options=TrainOptions(
            minutes=settings.train_minutes, seed=settings.seed, device=settings.device
        ),
    )  # fmt: skip
    train_from_files(request)
    atomic_write_text(marker, json.dumps(wanted))
    return settings.checkpoint


def _loads(checkpoint: Path) -> bool:
    from encoders.weights.checkpoint import load_checkpoint

    try:
        load_checkpoint(checkpoint)
    except VitrieveError:
        return False
    return True


def build_demo(settings: DemoSettings, progress: Callable[[str], None] = log.info) -> Path:
    """Photos, model and library of the demo (each reused when already there); the library."""
    from encoders.runtime.encoder import Encoder
    from indexer.pipeline.local import IndexOptions, index_library

    written = write_demo_photos(settings.photo_dir, settings.photos, settings.photo_size,
                                settings.seed)  # fmt: skip
    progress(f"wrote {written} demo photos" if written else "demo photos already there")
    checkpoint = demo_model(settings, progress)
    progress("indexing the demo photos")
    report = index_library(
        settings.photo_dir, Encoder.load(checkpoint, device=settings.device),
        model_ref=str(checkpoint), options=IndexOptions(workers=0, device=settings.device),
    )  # fmt: skip
    progress(f"library ready: {report.vectors} photos searchable ({report.embedded} new)")
    return Path(report.library)
