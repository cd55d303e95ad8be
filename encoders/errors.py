"""The one exception type the CLI turns into a clear one-line message."""

from __future__ import annotations


class VitrieveError(Exception):
    """A user-facing error: bad input, missing file, unsupported configuration.

    Library code raises it (never prints or exits); the CLI and the UI show its message.
    """
