"""nvJPEG on the indexer's CUDA device: batches of JPEG bytes → model inputs and thumbnails.

Workers read, hash and plan each file (``jpeg_plan``); the ones planned for the GPU are read
again here (by threads, from the page cache, only if unchanged) and decoded a batch at a time with
``torchvision.io.decode_jpeg(list_of_tensors, device="cuda")``, applies the EXIF orientation,
and from the one decoded image makes both the model input (short side resized bicubically with
antialiasing, centre-cropped: the CPU path's ``Resize`` + ``CenterCrop``, as uint8) and the
thumbnail (long side ``thumb_size``, WebP-encoded by threads on the CPU). A batch nvJPEG
rejects is retried file by file; a file it still cannot decode goes to ``fallback`` — the CPU
decoder, which decodes it or records why not — so no file is lost to the GPU path.

Stream ordering (``DecodeStream``; docs/gpu.md, "Why the decoder has its own stream"): nvJPEG
writes its outputs on a private stream that waits for nothing queued on the caller's, into
blocks the caching allocator hands out as soon as the caller's stream has freed them — blocks
kernels still queued there may be about to read (pytorch/vision PR #9606, meta-pytorch/torchcodec
PR #1634). So all of this module's device work runs on a stream of its own, used by this one
thread; the host waits for that stream before every decode call, so no block it owns is still
in use by queued work; and the model inputs reach the caller's stream (the encoder's) through
``wait_stream`` and ``record_stream``, so neither side reuses memory the other still reads.
Resizes that would reduce an axis more than the CUDA antialias kernel can in one pass go in
steps, planned before decoding (``jpeg_plan.resize_steps``).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace

import torch
from PIL import Image
from torchvision.io import ImageReadMode, decode_jpeg
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from indexer.decode.decoded import Decoded
from indexer.decode.images import make_thumbnail
from indexer.decode.jpeg_plan import (
    JpegJob,
    orient,
    plan_batches,
    read_unchanged,
    resize_steps,
    short_side_size,
)

log = logging.getLogger(__name__)

DECODE_BATCH = 64  # files per nvJPEG call
MAX_BATCH_PIXELS = 400_000_000  # decoded pixels per call: 1.2 GB of RGB on the device
THUMB_THREADS = 4  # WebP encoding of thumbnails (Pillow releases the GIL while encoding)

JpegDecoder = Callable[..., list[torch.Tensor]]  # decode_jpeg's signature, for tests
Prepared = tuple[torch.Tensor, torch.Tensor]  # (model input (3, S, S), thumbnail (h, w, 3))


class DecodeStream:
    """The stream the GPU path's device work runs on, and the two rules that keep nvJPEG from
    writing into memory still in use (module docstring). On the CPU every step does nothing."""

    def __init__(self, device: torch.device) -> None:
        self.stream = torch.cuda.Stream(device) if device.type == "cuda" else None

    @contextmanager
    def active(self) -> Iterator[None]:
        """Make this stream the calling thread's current one: what runs inside allocates from,
        and queues on, this stream only."""
        if self.stream is None:
            yield
            return
        with torch.cuda.stream(self.stream):
            yield

    def before_decode(self) -> None:
        """Host-side wait for everything queued on this stream: the blocks nvJPEG is handed
        (allocated on this stream) are then free of queued readers."""
        if self.stream is not None:
            self.stream.synchronize()

    def consumer(self) -> torch.cuda.Stream | None:
        """The calling thread's current stream: where the model inputs will be read."""
        return None if self.stream is None else torch.cuda.current_stream(self.stream.device)

    def hand_over(
        self, tensors: Sequence[torch.Tensor], consumer: torch.cuda.Stream | None
    ) -> None:
        """Order ``consumer`` after this stream's work, and keep each tensor's block from
        being reused by this stream until ``consumer`` has finished with it."""
        if self.stream is None or consumer is None or consumer == self.stream:
            return
        consumer.wait_stream(self.stream)
        for tensor in tensors:
            tensor.record_stream(consumer)


