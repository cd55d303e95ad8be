"""Bad input, images: fuzzing the decoding path and the corpus of known-bad files.

Whatever bytes a file holds, ``decode_image`` gives an RGB image or an ``ImageError`` with a
reason, nothing else; the decoder workers record every file (a hang times out, a crash is
named); a whole ``vitrieve index`` run over the bad corpus records every file and exits 0.
"""

from __future__ import annotations

import io
import json
import random
import shutil
import struct
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from fuzz_budget import fuzz_for
from hostile import CRASH_WIDTH, HANG_WIDTH, HostileTransform
from hypothesis import strategies as st
from library_factory import BOMB_LIMIT, photo
from make_bad_corpus import BAD_DIR, CORPUS
from PIL import Image
from typer.testing import CliRunner

from indexer.decode.images import ImageError, decode_image
from indexer.decode.workers import DecodePool, DecodeSettings

TARGET = 64  # the tiny model's input size: decoding reduces towards it
# Pillow warns about every oddity it tolerates in a mangled file: noise for a fuzzer
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")


def _seed_files() -> dict[str, bytes]:
    """Small valid files in every format the decoder accepts, with their optional parts
    (EXIF, alpha, palettes, several frames, compression) so mutations reach them."""
    exif = Image.Exif()
    exif[0x0112] = 6
    exif.get_ifd(0x8769)[0x9003] = "2021:07:14 09:30:00"
    picture = photo(40, 30, seed=3)
    frames = [photo(40, 30, seed=s).convert("P") for s in (4, 5)]
    out: dict[str, bytes] = {}
    for name, image, fmt, kwargs in [
        ("jpeg", picture, "JPEG", {"exif": exif, "quality": 80}),
        ("jpeg_progressive", picture, "JPEG", {"progressive": True}),
        ("png_rgba", picture.convert("RGBA"), "PNG", {}),
        ("png_palette", frames[0], "PNG", {"transparency": 0}),
        ("gif", frames[0], "GIF", {"save_all": True, "append_images": frames[1:]}),
        ("webp", picture, "WEBP", {"quality": 60}),
        ("webp_lossless", picture.convert("RGBA"), "WEBP", {"lossless": True}),
        ("tiff", picture, "TIFF", {"exif": exif}),
        ("tiff_lzw", picture.convert("CMYK"), "TIFF", {"compression": "tiff_lzw"}),
        ("bmp", picture, "BMP", {}),
    ]:
        buffer = io.BytesIO()
        image.save(buffer, format=fmt, **kwargs)
        out[name] = buffer.getvalue()
    return out


SEEDS = _seed_files()
INTERESTING = [0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF]

Pick = Callable[[int, int], int]  # pick(lo, hi): an integer in [lo, hi]


def _position(pick: Pick, data: bytearray) -> int:
    """Half the time in the first 64 bytes, where the headers are."""
    limit = len(data) - 1 if pick(0, 1) else min(len(data), 64) - 1
    return pick(0, max(limit, 0))


def _flip(pick: Pick, data: bytearray) -> bytearray:
    if data:
        data[_position(pick, data)] ^= 1 << pick(0, 7)
    return data


def _overwrite(pick: Pick, data: bytearray) -> bytearray:
    """An interesting integer (a size, a count, an offset) over 1, 2 or 4 bytes, either order."""
    value = INTERESTING[pick(0, len(INTERESTING) - 1)]
    width = (1, 2, 4)[pick(0, 2)]
    packed = (value & ((1 << (8 * width)) - 1)).to_bytes(width, "big" if pick(0, 1) else "little")
    at = _position(pick, data)
    data[at : at + width] = packed
    return data


def _truncate(pick: Pick, data: bytearray) -> bytearray:
    return data[: _position(pick, data)]


def _splice(pick: Pick, data: bytearray) -> bytearray:
    """This file's head on another format's tail (header splice)."""
    names = sorted(SEEDS)
    other = SEEDS[names[pick(0, len(names) - 1)]]
    cut = _position(pick, data)
    return data[:cut] + bytearray(other[min(cut, len(other)) :])


def _insert(pick: Pick, data: bytearray) -> bytearray:
    at = _position(pick, data)
    return data[:at] + bytearray(pick(0, 255) for _ in range(pick(1, 16))) + data[at:]


def _delete(pick: Pick, data: bytearray) -> bytearray:
    at = _position(pick, data)
    return data[:at] + data[at + pick(1, 64) :]


