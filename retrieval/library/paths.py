"""Which files a library may serve: ids taken strictly, paths kept inside the library.

Ids come from browser sessions and HTTP clients, paths from database rows; both are checked
here so ``Library.file_path``/``thumbnail_path`` can never be made to read another file.
"""

from __future__ import annotations

import numbers
import re
from pathlib import Path

from encoders.errors import VitrieveError

MAX_ROW_ID = 2**63 - 1  # SQLite INTEGER PRIMARY KEY (and PostgreSQL BIGINT) range


def image_key(file_id: object) -> int:
    """A row id from an int, a numpy integer or a string of digits; VitrieveError otherwise.

    Strict on purpose: ids come from the browser session, and ``int()`` would take 1.9, True or
    b"1", while a value beyond SQLite's 64-bit integers would raise OverflowError in the driver.
    """
    if isinstance(file_id, str) and re.fullmatch(r"[0-9]{1,19}", file_id.strip()):
        file_id = int(file_id)
    if isinstance(file_id, numbers.Integral) and not isinstance(file_id, bool):
        key = int(file_id)
        if 0 <= key <= MAX_ROW_ID:
            return key
        raise VitrieveError(f"unknown image id {key}")
    raise VitrieveError(f"not an image id: {str(file_id)[:40]!r}")


def inside(base: Path, relative: str, what: str) -> Path:
    """``base/relative`` resolved; refused unless it is a file that stays inside ``base``."""
    if Path(relative).is_absolute() or ".." in Path(relative).parts:
        raise VitrieveError(f"{what} has an unsafe path: {relative!r}")
    try:
        resolved = (base / relative).resolve(strict=True)
    except (OSError, RuntimeError, ValueError) as exc:  # ValueError: a NUL byte in the path
        raise VitrieveError(f"{what} is missing: {relative!r}") from exc
    if not resolved.is_relative_to(base.resolve()):
        raise VitrieveError(f"{what} points outside the library: {relative}")
    if not resolved.is_file():
        raise VitrieveError(f"{what} is not a file: {relative}")
    return resolved
