"""nvJPEG on the indexer's CUDA device: batches of JPEG bytes → model inputs and thumbnails.

Workers read, hash and plan each file (``jpeg_plan``); the ones planned for the GPU are read
again here (by threads, from the page cache, only if unchanged) and decoded a batch at a time with
``torchvision.io.decode_jpeg(list_of_tensors, device="cuda")``, applies the EXIF orientation,
and from the one decoded image makes both the model input (short side resized bicubically with
antialiasing, centre-cropped: the CPU path's ``Resize`` + ``CenterCrop``, as uint8) and the
thumbnail (long side ``thumb_size``, WebP-encoded by threads on the CPU). A batch nvJPEG
rejects is retried file by file; a file it still cannot decode goes to ``fallback`` — the CPU
decoder, which decodes it or records why not — so no file is lost to the GPU path.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import torch
from PIL import Image
from torchvision.io import ImageReadMode, decode_jpeg
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from indexer.decode.decoded import Decoded
from indexer.decode.images import make_thumbnail
from indexer.decode.jpeg_plan import JpegJob, orient, plan_batches, read_unchanged

log = logging.getLogger(__name__)

DECODE_BATCH = 64  # files per nvJPEG call
MAX_BATCH_PIXELS = 400_000_000  # decoded pixels per call: 1.2 GB of RGB on the device
THUMB_THREADS = 4  # WebP encoding of thumbnails (Pillow releases the GIL while encoding)

JpegDecoder = Callable[..., list[torch.Tensor]]  # decode_jpeg's signature, for tests


class GpuJpegDecoder:
    """Completes ``Decoded`` items that carry a JPEG job: pixels on ``device``, thumbnails."""

    def __init__(
        self,
        device: torch.device,
        image_size: int,
        thumb_size: int,
        fallback: Callable[[Decoded], Decoded],
        decode: JpegDecoder = decode_jpeg,
    ) -> None:
        self.device, self.image_size, self.thumb_size = device, image_size, thumb_size
        self.fallback, self.decode = fallback, decode
        self.decoded_on_device = 0  # files nvJPEG decoded; the rest went to ``fallback``
        self._threads = ThreadPoolExecutor(THUMB_THREADS, thread_name_prefix="thumbnail")

    def close(self) -> None:
        self._threads.shutdown(wait=True)

    def complete(self, items: Sequence[Decoded]) -> list[Decoded]:
        """``items`` with every JPEG job decoded (pixels: a uint8 (3, S, S) device tensor),
        or decoded by ``fallback`` (pixels on the host, or an error); the others unchanged."""
        out = list(items)
        todo = [i for i, item in enumerate(out) if item.jpeg is not None]
        counts = [_pixel_count(out[i].jpeg) for i in todo]
        for batch in plan_batches(counts, DECODE_BATCH, MAX_BATCH_PIXELS):
            indices = [todo[b] for b in batch]
            datas = list(self._threads.map(lambda i: read_unchanged(out[i].jpeg), indices))
            images = iter(self.decode_batch([data for data in datas if data is not None]))
            thumbs = []
            for index, data in zip(indices, datas, strict=True):
                image = next(images) if data is not None else None
                ready = self._prepare(out[index], image) if image is not None else None
                if ready is None:
                    out[index] = self.fallback(out[index])
                else:
                    out[index], thumb = ready
                    thumbs.append((index, thumb))
            self._encode_thumbnails(out, thumbs)
        return out

    def decode_batch(self, datas: list[bytes]) -> list[torch.Tensor | None]:
        """Decoded (C, H, W) uint8 device tensors; None where nvJPEG failed on that file."""
        tensors = [torch.frombuffer(bytearray(data), dtype=torch.uint8) for data in datas]
        if not tensors:
            return []
        try:
            return list(self._call(tensors))
        except Exception as exc:  # one bad file fails the whole call: find it
            log.info("nvJPEG batch of %d failed (%s): decoding one by one", len(tensors), exc)
        images: list[torch.Tensor | None] = []
        for tensor in tensors:
            try:
                images.append(self._call([tensor])[0])
            except Exception as exc:
                log.info("nvJPEG cannot decode a file (%s): CPU decoder", exc)
                images.append(None)
        return images

    def _call(self, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
        with warnings.catch_warnings():  # torchvision ≥ 0.29 flags its decoders as deprecated
            warnings.simplefilter("ignore")
            return self.decode(tensors, mode=ImageReadMode.RGB, device=self.device)

    def _prepare(self, item: Decoded, image: torch.Tensor) -> tuple[Decoded, torch.Tensor] | None:
        """(the item with its model input, its thumbnail's pixels), or None on a device error."""
        try:
            pixels, thumb = prepare(image, item.jpeg.orientation, self.image_size, self.thumb_size)
        except Exception as exc:  # out of memory on a huge image, ...: the CPU decoder
            log.info("GPU resize failed (%s): CPU decoder", exc)
            return None
        self.decoded_on_device += 1
        return replace(item, pixels=pixels, jpeg=None), thumb

    def _encode_thumbnails(
        self, out: list[Decoded], thumbs: list[tuple[int, torch.Tensor]]
    ) -> None:
        """WebP thumbnails from the batch's thumbnail pixels: copied to the host once the
        batch's device work is queued (one wait, not one per image), encoded by threads."""
        arrays = [pixels.cpu().numpy() for _, pixels in thumbs]
        encoded = self._threads.map(
            lambda pixels: make_thumbnail(Image.fromarray(pixels), self.thumb_size), arrays
        )
        for (index, _), webp in zip(thumbs, encoded, strict=True):
            out[index].thumb = webp


def prepare(
    image: torch.Tensor, orientation: int, image_size: int, thumb_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """A decoded (C, H, W) uint8 image → (model input (3, S, S), thumbnail pixels (h, w, 3)
    with long side ≤ ``thumb_size``), both uint8 on the image's device."""
    if image.shape[0] == 1:
        image = image.expand(3, -1, -1)
    image = orient(image[:3], orientation).float()
    model = TF.resize(image, image_size, InterpolationMode.BICUBIC, antialias=True)
    model = _to_uint8(TF.center_crop(model, [image_size, image_size]))
    height, width = image.shape[-2:]
    scale = thumb_size / max(height, width)
    if scale < 1:
        size = [max(round(height * scale), 1), max(round(width * scale), 1)]
        image = TF.resize(image, size, InterpolationMode.BICUBIC, antialias=True)
    return model, _to_uint8(image).permute(1, 2, 0).contiguous()


def _to_uint8(image: torch.Tensor) -> torch.Tensor:
    return image.round().clamp_(0, 255).to(torch.uint8)


def _pixel_count(job: JpegJob | None) -> int:
    return 0 if job is None else int(job.facts["width"]) * int(job.facts["height"])