def _repeat(pick: Pick, data: bytearray) -> bytearray:
    """A chunk repeated (duplicated markers, chunks, IFD entries)."""
    at = _position(pick, data)
    chunk = data[at : at + pick(1, 64)]
    return data[:at] + chunk * pick(2, 8) + data[at:]


def _absurd_size(pick: Pick, data: bytearray) -> bytearray:
    """Huge or zero width/height where each format keeps them."""
    w, h = (INTERESTING[pick(0, len(INTERESTING) - 1)] for _ in range(2))
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        data[16:24] = struct.pack(">II", w & 0xFFFFFFFF, h & 0xFFFFFFFF)
    elif data[:3] == b"GIF":
        data[6:10] = struct.pack("<HH", w & 0xFFFF, h & 0xFFFF)
    elif data[:2] == b"BM":
        data[18:26] = struct.pack("<ii", w & 0x7FFFFFFF, -(h & 0x7FFFFFFF))
    elif data[:2] == b"\xff\xd8" and (b"\xff\xc0" in data or b"\xff\xc2" in data):
        sof = data.find(b"\xff\xc0") if b"\xff\xc0" in data else data.find(b"\xff\xc2")
        data[sof + 5 : sof + 9] = struct.pack(">HH", h & 0xFFFF, w & 0xFFFF)
    elif data[:4] == b"RIFF" and len(data) > 30:
        data[26:30] = struct.pack("<HH", w & 0x3FFF, h & 0x3FFF)
    elif data[:4] in (b"II*\x00", b"MM\x00*"):
        return _overwrite(pick, data)
    return data


MUTATIONS = (_flip, _overwrite, _truncate, _splice, _insert, _delete, _repeat, _absurd_size)


def mutate(pick: Pick) -> bytes:
    """One seed file with 1–4 mutations, every choice made through ``pick``."""
    names = sorted(SEEDS)
    data = bytearray(SEEDS[names[pick(0, len(names) - 1)]])
    for _ in range(pick(1, 4)):
        data = MUTATIONS[pick(0, len(MUTATIONS) - 1)](pick, data)
    return bytes(data)


@st.composite
def mutated_files(draw: st.DrawFn) -> bytes:
    return mutate(lambda lo, hi: draw(st.integers(lo, hi)))


def check_decode(data: bytes) -> None:
    """An RGB image or an ImageError with a reason; anything else fails."""
    try:
        decoded = decode_image(io.BytesIO(data), target_size=TARGET, max_pixels=BOMB_LIMIT)
    except ImageError as exc:
        assert exc.reason, "an ImageError without a reason"
        return
    assert decoded.image.mode == "RGB" and min(decoded.image.size) >= 1
    assert decoded.width >= 1 and decoded.height >= 1


def _fuzz(strategy: st.SearchStrategy, seconds: float, figures) -> None:
    run = fuzz_for(seconds, strategy, check_decode)
    figures(run.figures())
    assert not run.failures, "\n".join(run.failures[:20])


@pytest.mark.timeout(600)
def test_fuzz_random_bytes(scale, figures) -> None:
    """Random bytes, half of them behind a real format signature (so parsers go deeper)."""
    magics = [b"", b"\xff\xd8\xff\xe0", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"RIFF\0\0\0\0WEBPVP8 ",
              b"II*\x00\x08\x00\x00\x00", b"MM\x00*\x00\x00\x00\x08", b"BM",
              b"\x00\x00\x00\x18ftypheic"]  # fmt: skip
    strategy = st.builds(bytes.__add__, st.sampled_from(magics), st.binary(max_size=2048))
    _fuzz(strategy, scale.pick(8, 60), figures)


@pytest.mark.timeout(600)
def test_fuzz_mutated_valid_files(scale, figures) -> None:
    """Bit flips, truncations, header splices, absurd sizes on valid files of every format."""
    _fuzz(mutated_files(), scale.pick(12, 90), figures)


def test_bad_corpus_through_decode_image(figures) -> None:
    """Every committed known-bad file gives its expected outcome (error, image, or either)."""
    outcomes = {}
    for name, (_make, expected) in CORPUS.items():
        path = BAD_DIR / name
        assert path.is_file(), f"{name} missing: run tests/data/make_bad_corpus.py"
        try:
            decoded = decode_image(path, target_size=TARGET)
            assert decoded.image.mode == "RGB"
            outcomes[name] = "ok"
        except ImageError as exc:
            assert exc.reason
            outcomes[name] = "error"
        assert expected in ("either", outcomes[name]), f"{name}: {outcomes[name]}"
    figures({"files": len(outcomes), "errors": sum(v == "error" for v in outcomes.values()),
             "decoded": sum(v == "ok" for v in outcomes.values())})  # fmt: skip


