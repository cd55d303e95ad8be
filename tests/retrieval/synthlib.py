"""Build small photo libraries from the synthetic generator, with known contents, for tests."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from PIL import Image

from encoders.data.synthetic import SceneObject, render_scene

EXIF_IFD, DATETIME_ORIGINAL = 0x8769, 0x9003
COLOURS = ("red", "blue", "green", "yellow")
SHAPES = ("circle", "square", "triangle", "star")
POSITIONS = ("left", "right", "centre", "top", "bottom")
BACKGROUNDS = ("plain", "gradient", "textured")


@dataclass(frozen=True)
class Photo:
    path: str  # relative to the photo root
    colour: str
    shape: str
    taken: datetime
    bbox: tuple[int, int, int, int]


def _save(image: Image.Image, path: Path, fmt: str, taken: datetime, quality: int = 92) -> None:
    exif = Image.Exif()
    exif.get_ifd(EXIF_IFD)[DATETIME_ORIGINAL] = taken.strftime("%Y:%m:%d %H:%M:%S")
    path.parent.mkdir(parents=True, exist_ok=True)
    options = {"quality": quality} if fmt == "JPEG" else {}
    image.save(path, format=fmt, exif=exif, **options)


def write_photos(root: Path, per_class: int = 3, size: int = 96) -> list[Photo]:
    """One folder per colour, ``per_class`` photos of each (colour, shape); JPEG and PNG;
    taken dates spread over 2023 (colour folders) so that date filters split them."""
    photos = []
    start = datetime(2023, 1, 1)
    n = 0
    for c, colour in enumerate(COLOURS):
        for shape in SHAPES:
            for k in range(per_class):
                obj = SceneObject(colour, shape, "large", POSITIONS[(n + k) % len(POSITIONS)])
                scene = render_scene([obj], size, seed=n, background=BACKGROUNDS[n % 3])
                fmt, suffix = ("PNG", ".png") if n % 4 == 3 else ("JPEG", ".jpg")
                relative = f"{colour}/{shape}_{k}{suffix}"
                taken = start + timedelta(days=90 * c + n % 30)
                _save(scene.image, root / relative, fmt, taken)
                photos.append(Photo(relative, colour, shape, taken, scene.boxes[0]))
                n += 1
    return photos


def plant_duplicates(root: Path, photos: list[Photo], count: int = 2) -> list[tuple[str, str]]:
    """Copies of the first ``count`` photos, resized and re-encoded, under ``copies/``."""
    pairs = []
    for photo in photos[:count]:
        with Image.open(root / photo.path) as image:
            copy = image.convert("RGB").resize((image.width * 3 // 4, image.height * 3 // 4))
        buffer = io.BytesIO()
        copy.save(buffer, format="JPEG", quality=75)
        relative = f"copies/{Path(photo.path).stem}_copy.jpg"
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(buffer.getvalue())
        pairs.append((photo.path, relative))
    return pairs
