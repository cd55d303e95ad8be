"""Multi-process training under ``torchrun``: one process group, gloo on CPU, nccl on GPU.

The launcher (torchrun) sets the rendezvous variables and ``init_process_group`` reads them;
the CLI decides whether to call this and passes torchrun's ``LOCAL_RANK`` (it is the only layer
that looks at the environment). With CUDA each process trains on one GPU, its local rank's
(``devices.train_device``): it is made the current device before the NCCL group forms.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from encoders.runtime.device import DEFAULT_DEVICE
from encoders.training.devices import local_gpu, train_device


def setup_distributed(
    backend: str | None = None, device: str = DEFAULT_DEVICE, local_rank: int = 0
) -> tuple[int, int]:
    """Join the process group torchrun prepared; returns (rank, world size).

    ``device`` is the run's device spec: on CUDA the ``local_rank``'s GPU becomes the current
    device and the backend is NCCL; on the CPU (also ``cpu`` on a GPU machine) it is gloo.
    """
    if not dist.is_initialized():
        on_cuda = train_device(device, local_rank).type == "cuda"
        if on_cuda:  # the local rank's GPU, whatever index was asked for (the trainer checks)
            torch.cuda.set_device(local_gpu(local_rank))
        dist.init_process_group(backend=backend or ("nccl" if on_cuda else "gloo"))
    return dist.get_rank(), dist.get_world_size()


def cleanup_distributed() -> None:
    """Leave the process group (after the last collective)."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
