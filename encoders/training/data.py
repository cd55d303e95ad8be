"""Captioned images for training and evaluation: open_clip CSV/TSV files or caption folders.

A bad row (missing column value, unreadable line, missing image file) is counted and skipped
with one warning, never fatal: a 100k-row crawl with three broken lines should still train.
``CaptionDataset`` serves (image tensor, caption) pairs; with ``flip=True`` it mirrors images
and swaps "left"/"right" in the caption (``captions.swap_left_right``) so augmentation never
contradicts the text. With
``preload=True`` it decodes every image once into one uint8 tensor, so small-image training is
not bound by PNG decoding — the trainer can then augment whole batches (``augment_batch``).
"""

from __future__ import annotations

import csv
import logging
import math
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError
from torch.utils.data import Dataset

from encoders.errors import VitrieveError
from encoders.model.transforms import CLIP_MEAN, CLIP_STD
from encoders.training.captions import swap_left_right

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
# open_clip's CSV columns: the defaults of the reader, ``vitrieve train`` and ``vitrieve eval``
IMAGE_COL, CAPTION_COL, LABEL_COL = "filepath", "title", "label"


@dataclass(frozen=True)
class CaptionedItem:
    """One image with its caption; ``label`` when a label column was asked for.

    ``extra`` keeps the row's other columns (e.g. ``held_out``, ``bbox``) as strings.
    """

    path: Path
    caption: str
    label: str | None = None
    extra: dict[str, str] = field(default_factory=dict, compare=False, hash=False)


def read_captioned_counted(
    path: Path,
    sep: str = "\t",
    image_col: str = IMAGE_COL,
    caption_col: str = CAPTION_COL,
    label_col: str | None = None,
) -> tuple[list[CaptionedItem], Counter[str]]:
    """Like ``read_captioned``, also returning why rows were skipped (reason -> count)."""
    path = Path(path)
    if path.is_dir():
        return _read_folder(path)
    if not path.is_file():
        raise VitrieveError(f"captioned data not found: {path}")
    skipped: Counter[str] = Counter()
    items: list[CaptionedItem] = []
    with path.open(newline="", encoding="utf-8", errors="replace") as handle:
        reader = csv.reader(handle, delimiter=sep)
        header = next(reader, None) or []
        columns = {name.strip(): i for i, name in enumerate(header)}
        for needed in (image_col, caption_col, label_col):
            if needed is not None and needed not in columns:
                raise VitrieveError(
                    f"{path}: no column {needed!r} (columns: {', '.join(columns) or 'none'}); "
                    "choose the separator and column names that match the file"
                )
        for row in reader:
            item = _parse_row(row, columns, path.parent, image_col, caption_col, label_col)
            if isinstance(item, str):
                skipped[item] += 1
            else:
                items.append(item)
    return items, skipped


def _parse_row(
    row: list[str],
    columns: dict[str, int],
    root: Path,
    image_col: str,
    caption_col: str,
    label_col: str | None,
) -> CaptionedItem | str:
    """A row as an item, or the reason it is skipped."""
    if not row or all(not cell.strip() for cell in row):
        return "empty line"
    if len(row) != len(columns):
        return "wrong number of fields"
    values = {name: row[i].strip() for name, i in columns.items()}
    if not values[image_col] or not values[caption_col]:
        return "empty image or caption"
    image = Path(values[image_col])
    image = image if image.is_absolute() else root / image
    if not image.is_file():
        return "missing image file"
    label = values[label_col] if label_col else None
    extra = {k: v for k, v in values.items() if k not in (image_col, caption_col, label_col)}
    return CaptionedItem(image, values[caption_col], label or None, extra)


def _read_folder(root: Path) -> tuple[list[CaptionedItem], Counter[str]]:
    """Images with a same-named ``.txt`` caption next to them (searched recursively)."""
    skipped: Counter[str] = Counter()
    items = []
    for image in sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
        caption_file = image.with_suffix(".txt")
        if not caption_file.is_file():
            skipped["no caption file"] += 1
            continue
        caption = " ".join(caption_file.read_text(encoding="utf-8", errors="replace").split())
        if not caption:
            skipped["empty image or caption"] += 1
            continue
        items.append(CaptionedItem(image, caption))
    return items, skipped


def read_captioned(
    path: Path,
    sep: str = "\t",
    image_col: str = IMAGE_COL,
    caption_col: str = CAPTION_COL,
    label_col: str | None = None,
) -> list[CaptionedItem]:
    """Read a CSV/TSV (paths relative to its folder) or a folder of images + ``.txt`` captions.

    Bad rows are skipped with one warning giving counts per reason; a missing file or
    column is a ``VitrieveError``.
    """
    items, skipped = read_captioned_counted(path, sep, image_col, caption_col, label_col)
    if skipped:
        reasons = ", ".join(f"{n} {why}" for why, n in skipped.most_common())
        log.warning("%s: skipped %d bad rows (%s)", path, sum(skipped.values()), reasons)
    if not items:
        raise VitrieveError(f"{path}: no usable captioned images")
    return items


def open_rgb(path: Path) -> Image.Image:
    """Decode an image fully as RGB (raises OSError / UnidentifiedImageError when unreadable)."""
    with Image.open(path) as image:
        return image.convert("RGB")


def decode_fit(path: Path, image_size: int) -> np.ndarray | None:
    """(S, S, 3) uint8: short side resized to S, centre-cropped; None when unreadable."""
    try:
        image = open_rgb(path)
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        log.warning("skipping unreadable image %s: %s", path, exc)
        return None
    if image.size != (image_size, image_size):
        image = ImageOps.fit(image, (image_size, image_size), Image.Resampling.BICUBIC)
    return np.array(image, dtype=np.uint8)  # a writable copy for torch.from_numpy


