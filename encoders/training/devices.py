"""Where training runs: the device of this process, its defaults, and the data placed on it.

One place for everything that differs between a CPU and a GPU run, so the loop and the step
stay one code path: the device (under ``torchrun`` with CUDA, the local rank's GPU, which
``distributed.setup_distributed`` selected), the batch size when none was asked for, the
attention kernels, the autocast, and whether the preloaded images live on the device.

On the CPU every choice here is what the CPU recipe measured (docs/training.md); the CUDA
values are starting points that have not yet been measured on a GPU (docs/training.md says
so). Nothing here draws random numbers: augmentation randomness stays on CPU generators, so a
run's data stream is the same on every device.
"""

from __future__ import annotations

import logging
import os
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.nn.attention import SDPBackend, sdpa_kernel

from encoders.runtime.capability import bf16_native
from encoders.runtime.device import DeviceError, resolve_device

log = logging.getLogger(__name__)

# The fused CPU flash-attention kernel's backward is ~10× slower than its forward at our
# sequence lengths (65 image, ~17 text tokens): the plain matmul-softmax path trains faster.
# On CUDA torch's own choice (flash / memory-efficient / cuDNN kernels) is kept.
CPU_TRAIN_ATTENTION = [SDPBackend.MATH]
# Preloaded images stay in host memory when they would take more than this share of the
# device's free memory (the model, activations and optimiser need the rest).
MAX_DEVICE_DATA_SHARE = 0.5


@dataclass(frozen=True)
class DeviceDefaults:
    """What a device type trains with when the options leave it open."""

    batch_size: int  # pairs per process per micro-batch
    decode_workers: int  # threads decoding images while preloading


DEVICE_DEFAULTS = {
    # batch 128: in a 5-minute budget on a 2-core CPU it learned more than 64 (more samples/s,
    # more in-batch negatives) on both data families; 256 no better (docs/training.md)
    "cpu": DeviceDefaults(batch_size=128, decode_workers=2),
    # batch 256: where a GPU stops being launch-bound for the tiny ViT (not yet measured here)
    "cuda": DeviceDefaults(batch_size=256, decode_workers=min(16, os.cpu_count() or 2)),
}


def device_defaults(device: torch.device) -> DeviceDefaults:
    """The defaults of ``device``'s type (an unknown type trains like the CPU)."""
    return DEVICE_DEFAULTS.get(device.type, DEVICE_DEFAULTS["cpu"])


def default_batch_size(device: torch.device) -> int:
    """Pairs per process per micro-batch when ``TrainOptions.batch_size`` is None."""
    return device_defaults(device).batch_size


def train_device(spec: str | torch.device | None, local_rank: int | None = None) -> torch.device:
    """This process's training device: ``spec`` resolved, ``cuda`` and ``auto`` (on a CUDA
    machine) meaning the GPU of this process's local rank.

    ``local_rank``: torchrun's ``LOCAL_RANK`` (the CLI passes it; library code never reads the
    environment); None: the GPU ``distributed.setup_distributed`` made current in a process
    group, else GPU 0. An explicit ``cuda:N`` is kept in one process; in a multi-process run
    it must be the local rank's GPU (each process trains on its own).
    """
    device = resolve_device(spec)
    if device.type != "cuda":
        return device
    grouped = dist.is_available() and dist.is_initialized()
    if local_rank is None:
        local_rank = torch.cuda.current_device() if grouped else 0
    local = torch.device("cuda", local_gpu(local_rank))
    explicit = spec is not None and ":" in str(spec)
    if not explicit:
        return local
    if grouped and dist.get_world_size() > 1 and device != local:
        raise DeviceError(
            f"device {spec!r} asked for in a {dist.get_world_size()}-process run: each process "
            f"trains on its local rank's GPU ({local}); ask for 'cuda' instead"
        )
    return device


def local_gpu(local_rank: int) -> int:
    """The GPU of a local rank (one process per GPU); more processes than GPUs is refused."""
    count = torch.cuda.device_count()
    if local_rank >= count:
        raise DeviceError(
            f"local rank {local_rank} has no GPU of its own (torch sees {count}): start at most "
            f"{count} processes per machine (torchrun --nproc_per_node {count})"
        )
    return local_rank


def attention_context(device: torch.device) -> AbstractContextManager:
    """The attention kernels training uses on ``device`` (the CPU's measured choice, or
    torch's own fused kernels on a GPU)."""
    if device.type == "cpu":
        return sdpa_kernel(CPU_TRAIN_ATTENTION)
    return nullcontext()


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """bf16 autocast on the CPU (as measured) and on GPUs with *native* bf16 (Ampere on:
    ``capability.bf16_native`` asks about that device and counts no emulation); None: fp32
    throughout (a pre-Ampere GPU — fp16 would need loss scaling, which the trainer does not
    do, and emulated bf16 is slower than fp32)."""
    if device.type == "cuda" and not bf16_native(device):
        return None
    return torch.bfloat16


def autocast(device: torch.device) -> AbstractContextManager:
    """The forward pass's autocast on ``device`` (see ``autocast_dtype``)."""
    dtype = autocast_dtype(device)
    if dtype is None:
        return nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def keeps_data_on_device(nbytes: int, device: torch.device) -> bool:
    """Whether preloaded tensors of ``nbytes`` go to ``device`` (always, for the CPU)."""
    if device.type != "cuda":
        return True
    free, _ = torch.cuda.mem_get_info(device)
    if nbytes <= MAX_DEVICE_DATA_SHARE * free:
        return True
    log.warning(
        "training images (%.1f GiB) stay in host memory: more than %d%% of %s's free %.1f GiB; "
        "each batch is copied over",
        nbytes / 2**30, 100 * MAX_DEVICE_DATA_SHARE, device, free / 2**30,
    )  # fmt: skip
    return False


def fused_adamw(device: torch.device) -> bool:
    """AdamW's fused kernel on CUDA (one launch instead of one per tensor group); the CPU
    keeps the default implementation its figures were measured with."""
    return device.type == "cuda"