class GpuJpegDecoder:
    """Completes ``Decoded`` items that carry a JPEG job: pixels on ``device``, thumbnails."""

    def __init__(
        self,
        device: torch.device,
        image_size: int,
        thumb_size: int,
        fallback: Callable[[Decoded], Decoded],
        decode: JpegDecoder = decode_jpeg,
        stream: DecodeStream | None = None,
    ) -> None:
        self.device, self.image_size, self.thumb_size = device, image_size, thumb_size
        self.fallback, self.decode = fallback, decode
        self.stream = stream if stream is not None else DecodeStream(device)
        self.decoded_on_device = 0  # files nvJPEG decoded; the rest went to ``fallback``
        self._threads = ThreadPoolExecutor(THUMB_THREADS, thread_name_prefix="thumbnail")

    def close(self) -> None:
        self._threads.shutdown(wait=True)

    def complete(self, items: Sequence[Decoded]) -> list[Decoded]:
        """``items`` with every JPEG job decoded (pixels: a uint8 (3, S, S) device tensor,
        ready on the calling thread's current stream), or decoded by ``fallback`` (pixels on
        the host, or an error); the others unchanged."""
        out = list(items)
        todo = [i for i, item in enumerate(out) if item.jpeg is not None]
        counts = [_pixel_count(out[i].jpeg) for i in todo]
        consumer, on_device = self.stream.consumer(), []
        for batch in plan_batches(counts, DECODE_BATCH, MAX_BATCH_PIXELS):
            indices = [todo[b] for b in batch]
            datas = list(self._threads.map(lambda i: read_unchanged(out[i].jpeg), indices))
            read = [(i, d) for i, d in zip(indices, datas, strict=True) if d is not None]
            orientations = [out[i].jpeg.orientation for i, _ in read]
            results = dict(zip([i for i, _ in read], self.decode_and_prepare(
                [d for _, d in read], orientations), strict=True))  # fmt: skip
            thumbs = []
            for index in indices:
                ready = results.get(index)
                if ready is None:
                    out[index] = self.fallback(out[index])
                    continue
                pixels, thumb = ready
                out[index] = replace(out[index], pixels=pixels, jpeg=None)
                on_device.append(pixels)
                thumbs.append((index, thumb))
            self._encode_thumbnails(out, thumbs)
        self.stream.hand_over(on_device, consumer)
        return out

    def decode_and_prepare(
        self, datas: list[bytes], orientations: list[int]
    ) -> list[Prepared | None]:
        """JPEG bytes → (model input, thumbnail pixels) on the decoder's stream, or None for a
        file nvJPEG or the resize failed on. What ``complete`` does between reading the files
        and encoding the thumbnails (bench/gpu.py times it alone)."""
        with self.stream.active():
            images = self.decode_batch(datas)
            return [
                self._prepare(image, orientation) if image is not None else None
                for image, orientation in zip(images, orientations, strict=True)
            ]

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
        with self.stream.active(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torchvision ≥ 0.29 flags its decoders deprecated
            self.stream.before_decode()  # right before the call: nothing queued since
            return self.decode(tensors, mode=ImageReadMode.RGB, device=self.device)

    def _prepare(self, image: torch.Tensor, orientation: int) -> Prepared | None:
        """(model input, thumbnail pixels), or None on a device error."""
        try:
            prepared = prepare(image, orientation, self.image_size, self.thumb_size)
        except Exception as exc:  # out of memory on a huge image, ...: the CPU decoder
            log.info("GPU resize failed (%s): CPU decoder", exc)
            return None
        self.decoded_on_device += 1
        return prepared

    def _encode_thumbnails(
        self, out: list[Decoded], thumbs: list[tuple[int, torch.Tensor]]
    ) -> None:
        """WebP thumbnails from the batch's thumbnail pixels: copied to the host once the
        batch's device work is queued (one wait, not one per image), encoded by threads."""
        with self.stream.active():  # the copies wait for this stream's resizes
            arrays = [pixels.cpu().numpy() for _, pixels in thumbs]
        encoded = self._threads.map(
            lambda pixels: make_thumbnail(Image.fromarray(pixels), self.thumb_size), arrays
        )
        for (index, _), webp in zip(thumbs, encoded, strict=True):
            out[index].thumb = webp


def prepare(image: torch.Tensor, orientation: int, image_size: int, thumb_size: int) -> Prepared:
    """A decoded (C, H, W) uint8 image → (model input (3, S, S), thumbnail pixels (h, w, 3)
    with long side ≤ ``thumb_size``), both uint8 on the image's device. Resizes that reduce
    an axis beyond what one antialias pass can take go in steps (``resize_steps``)."""
    if image.shape[0] == 1:
        image = image.expand(3, -1, -1)
    image = orient(image[:3], orientation).float()
    height, width = image.shape[-2:]
    model = _resize(image, short_side_size(height, width, image_size))
    model = _to_uint8(TF.center_crop(model, [image_size, image_size]))
    scale = thumb_size / max(height, width)
    if scale < 1:
        image = _resize(image, (max(round(height * scale), 1), max(round(width * scale), 1)))
    return model, _to_uint8(image).permute(1, 2, 0).contiguous()


def _resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bicubic, antialiased, to ``size`` (h, w), in as many passes as ``resize_steps`` plans."""
    for step in resize_steps((image.shape[-2], image.shape[-1]), size):
        image = TF.resize(image, list(step), InterpolationMode.BICUBIC, antialias=True)
    return image


def _to_uint8(image: torch.Tensor) -> torch.Tensor:
    return image.round().clamp_(0, 255).to(torch.uint8)


def _pixel_count(job: JpegJob | None) -> int:
    return 0 if job is None else int(job.facts["width"]) * int(job.facts["height"])