def _write_mutants(folder: Path, count: int) -> list[Path]:
    rng = random.Random(7)  # the same files every run
    paths = []
    for n in range(count):
        path = folder / f"mutant_{n:04d}.{rng.choice(['jpg', 'png', 'gif', 'webp', 'tif'])}"
        path.write_bytes(mutate(rng.randint))
        paths.append(path)
    return paths


@pytest.mark.timeout(900)
def test_decode_workers_record_every_file_and_survive_hangs(tmp_path: Path, scale, figures):
    """The worker path over the corpus, mutants, a file that hangs the decoder and one that
    kills its worker: exactly one result per file, the hang timed out, the crash named."""
    paths = [BAD_DIR / name for name in CORPUS]
    paths += _write_mutants(tmp_path, scale.pick(40, 400))
    for width, name in ((HANG_WIDTH, "hangs.png"), (CRASH_WIDTH, "crashes.png")):
        photo(width, 16, seed=width).save(tmp_path / name)
        paths.append(tmp_path / name)
    settings = DecodeSettings(HostileTransform(), target_size=TARGET, max_pixels=BOMB_LIMIT)
    timeout = 5.0
    started = time.monotonic()
    with DecodePool(settings, workers=2, timeout=timeout, window=8) as pool:
        results = {d.id: d for d in pool.imap_unordered(enumerate(paths))}
    seconds = time.monotonic() - started
    assert sorted(results) == list(range(len(paths)))
    by_name = {paths[i].name: d for i, d in results.items()}
    assert f"longer than {timeout:g} s" in by_name["hangs.png"].error
    assert by_name["crashes.png"].error == "the decoder crashed on this file"
    for name, (_make, expected) in CORPUS.items():
        outcome = "ok" if by_name[name].error is None else "error"
        assert expected in ("either", outcome), f"{name}: {by_name[name].error}"
    unexpected = [d.error for d in results.values() if d.error and "decode failed" in d.error]
    assert not unexpected, unexpected  # a non-ImageError exception inside decode_image
    assert seconds < scale.pick(300, 900)
    figures({"files": len(paths), "failed": sum(d.error is not None for d in results.values()),
             "timeout_s": timeout, "seconds": round(seconds, 1)})  # fmt: skip


@pytest.mark.timeout(900)
def test_vitrieve_index_records_every_bad_file(tmp_path: Path, figures) -> None:
    """A whole ``vitrieve index`` run over the corpus (plus good photos): exit 0, a summary,
    every bad file recorded as failed with its reason, every good one indexed."""
    from encoders.model.clip import create_model
    from encoders.model.config import load_config
    from encoders.weights.checkpoint import save_checkpoint
    from retrieval.cli import app

    checkpoint = tmp_path / "ckpt"
    save_checkpoint(create_model(load_config("tiny")), checkpoint)
    photos = tmp_path / "photos"
    shutil.copytree(BAD_DIR, photos)
    for n in range(3):
        photo(seed=n).save(photos / f"good_{n}.jpg")
    runner = CliRunner()
    args = ["index", str(photos), "--model", str(checkpoint), "--workers", "1",
            "--timeout", "60", "--json"]  # fmt: skip
    started = time.monotonic()
    result = runner.invoke(app, args)
    seconds = time.monotonic() - started
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    failed = {Path(path).name: reason for path, reason in report["failures"]}
    assert report["found"] == len(CORPUS) + 3
    assert report["embedded"] + len(failed) == report["found"]
    for name, (_make, expected) in CORPUS.items():
        outcome = "error" if name in failed else "ok"
        assert expected in ("either", outcome), f"{name}: {failed.get(name)}"
        assert name not in failed or failed[name]  # a reason for every failure
    assert not any(n.startswith("good_") for n in failed)
    assert not any("decode failed" in reason for reason in failed.values()), failed
    status = runner.invoke(app, ["status", "--library", str(photos / ".vitrieve"), "--json"])
    assert status.exit_code == 0, status.output
    counts = json.loads(status.stdout)["counts"]
    assert counts["indexed"] == report["embedded"] and counts["failed"] == len(failed)
    figures({"files": report["found"], "indexed": report["embedded"], "failed": len(failed),
             "seconds": round(seconds, 1)})  # fmt: skip
