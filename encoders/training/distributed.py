"""Multi-process training under ``torchrun``: one process group, gloo on CPU, nccl on GPU.

The launcher (torchrun) sets the rendezvous variables and ``init_process_group`` reads them;
the CLI decides whether to call this and passes torchrun's ``LOCAL_RANK`` (it is the only layer
that looks at the environment). With CUDA each process trains on one GPU, its local rank's: it
is made the current device before the NCCL group forms, and ``devices.train_device`` returns it
from then on.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from encoders.runtime.device import DEFAULT_DEVICE, DeviceError, resolve_device


def setup_distributed(
    backend: str | None = None, device: str = DEFAULT_DEVICE, local_rank: int = 0
) -> tuple[int, int]:
    """Join the process group torchrun prepared; returns (rank, world size).

    ``device`` is the run's device spec: on CUDA the ``local_rank``'s GPU becomes the current
    device and the backend is NCCL; on the CPU (also ``cpu`` on a GPU machine) it is gloo.
    """
    if not dist.is_initialized():
        on_cuda = resolve_device(device).type == "cuda"
        if on_cuda:
            torch.cuda.set_device(_local_gpu(local_rank))
        dist.init_process_group(backend=backend or ("nccl" if on_cuda else "gloo"))
    return dist.get_rank(), dist.get_world_size()


def _local_gpu(local: int) -> int:
    """This process's GPU: its local rank's (one process per GPU)."""
    count = torch.cuda.device_count()
    if local >= count:
        raise DeviceError(
            f"local rank {local} has no GPU of its own (torch sees {count}): start at most "
            f"{count} processes per machine (torchrun --nproc_per_node {count})"
        )
    return local


def cleanup_distributed() -> None:
    """Leave the process group (after the last collective)."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
