"""Shared pieces of the commands: the options that recur (declared once), which library,
which model, and output.

Options that several commands take (``--library``, ``--model``, ``--weights``, ``--device``,
``--json``) are defined here once. A group of options that belongs together (a search's
paging and filters, a classifier's labels) is declared once as a *factory*, a function whose
parameters are the options and whose result is one typed object; ``takes`` adds the
factory's options to a command and hands it that object.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import typer

from encoders.errors import VitrieveError
from encoders.runtime.device import DEFAULT_DEVICE, describe, resolve_device
from indexer.layout import DEFAULT_LIBRARY_DIR, locate_library

F = TypeVar("F", bound=Callable[..., Any])
DATE_FORMATS = ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"]
PRECISIONS_HELP = (
    "auto (the fastest exact precision on this machine, measured once per machine and model and "
    "kept in ~/.cache/vitrieve/precision), fp32, bf16, or int8 (CPU: dynamic quantisation)."
)
MODEL_HELP = (
    "Model: a checkpoint directory, or an open_clip architecture name or config .json "
    "with --weights"
)


def library_option(default: str = f"./{DEFAULT_LIBRARY_DIR}, or the current folder's") -> Any:
    """``--library``/``-l``: a library directory, or a photo folder holding one."""
    return typer.Option(
        None, "--library", "-l",
        help=f"Library directory, or a photo folder with one (default: {default}).",
    )  # fmt: skip


def _check_device(spec: str) -> str:
    """``--device`` checked while the command line is parsed, before any work (a device that
    is not there is a DeviceError: one line, exit 2), but kept as given: ``auto`` and ``cuda``
    are resolved where the model is placed (``resolve_device``), so that under ``torchrun``
    each process takes its own local rank's GPU instead of every one being handed ``cuda:0``."""
    resolve_device(spec)
    return spec.strip().lower()


LIBRARY_OPTION = library_option()
JSON_OPTION = typer.Option(False, "--json", help="Machine-readable JSON on stdout.")
MODEL_OPTION = typer.Option(None, "--model", "-m", help=f"{MODEL_HELP} (default: the library's).")
MODEL_REQUIRED = typer.Option(..., "--model", "-m", help=f"{MODEL_HELP}.")
WEIGHTS_OPTION = typer.Option(
    None, "--weights", help="open_clip weights file (.bin/.pt/.safetensors) for --model NAME."
)
PRECISION_OPTION = typer.Option("auto", "--precision", help=PRECISIONS_HELP)
DEVICE_OPTION = typer.Option(
    DEFAULT_DEVICE, "--device", callback=_check_device,
    help="Where the model runs: auto (the first CUDA GPU, else the CPU), cpu, cuda, cuda:N.",
)  # fmt: skip


def takes(factory: Callable[..., Any], name: str) -> Callable[[F], F]:
    """Decorator: the command also takes ``factory``'s parameters (options declared once for
    several commands) and receives ``factory(**values)`` as its keyword argument ``name``."""
    shared = list(inspect.signature(factory, eval_str=True).parameters.values())

    def decorate(command: F) -> F:
        own = inspect.signature(command, eval_str=True)
        kept = [p for p in own.parameters.values() if p.name != name]
        kept = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in kept + shared]

        @functools.wraps(command)
        def wrapper(**values: Any) -> Any:
            grouped = factory(**{p.name: values.pop(p.name) for p in shared})
            return command(**values, **{name: grouped})

        wrapper.__signature__ = own.replace(parameters=kept)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in kept}
        return wrapper  # type: ignore[return-value]

    return decorate


@dataclass(frozen=True)
class ModelChoice:
    """``--model``/``--weights``/``--precision``/``--device``: which model, loaded how."""

    reference: str | None
    weights: Path | None = None
    precision: str = "auto"
    device: str = DEFAULT_DEVICE

    def load(self):  # -> encoders.runtime.encoder.Encoder
        """The model: a checkpoint directory, or a name / config .json with ``--weights``."""
        from encoders.runtime.encoder import Encoder

        if self.reference is None:
            raise VitrieveError("no model: give --model")
        path = Path(self.reference).expanduser()
        if self.weights is None and not path.is_dir() and _looks_like_a_path(self.reference):
            raise VitrieveError(f"model checkpoint not found: {self.reference}")
        reference = path if path.is_dir() else self.reference
        return Encoder.load(
            reference, weights=self.weights, precision=self.precision, device=self.device
        )

    @property
    def device_name(self) -> str:
        return device_name(self.device)


def _looks_like_a_path(reference: str) -> bool:
    """A folder-like reference (not a model name, not a config file)."""
    return ("/" in reference or reference.startswith(".")) and not reference.endswith(".json")


def model_choice(
    model: str = MODEL_REQUIRED,
    weights: Path | None = WEIGHTS_OPTION,
    precision: str = PRECISION_OPTION,
    device: str = DEVICE_OPTION,
) -> ModelChoice:
    """The options of a command that runs a model given on the command line."""
    return ModelChoice(model, weights, precision, device)


def library_model_choice(
    model: str | None = MODEL_OPTION,
    weights: Path | None = WEIGHTS_OPTION,
    device: str = DEVICE_OPTION,
) -> ModelChoice:
    """The options of a command over a library: its own model unless ``--model`` says."""
    return ModelChoice(model, weights, "auto", device)


def device_name(device: str) -> str:
    """The device a command ran on, as ``--json`` outputs and summaries name it."""
    return describe(resolve_device(device))


def open_library(library: Path | None, model: ModelChoice | None = None):
    """The Library (retrieval.library.handle) as a context manager, with ``--model`` overriding the
    library's own model; the model runs on ``model.device``."""
    from retrieval.library.handle import Library

    path = locate_library(library)
    model = model or ModelChoice(None)
    encoder = model.load() if model.reference is not None else None
    return Library.open(path, encoder=encoder, device=model.device)


def one_line(message: str) -> str:
    """An error message as one printable line: newlines, terminal escapes and lone surrogates
    that came in with user input are shown escaped, never acted on by the terminal."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in message)


def emit_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str, ensure_ascii=False))
