"""The one device choice: ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` → a ``torch.device``.

Every option object that runs a model (Encoder, indexing options, serving configuration,
training options, ``Library.open``) carries a device *spec* string and resolves it here, so
the rules live in one place: ``auto`` is the first CUDA device torch sees, else the CPU; an
explicit CUDA device on a machine without one is a ``DeviceError`` (a user error), never a
silent fall-back to the CPU. Library code never reads the environment to choose.
"""

from __future__ import annotations

import re

import torch

from encoders.errors import VitrieveError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "cuda:N")
DEFAULT_DEVICE = "auto"
_SPEC = re.compile(r"^(auto|cpu|cuda)(?::(\d+))?$")


class DeviceError(VitrieveError):
    """A device that was asked for is not there (or the spec is not a device)."""


def resolve_device(spec: str | torch.device | None = DEFAULT_DEVICE) -> torch.device:
    """The ``torch.device`` a spec names; ``None`` means ``auto``."""
    if isinstance(spec, torch.device):
        spec = str(spec)
    text = (spec or DEFAULT_DEVICE).strip().lower()
    match = _SPEC.match(text)
    if match is None or (match.group(2) is not None and match.group(1) != "cuda"):
        raise DeviceError(f"unknown device {spec!r}: use one of {', '.join(DEVICE_CHOICES)}")
    kind, index = match.group(1), match.group(2)
    if kind == "cpu":
        return torch.device("cpu")
    available = torch.cuda.is_available()
    if kind == "auto":
        return torch.device("cuda", 0) if available else torch.device("cpu")
    if not available:
        raise DeviceError(
            f"device {text!r} asked for, but torch sees no CUDA device "
            f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'no'}); "
            "run on the CPU instead, or install a CUDA build of torch"
        )
    number = int(index) if index is not None else 0
    count = torch.cuda.device_count()
    if number >= count:
        raise DeviceError(f"device {text!r} asked for, but torch sees {count} CUDA device(s)")
    return torch.device("cuda", number)


def describe(device: torch.device) -> str:
    """A device as status pages and ``--json`` outputs name it: ``cpu`` or ``cuda:0 (NAME)``."""
    if device.type != "cuda":
        return device.type
    index = device.index if device.index is not None else torch.cuda.current_device()
    return f"cuda:{index} ({torch.cuda.get_device_name(index)})"


def is_out_of_memory(error: BaseException) -> bool:
    """Whether an exception is a device out-of-memory (CUDA's own type, or its message on
    torch builds that raise a plain RuntimeError)."""
    oom_type = getattr(torch, "OutOfMemoryError", None) or getattr(
        torch.cuda, "OutOfMemoryError", None
    )
    if oom_type is not None and isinstance(error, oom_type):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()
