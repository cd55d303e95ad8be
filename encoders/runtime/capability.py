"""What a device does natively: the facts a precision choice starts from.

These are *capabilities*, not choices: whether a precision is also faster and exact enough
is measured (``encoders.runtime.precision``). The CUDA rules look at the device they are
given, not at torch's current device, and never count emulation: ``torch.cuda
.is_bf16_supported()`` by default says yes on a T4 or V100 because bf16 tensors *work* there
(emulated, slower than fp32), and it asks about the current device, not the one the model is
on.

Compute capability → reduced precision on CUDA:
  ≥ 8.0 (Ampere and later): bf16, native;
  7.x (Volta, Turing: V100, T4): fp16 under autocast (tensor cores; LayerNorm and softmax
  stay fp32), no bf16;
  < 7.0: fp32 (Pascal's fp16 is slow on most cards).
"""

from __future__ import annotations

import os
import platform
from functools import lru_cache
from pathlib import Path

import torch

AMPERE = (8, 0)  # first compute capability with native bf16 tensor cores
VOLTA = (7, 0)  # first with fp16 tensor cores
# x86 flags (as /proc/cpuinfo names them) of int8 dot-product or matrix hardware, which the
# int8 kernels behind dynamic quantisation (fbgemm, oneDNN) use
INT8_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


def cuda_capability(device: torch.device) -> tuple[int, int]:
    """The compute capability of ``device`` (an index-less ``cuda`` is torch's current one)."""
    index = device.index if device.index is not None else torch.cuda.current_device()
    major, minor = torch.cuda.get_device_capability(index)
    return int(major), int(minor)


def cuda_reduced_dtype(capability: tuple[int, int]) -> torch.dtype | None:
    """The reduced precision a GPU of this compute capability runs natively: bf16 from
    Ampere, fp16 on Volta/Turing (under autocast), None (fp32) before."""
    if capability >= AMPERE:
        return torch.bfloat16
    if capability >= VOLTA:
        return torch.float16
    return None


def bf16_native(device: torch.device) -> bool:
    """True where bf16 matmuls have kernels of their own on ``device``: Ampere+ GPUs (that
    device, no emulation); CPUs where oneDNN runs bf16 (AVX-512 and up — in hardware only
    with AVX-512-BF16 or AMX, which is why a CPU's choice is measured, not read from this)."""
    if device.type == "cuda":
        if torch.version.hip:
            return True
        return cuda_reduced_dtype(cuda_capability(device)) == torch.bfloat16
    return bool(
        torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    )


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU's feature flags (Linux); empty where the system does not list them."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


@lru_cache(maxsize=1)
def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else what ``platform`` says)."""
    try:
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith(("model name", "Hardware", "cpu model")):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def int8_hardware(flags: frozenset[str] | None = None) -> bool:
    """Whether the CPU has int8 dot-product/matrix instructions (VNNI, AMX-int8): where
    int8 dynamic quantisation can beat fp32, so it is worth measuring."""
    flags = cpu_flags() if flags is None else flags
    return any(flag in flags for flag in INT8_FLAGS)


def machine_key() -> dict[str, str | int]:
    """What a measured speed depends on besides the model: CPU model, core count, torch's
    version and the kernel level torch dispatches to (which ``ATEN_CPU_CAPABILITY`` lowers)."""
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count() or 1,
        "torch": torch.__version__,
        "isa": torch.backends.cpu.get_cpu_capability(),
        "bf16": bf16_native(torch.device("cpu")),
    }
