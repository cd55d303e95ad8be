"""The one exception type the CLI turns into a clear one-line message."""

from __future__ import annotations


class VitrieveError(Exception):
    """A user-facing error: bad input, missing file, unsupported configuration.

    Library code raises it (never prints or exits); the CLI and the UI show its message.
    """


def check_text(text: str, what: str, nul_ok: bool = False) -> str:
    """``text`` when it can be stored (and tokenised): VitrieveError for a lone surrogate
    (undecodable bytes from argv, or a bad HTTP client) or, unless ``nul_ok`` (a tokenizer
    takes it), a NUL character; the message names the value as ``what``."""
    if not nul_ok and "\x00" in text:
        raise VitrieveError(f"{what} contains a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise VitrieveError(f"{what} is not valid Unicode (it holds a lone surrogate)") from None
    return text
