"""Shared pieces of the retrieval commands: which library, which model, errors, output."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import typer

from encoders.device import DEFAULT_DEVICE, describe, resolve_device
from encoders.errors import VitrieveError
from indexer.layout import DEFAULT_LIBRARY_DIR, MANIFEST_FILE

F = TypeVar("F", bound=Callable[..., Any])
DATE_FORMATS = ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"]

LIBRARY_OPTION = typer.Option(
    None, "--library", "-l",
    help=f"Library directory (default: ./{DEFAULT_LIBRARY_DIR}, or a photo folder's).",
)  # fmt: skip
JSON_OPTION = typer.Option(False, "--json", help="Machine-readable JSON on stdout.")
MODEL_OPTION = typer.Option(
    None, "--model", "-m", help="Checkpoint directory (default: the library's model)."
)


def _resolve_device(spec: str) -> str:
    """``--device`` resolved while the command line is parsed, before any work: a device that
    is not there is a DeviceError (one line, exit 2); the command gets ``cpu`` or ``cuda:N``."""
    return str(resolve_device(spec))


DEVICE_OPTION = typer.Option(
    DEFAULT_DEVICE, "--device", callback=_resolve_device,
    help="Where the model runs: auto (the first CUDA GPU, else the CPU), cpu, cuda, cuda:N.",
)  # fmt: skip


def device_name(device: str) -> str:
    """The device a command ran on, as ``--json`` outputs and summaries name it."""
    return describe(resolve_device(device))


def cli_errors(command: F) -> F:
    """No longer needed (kept until the HTTP-API commands drop it): ``retrieval.cli``'s one
    error boundary turns every exception of every command into its line and exit code."""
    return command


def library_dir(library: Path | None) -> Path:
    """``--library``, else ``./.vitrieve`` (or the current folder when it is a library)."""
    if library is not None:
        return library
    cwd = Path.cwd()
    if (cwd / MANIFEST_FILE).is_file():
        return cwd
    return cwd / DEFAULT_LIBRARY_DIR


def open_library(
    library: Path | None, model: Path | None = None, device: str = DEFAULT_DEVICE
):  # -> retrieval.library.Library
    """The Library (retrieval.library), with ``--model`` overriding the recorded one; its
    model runs on ``device``."""
    from retrieval.library import Library

    encoder = load_encoder(model, device) if model is not None else None
    return Library.open(library_dir(library), encoder=encoder, device=device)


def load_encoder(model: Path, device: str = DEFAULT_DEVICE):
    from encoders.encoder import Encoder

    if not Path(model).is_dir():
        raise VitrieveError(f"model checkpoint not found: {model}")
    return Encoder.load(model, device=device)


def one_line(message: str) -> str:
    """An error message as one printable line: newlines, terminal escapes and lone surrogates
    that came in with user input are shown escaped, never acted on by the terminal."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in message)


def end_of_day(moment: datetime | None) -> datetime | None:
    """A bare date as an upper bound means the whole day."""
    if moment is not None and moment.time() == datetime.min.time():
        if moment.date() == datetime.max.date():
            return datetime.max  # 9999-12-31: no next day to step back from
        return moment + timedelta(days=1) - timedelta(microseconds=1)
    return moment


def emit_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str, ensure_ascii=False))


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()
