"""Using a library: search, calibration, zero-shot labels, evaluation, the CLI and HTTP API.

Built on ``indexer`` and ``encoders``; the UI (``ui``) is built on this.
"""
