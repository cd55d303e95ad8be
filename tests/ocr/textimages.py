"""Photo-like test images with rendered text (signs, receipts, licence plates, posters, screens)
and images without text, made from Debian's fonts so the OCR tests and ``bench/ocr.py`` need
no stored fixtures.

Each scene knows the words it shows legibly, so recall can be measured. Text sizes are
fractions of the image height (with a floor in pixels), so the same scene at 4000x3000 has
receipt lines ~21 px tall, as a receipt photographed at arm's length in a 12 MP photo.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/truetype/liberation",
             "/usr/share/fonts/truetype/noto")  # fmt: skip
FONTS = {  # family -> file name; the first folder that has it wins
    "sans-bold": ("DejaVuSans-Bold.ttf", "LiberationSans-Bold.ttf", "NotoSans-Bold.ttf"),
    "sans": ("LiberationSans-Regular.ttf", "NotoSans-Regular.ttf", "DejaVuSans.ttf"),
    "serif": ("NotoSerif-Regular.ttf", "LiberationSerif-Regular.ttf", "DejaVuSerif.ttf"),
    "mono": ("LiberationMono-Regular.ttf", "DejaVuSansMono.ttf"),
    "mono-bold": ("DejaVuSansMono-Bold.ttf", "LiberationMono-Bold.ttf"),
}
SHOPS = ["ZEPHYR", "BAKERY", "PHARMACY", "HARDWARE", "FLORIST", "CINEMA", "GARAGE", "LIBRARY"]
NAMES = ["Café Müller", "Crème Brûlée", "Smørrebrød Hus", "Señor Peñalver", "Zoë Kräuter"]
ITEMS = ["COFFEE", "BREAD", "BUTTER", "APPLES", "CHEESE", "TOMATOES", "OLIVES", "SALMON"]
KINDS = ("sign", "receipt", "plate", "poster", "screen", "sideways")


@dataclass(frozen=True)
class TextScene:
    """One generated photo: the pixels as the user sees them and the words it shows."""

    name: str
    image: Image.Image
    words: tuple[str, ...]


def font_path(family: str) -> str:
    for name in FONTS[family]:
        for folder in FONT_DIRS:
            path = Path(folder) / name
            if path.is_file():
                return str(path)
    raise FileNotFoundError(f"no font for {family!r} (apt-get install fonts-dejavu-core)")


def _font(family: str, px: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(font_path(family), max(8, int(px)))


def background(size: tuple[int, int], rng: random.Random) -> Image.Image:
    """A smooth gradient with blurred blobs and sensor noise: photo-like, and without text."""
    w, h = size
    sw, sh = max(8, w // 8), max(8, h // 8)
    c0 = np.array([rng.randint(40, 200) for _ in range(3)], np.float32)
    c1 = np.array([rng.randint(40, 200) for _ in range(3)], np.float32)
    t = np.linspace(0, 1, sh, dtype=np.float32)[:, None, None]
    small = Image.fromarray((c0 * (1 - t) + c1 * t).repeat(sw, 1).astype(np.uint8))
    draw = ImageDraw.Draw(small)
    for _ in range(rng.randint(3, 7)):
        x, y, r = rng.randint(0, sw), rng.randint(0, sh), rng.randint(sw // 10, sw // 3)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(rng.randint(0, 255) for _ in "rgb"))
    img = small.filter(ImageFilter.GaussianBlur(3)).resize(size, Image.BILINEAR)
    noise = np.random.default_rng(rng.randint(0, 2**31)).normal(0, 6, (h, w, 3))
    return Image.fromarray(np.clip(np.asarray(img, np.float32) + noise, 0, 255).astype(np.uint8))


def _board(lines, fill, ink, pad: int, border: int = 0) -> Image.Image:
    """Lines of (text, font) drawn on an RGBA board with padding (and an optional border)."""
    boxes = [f.getbbox(t) for t, f in lines]
    width = max(b[2] - b[0] for b in boxes) + 2 * pad
    heights = [int((b[3] - b[1]) * 1.5) for b in boxes]
    board = Image.new("RGBA", (width, sum(heights) + 2 * pad), fill)
    draw, y = ImageDraw.Draw(board), pad
    for (t, f), b, lh in zip(lines, boxes, heights, strict=True):
        draw.text((pad - b[0], y - b[1]), t, font=f, fill=ink)
        y += lh
    if border:
        draw.rectangle((0, 0, board.width - 1, board.height - 1), outline=ink, width=border)
    return board


def _place(scene: Image.Image, board: Image.Image, angle: float, rng: random.Random) -> None:
    rotated = board.rotate(angle, expand=True, resample=Image.BICUBIC)
    if rotated.width > scene.width or rotated.height > scene.height:
        s = 0.95 * min(scene.width / rotated.width, scene.height / rotated.height)
        rotated = rotated.resize((int(rotated.width * s), int(rotated.height * s)), Image.LANCZOS)
    x = rng.randint(0, scene.width - rotated.width)
    y = rng.randint(0, scene.height - rotated.height)
    scene.paste(rotated, (x, y), rotated)


def make_scene(kind: str, seed: int = 0, size: tuple[int, int] = (1024, 768)) -> TextScene:
    """One scene of ``kind`` (see KINDS); ``seed`` varies its words, fonts, colours and tilt."""
    rng = random.Random(f"{kind}-{seed}")
    h = size[1]
    scene = background(size, rng).convert("RGBA")
    tilt = rng.uniform(-4, 4)
    if kind == "sign":
        shop, n = rng.choice(SHOPS), rng.randint(10, 99)
        words = (shop, f"No{n}")
        lines = [(shop, _font("sans-bold", h * 0.09)), (f"No{n}", _font("sans", h * 0.05))]
        board = _board(lines, (250, 245, 230, 255), (20, 40, 120, 255), int(h * 0.03))
    elif kind == "receipt":
        number, total = rng.randint(10000, 99999), f"{rng.randint(10, 99)}.{rng.randint(10, 99)}"
        items = rng.sample(ITEMS, 3)
        text = ["INVOICE " + str(number), *[f"{i:<9} {rng.randint(1, 9)}.{rng.randint(10, 99)}"
                for i in items], f"TOTAL     {total}"]  # fmt: skip
        font = _font("mono", max(12, h * 0.007))
        board = _board([(t, font) for t in text], (248, 248, 244, 255), (30, 30, 30, 255),
                       int(font.size * 1.2))  # fmt: skip
        words = ("INVOICE", str(number), *items, "TOTAL", total)
    elif kind == "plate":
        plate = f"{rng.choice('ABDEHKMR')}{rng.choice('EKLMS')}{rng.randint(10, 99)} " + "".join(
            rng.choice("BCDFGHKLMNPRSTVWXZ") for _ in range(3)
        )
        board = _board([(plate, _font("mono-bold", h * 0.07))], (250, 210, 40, 255),
                       (10, 10, 10, 255), int(h * 0.02), border=max(2, h // 200))  # fmt: skip
        words = tuple(plate.split())
    elif kind == "poster":
        name, year = rng.choice(NAMES), rng.randint(1990, 2029)
        lines = [(name, _font("serif", h * 0.07)), (f"JAZZ NIGHT {year}", _font("sans", h * 0.04))]
        board = _board(lines, (30, 30, 60, 255), (250, 240, 200, 255), int(h * 0.03))
        words = (*name.split(), "JAZZ", "NIGHT", str(year))
    elif kind == "screen":
        code = rng.randint(1000, 9999)
        lines = [("Boarding gate B" + str(code % 50), _font("sans", h * 0.04)),
                 (f"Flight VT{code} delayed", _font("sans", h * 0.04))]  # fmt: skip
        board = _board(lines, (15, 20, 30, 255), (120, 230, 120, 255), int(h * 0.03))
        words = ("Boarding", "gate", f"B{code % 50}", "Flight", f"VT{code}", "delayed")
    elif kind == "sideways":  # a sign in a photo stored sideways, without an EXIF tag
        shop = rng.choice(SHOPS)
        board = _board([(shop, _font("sans-bold", h * 0.08))], (240, 240, 240, 255),
                       (150, 20, 20, 255), int(h * 0.03))  # fmt: skip
        words = (shop,)
    else:
        raise ValueError(f"unknown kind {kind!r}; one of {KINDS}")
    _place(scene, board, tilt, rng)
    image = scene.convert("RGB")
    if kind == "sideways":
        image = image.transpose(Image.Transpose.ROTATE_90)
    return TextScene(f"{kind}-{seed}", image, words)


def upside_down_scene(seed: int = 0, size: tuple[int, int] = (1024, 768)) -> TextScene:
    """A sign hung upside down (a photo of a product label or a flipped phone)."""
    upright = make_scene("sign", seed, size)
    return TextScene(f"upside-down-{seed}", upright.image.rotate(180), upright.words)


def text_free(seed: int = 0, size: tuple[int, int] = (1024, 768)) -> TextScene:
    """A photo-like image with shapes and no text."""
    rng = random.Random(f"free-{seed}")
    image = background(size, rng)
    draw = ImageDraw.Draw(image)
    for _ in range(6):
        x, y = rng.randint(0, size[0]), rng.randint(0, size[1])
        r = rng.randint(size[1] // 20, size[1] // 6)
        draw.rectangle((x, y, x + r, y + r // 2), fill=tuple(rng.randint(0, 255) for _ in "rgb"))
    return TextScene(f"free-{seed}", image, ())


def scene_set(count: int, size: tuple[int, int] = (1024, 768), text_share: float = 0.8):
    """``count`` scenes cycling through KINDS, ``1 - text_share`` of them without text."""
    with_text = round(count * text_share)
    out = [make_scene(KINDS[i % len(KINDS)], i // len(KINDS), size) for i in range(with_text)]
    return out + [text_free(i, size) for i in range(count - with_text)]