def preload_images(
    paths: Sequence[Path], image_size: int, workers: int = 2
) -> tuple[torch.Tensor, list[int]]:
    """Decode all images once: a uint8 (N, 3, S, S) tensor and the indices that decoded.

    64 px data costs 12 KB an image (20k images: 245 MB); decoding threads overlap zlib work.
    """
    images = torch.empty((len(paths), 3, image_size, image_size), dtype=torch.uint8)
    kept: list[int] = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        decoded = pool.map(lambda p: decode_fit(p, image_size), paths, chunksize=256)
        for index, pixels in enumerate(decoded):
            if pixels is not None:
                images[len(kept)] = torch.from_numpy(pixels).permute(2, 0, 1)  # (3, S, S)
                kept.append(index)
    return images[: len(kept)].clone() if len(kept) < len(paths) else images, kept


class CaptionDataset(Dataset):
    """(image tensor, caption) pairs for training; unreadable images are skipped, not fatal.

    ``flip=True`` mirrors an image with p=0.5 and swaps "left"/"right" in its caption.
    ``preload=True`` decodes everything once at ``image_size`` into ``self.images`` (uint8,
    N×3×S×S, aligned with ``self.captions``): ``__getitem__`` still applies ``transform``, and
    a trainer may instead index ``images``/``captions`` by batch and call ``augment_batch``.
    ``skipped`` counts images found unreadable (per process when used in DataLoader workers).
    """

    def __init__(
        self,
        items: Sequence[CaptionedItem],
        transform: Callable[[Image.Image], torch.Tensor],
        flip: bool = False,
        preload: bool = False,
        image_size: int | None = None,
        workers: int = 2,
    ) -> None:
        self.items = list(items)
        self.transform = transform
        self.flip = flip
        self.skipped = 0
        self.images: torch.Tensor | None = None
        if preload:
            if image_size is None:
                raise VitrieveError("preload needs the image size to decode at")
            self.images, kept = preload_images([i.path for i in self.items], image_size, workers)
            self.skipped = len(self.items) - len(kept)
            self.items = [self.items[i] for i in kept]
        if not self.items:
            raise VitrieveError("no readable captioned images")
        self.captions = [item.caption for item in self.items]

    def __len__(self) -> int:
        return len(self.items)

    def _image(self, index: int) -> Image.Image:
        if self.images is not None:
            return Image.fromarray(self.images[index].permute(1, 2, 0).numpy(), "RGB")
        return open_rgb(self.items[index].path)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, str]:
        for attempt in range(len(self)):
            current = (index + attempt) % len(self)
            try:
                image = self._image(current)
            except (OSError, UnidentifiedImageError, ValueError) as exc:
                self.skipped += 1
                log.warning("skipping unreadable image %s: %s", self.items[current].path, exc)
                continue
            caption = self.captions[current]
            if self.flip and torch.rand(()) < 0.5:
                image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
                caption = swap_left_right(caption)
            return self.transform(image), caption
        raise VitrieveError("none of the images in the data set can be read")


def augment_batch(
    images: torch.Tensor,
    captions: Sequence[str],
    min_scale: float = 0.6,
    flip: bool = True,
    out_size: int | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, list[str]]:
    """Random resized crop (+ caption-aware flip) of a whole uint8 batch in one grid_sample.

    Same recipe as ``train_transform`` (area ``min_scale``..1, aspect 0.8..1.25), but as one
    batched affine resampling instead of B PIL calls. Returns normalised float images and the
    captions, with "left"/"right" swapped where an image was mirrored.
    """
    b, _, h, _ = images.shape
    size = out_size or h
    area = torch.empty(b).uniform_(min_scale, 1.0, generator=generator)
    log_ratio = torch.empty(b).uniform_(math.log(0.8), math.log(1.25), generator=generator)
    crop_w = (area * log_ratio.exp()).sqrt().clamp(max=1.0)  # fractions of the image side
    crop_h = (area / log_ratio.exp()).sqrt().clamp(max=1.0)
    shift_x = (torch.rand(b, generator=generator) * 2 - 1) * (1 - crop_w)
    shift_y = (torch.rand(b, generator=generator) * 2 - 1) * (1 - crop_h)
    mirrored = (torch.rand(b, generator=generator) < 0.5) & flip
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = torch.where(mirrored, -crop_w, crop_w)  # negative x scale mirrors
    theta[:, 0, 2] = shift_x
    theta[:, 1, 1] = crop_h
    theta[:, 1, 2] = shift_y
    grid = F.affine_grid(theta.to(images.device), [b, 3, size, size], align_corners=False)
    pixels = F.grid_sample(
        images.float(), grid, mode="bilinear", padding_mode="border", align_corners=False
    )
    out_captions = [
        swap_left_right(c) if m else c for c, m in zip(captions, mirrored.tolist(), strict=True)
    ]
    return normalize_batch(pixels), out_captions


def greyscale(images: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, S, S) with ``rows`` replaced by their luminance (ITU-R BT.601 weights).

    A ``where`` over the batch rather than a masked assignment: on a GPU, selecting rows by a
    mask would wait for the device once per step.
    """
    if not rows.any():
        return images
    rows = rows.to(images.device, non_blocking=True).view(-1, 1, 1, 1)
    weights = torch.tensor([0.299, 0.587, 0.114], device=images.device).view(1, 3, 1, 1)
    luma = (images.float() * weights).sum(dim=1, keepdim=True).round().to(images.dtype)
    return torch.where(rows, luma.expand_as(images), images)


def normalize_batch(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 or 0..255 float images (B, 3, S, S) → CLIP-normalised float32."""
    mean = torch.tensor(CLIP_MEAN, device=pixels.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=pixels.device).view(1, 3, 1, 1)
    return (pixels.float() / 255.0 - mean) / std
